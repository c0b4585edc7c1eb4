//! The client's first bytes, as the proxy's startup loop reads them (proxy/src/connection/
//! handshake.rs): SSLRequest and GSSENCRequest are answered `N` and decoding goes on; a
//! StartupMessage, CancelRequest, direct-TLS ClientHello or error ends it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rds_iam_fuzz::{check_error, decode_like_reads};
use rds_iam_protocol::frontend::{encode_gssenc_request, TLS_HANDSHAKE_RECORD};
use rds_iam_protocol::limits::{MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LEN, MIN_CANCEL_KEY_LEN};
use rds_iam_protocol::{
    decode_frontend_startup, encode_ssl_request, Decoded, FrontendStartup, ProtocolVersion,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        let (value, consumed) = match decode_like_reads(rest, decode_frontend_startup) {
            Err(e) => return check_error(&e),
            Ok(Decoded::Incomplete) => return,
            Ok(Decoded::Complete { value, consumed }) => (value, consumed),
        };
        assert!(consumed <= MAX_STARTUP_PACKET_LEN && consumed <= rest.len());
        let frame = &rest[..consumed];
        let mut again = BytesMut::new();
        match value {
            FrontendStartup::SslRequest => encode_ssl_request(&mut again),
            FrontendStartup::GssEncRequest => encode_gssenc_request(&mut again),
            FrontendStartup::Cancel(cancel) => {
                let key = cancel.secret.len();
                assert!((MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key));
                cancel.encode(&mut again);
                assert_eq!(&again[..], frame, "CancelRequest re-encodes differently");
                return;
            }
            FrontendStartup::Startup(mut message) => {
                assert_eq!(message.version.major, 3);
                assert_eq!(message.encoded_len(), consumed);
                message.encode(&mut again);
                assert_eq!(&again[..], frame, "StartupMessage re-encodes differently");
                let _ = (
                    message.user(),
                    message.database(),
                    message.version.to_string(),
                );
                let _ = message.version.has_long_cancel_keys();
                // What the proxy does before sending it upstream: force the user, then encode.
                message.set("user", "iam_user");
                assert_eq!(message.user(), Some("iam_user"));
                assert_eq!(
                    message.params.iter().filter(|(k, _)| k == "user").count(),
                    1
                );
                let mut upstream = BytesMut::new();
                message.encode(&mut upstream);
                assert_eq!(upstream.len(), message.encoded_len());
                if upstream.len() <= MAX_STARTUP_PACKET_LEN {
                    let decoded = decode_frontend_startup(&upstream).expect("re-decodes");
                    assert_eq!(
                        decoded,
                        Decoded::Complete {
                            value: FrontendStartup::Startup(message),
                            consumed: upstream.len()
                        }
                    );
                }
                assert!(ProtocolVersion::V3_2.has_long_cancel_keys());
                return;
            }
            FrontendStartup::DirectTls => {
                assert_eq!(consumed, 0);
                assert_eq!(rest[0], TLS_HANDSHAKE_RECORD);
                return;
            }
        }
        assert_eq!(&again[..], frame, "SSL/GSS request re-encodes differently");
        rest = &rest[consumed..];
    }
});
