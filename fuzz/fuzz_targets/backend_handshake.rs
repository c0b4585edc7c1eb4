//! The server's bytes after the proxy's StartupMessage, as the upstream handshake reads them
//! (proxy/src/upstream/frames.rs and connect.rs): one frame at a time through the decoder into
//! the handshake state machine, up to ReadyForQuery. Messages after the end (Ready or an error)
//! are fed on too: the state machine must refuse every one of them.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rds_iam_fuzz::{check_error, decode_like_reads};
use rds_iam_protocol::backend::{auth_code, FRAME_HEADER_LEN};
use rds_iam_protocol::limits::{
    MAX_BACKEND_STARTUP_MESSAGE_LEN, MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN,
};
use rds_iam_protocol::{
    decode_backend_message, encode_password_message, BackendMessage, Decoded, HandshakeError,
    HandshakeStep, ProtocolVersion, StartupMessage, UpstreamHandshake,
};

fuzz_target!(|data: &[u8]| {
    let startup = StartupMessage::new(
        ProtocolVersion::V3_0,
        vec![
            ("user".into(), "iam_user".into()),
            ("database".into(), "app".into()),
        ],
    );
    let mut out = BytesMut::new();
    let mut handshake = UpstreamHandshake::new(&startup, &mut out);
    assert_eq!(out.len(), startup.encoded_len());

    let mut ended = false;
    let mut passwords_sent = 0;
    let mut authenticated = false;
    let mut rest = data;
    while !rest.is_empty() {
        let (message, consumed) = match decode_like_reads(rest, decode_backend_message) {
            Err(e) => return check_error(&e),
            Ok(Decoded::Incomplete) => return,
            Ok(Decoded::Complete { value, consumed }) => (value, consumed),
        };
        check_frame(&message, &rest[..consumed]);
        rest = &rest[consumed..];

        let step = handshake.on_message(&message);
        if ended {
            assert_eq!(
                step,
                Err(HandshakeError::UnexpectedMessage { tag: message.tag() }),
                "accepted {message:?} after the handshake ended"
            );
            continue;
        }
        match &step {
            Ok(HandshakeStep::SendPassword) => {
                passwords_sent += 1;
                assert_eq!(passwords_sent, 1, "password requested twice and accepted");
                assert!(!authenticated);
                assert_eq!(message, BackendMessage::AuthenticationCleartextPassword);
                let mut reply = BytesMut::new();
                encode_password_message("token", &mut reply);
                assert_eq!(&reply[..], b"p\0\0\0\x0atoken\0");
            }
            Ok(HandshakeStep::RelayToClient) => {
                if message == BackendMessage::AuthenticationOk {
                    assert!(!authenticated, "AuthenticationOk accepted twice");
                    authenticated = true;
                }
                if let BackendMessage::BackendKeyData { pid, secret } = &message {
                    assert!(authenticated);
                    assert_eq!(handshake.backend_key(), Some((*pid, secret)));
                }
                if let BackendMessage::ParameterStatus { .. } = &message {
                    assert!(authenticated);
                }
                if let BackendMessage::NegotiateProtocolVersion {
                    newest_minor,
                    unrecognized,
                } = &message
                {
                    assert!(!authenticated);
                    assert_eq!(
                        handshake.negotiated_protocol(),
                        Some((*newest_minor, unrecognized.as_slice()))
                    );
                }
            }
            Ok(HandshakeStep::Ready) => {
                assert!(authenticated, "ready without AuthenticationOk");
                assert!(matches!(message, BackendMessage::ReadyForQuery { .. }));
                assert!(handshake.is_ready());
                ended = true;
            }
            Err(e) => {
                let _ = (e.to_string(), e.hint(), e.is_auth_rejection());
                assert_eq!(e.sqlstate().0.len(), 5);
                if let HandshakeError::Rejected(fields) = e {
                    assert_eq!(message, BackendMessage::ErrorResponse(fields.clone()));
                }
                assert!(!handshake.is_ready());
                ended = true;
            }
        }
        assert_eq!(handshake.is_authenticated(), authenticated);
    }
});

/// The decoded message against its raw frame (which the proxy relays unchanged).
fn check_frame(message: &BackendMessage, frame: &[u8]) {
    assert!(frame.len() >= FRAME_HEADER_LEN && frame.len() <= 1 + MAX_BACKEND_STARTUP_MESSAGE_LEN);
    assert_eq!(frame[0], message.tag());
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    assert_eq!(
        len + 1,
        frame.len(),
        "consumed is not the frame's own length"
    );
    let body = &frame[FRAME_HEADER_LEN..];

    let mut again = BytesMut::new();
    message.encode(&mut again);
    // Byte for byte where the decoder keeps everything: text decoded lossily cannot come back
    // the same, and ErrorResponse/NoticeResponse fields are re-encoded in a fixed order.
    let exact = match message {
        BackendMessage::AuthenticationOk | BackendMessage::AuthenticationCleartextPassword => true,
        BackendMessage::AuthenticationSasl { .. } => std::str::from_utf8(&body[4..]).is_ok(),
        BackendMessage::ParameterStatus { .. } => std::str::from_utf8(body).is_ok(),
        BackendMessage::NegotiateProtocolVersion { .. } => std::str::from_utf8(&body[8..]).is_ok(),
        BackendMessage::BackendKeyData { secret, .. } => {
            assert!((MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&secret.len()));
            true
        }
        BackendMessage::ReadyForQuery { status } => {
            assert!(matches!(status, b'I' | b'T' | b'E'));
            true
        }
        BackendMessage::AuthenticationMd5Password => {
            assert_eq!(body.len(), 8);
            false
        }
        BackendMessage::AuthenticationOther(code) => {
            assert!(![
                auth_code::OK,
                auth_code::CLEARTEXT_PASSWORD,
                auth_code::MD5_PASSWORD,
                auth_code::SASL
            ]
            .contains(code));
            body.len() == 4
        }
        BackendMessage::Other { tag } => {
            assert!(!b"RSKvENZ".contains(tag));
            body.is_empty()
        }
        BackendMessage::NoticeResponse(_) | BackendMessage::ErrorResponse(_) => false,
    };
    if exact {
        assert_eq!(&again[..], frame, "{message:?} re-encodes differently");
    }
    // Whatever the decoder keeps survives a round trip.
    if again.len() <= 1 + MAX_BACKEND_STARTUP_MESSAGE_LEN {
        let decoded = decode_backend_message(&again).expect("re-encoded message decodes");
        assert_eq!(
            decoded,
            Decoded::Complete {
                value: message.clone(),
                consumed: again.len()
            }
        );
    }
}
