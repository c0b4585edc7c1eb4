//! Server messages before ReadyForQuery: table-driven cases, every prefix,
//! limits, round trips, and cross-checks against pgwire's codec.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::{
    ErrorResponse as PgError, NoticeResponse as PgNotice, ReadyForQuery as PgReady,
    TransactionStatus,
};
use pgwire::messages::startup::{
    Authentication, BackendKeyData as PgKey, NegotiateProtocolVersion as PgNpv,
    ParameterStatus as PgParam, Password, PasswordMessageFamily, SecretKey,
};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion as PgVersion};
use rds_iam_protocol::limits::MAX_BACKEND_STARTUP_MESSAGE_LEN;
use rds_iam_protocol::*;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.put_u32((4 + body.len()) as u32);
    v.put_slice(body);
    v
}

fn pg(m: impl Message) -> Vec<u8> {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    b.to_vec()
}

fn fields(sev: &str, code: &str, msg: &str) -> ErrorFields {
    ErrorFields {
        severity: sev.into(),
        code: code.into(),
        message: msg.into(),
        detail: None,
        hint: None,
        other: vec![],
    }
}

mod cases;
use cases::valid_cases;

#[test]
fn valid_frames_decode_and_consume_whole_frame() {
    for (name, bytes, want) in valid_cases() {
        let mut buf = bytes.clone();
        buf.extend_from_slice(&frame(b'Z', b"I")); // next frame must stay unread
        assert_eq!(
            decode_backend_message(&buf),
            Ok(Decoded::Complete {
                value: want,
                consumed: bytes.len()
            }),
            "{name}"
        );
    }
}

#[test]
fn every_prefix_is_incomplete() {
    for (name, bytes, _) in valid_cases() {
        for n in 0..bytes.len() {
            assert_eq!(
                decode_backend_message(&bytes[..n]),
                Ok(Decoded::Incomplete),
                "{name}: {n}"
            );
        }
    }
}

#[test]
fn round_trip_encode_decode() {
    for (name, bytes, value) in valid_cases() {
        let mut out = BytesMut::new();
        value.encode(&mut out);
        let (again, n) = decode_backend_message(&out).unwrap().complete().unwrap();
        assert_eq!(n, out.len(), "{name}");
        assert_eq!(again, value, "{name}");
        // Byte-identical where the message keeps everything the wire had.
        if !matches!(
            value,
            BackendMessage::AuthenticationMd5Password
                | BackendMessage::AuthenticationOther(_)
                | BackendMessage::Other { .. }
                | BackendMessage::ErrorResponse(_)
                | BackendMessage::NoticeResponse(_)
        ) {
            assert_eq!(out.to_vec(), bytes, "{name}");
        }
    }
}

#[test]
fn our_encoding_decodes_with_pgwire() {
    let ctx30 = DecodeContext::new(PgVersion::PROTOCOL3_0);
    let ctx32 = DecodeContext::new(PgVersion::PROTOCOL3_2);
    let enc = |m: BackendMessage| {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        b
    };
    let mut b = enc(BackendMessage::BackendKeyData {
        pid: 5,
        secret: Bytes::from_static(b"\0\0\0\x09"),
    });
    let k = PgKey::decode(&mut b, &ctx30).unwrap().unwrap();
    assert_eq!((k.pid, k.secret_key), (5, SecretKey::I32(9)));
    let key = Bytes::from(vec![7u8; 64]);
    let mut b = enc(BackendMessage::BackendKeyData {
        pid: 6,
        secret: key.clone(),
    });
    let k = PgKey::decode(&mut b, &ctx32).unwrap().unwrap();
    assert_eq!((k.pid, k.secret_key), (6, SecretKey::Bytes(key)));
    let mut b = enc(BackendMessage::ParameterStatus {
        name: "a".into(),
        value: "b".into(),
    });
    assert_eq!(
        PgParam::decode(&mut b, &ctx30).unwrap().unwrap(),
        PgParam::new("a".into(), "b".into())
    );
    let mut b = enc(BackendMessage::AuthenticationSasl {
        mechanisms: vec!["SCRAM-SHA-256".into()],
    });
    assert_eq!(
        Authentication::decode(&mut b, &ctx30).unwrap().unwrap(),
        Authentication::SASL(vec!["SCRAM-SHA-256".into()])
    );
    let mut b = enc(BackendMessage::NegotiateProtocolVersion {
        newest_minor: 0,
        unrecognized: vec!["_pq_.x".into()],
    });
    assert_eq!(
        PgNpv::decode(&mut b, &ctx30).unwrap().unwrap(),
        PgNpv::new(0, vec!["_pq_.x".into()])
    );
    let mut b = enc(BackendMessage::ReadyForQuery { status: b'T' });
    assert_eq!(
        PgReady::decode(&mut b, &ctx30).unwrap().unwrap(),
        PgReady::new(TransactionStatus::Transaction)
    );
}

#[test]
fn password_message_decodes_with_pgwire() {
    let token = "host:5432/?Action=connect&DBUser=iam&X-Amz-Signature=abc";
    let mut b = BytesMut::new();
    encode_password_message(token, &mut b);
    assert_eq!(b[0], b'p');
    assert_eq!(
        u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize,
        b.len() - 1
    );
    let fam = PasswordMessageFamily::decode(&mut b, &DecodeContext::new(PgVersion::PROTOCOL3_0))
        .unwrap()
        .unwrap();
    assert!(b.is_empty());
    assert_eq!(fam.into_password().unwrap(), Password::new(token.into()));
}

#[test]
fn oversized_and_undersized_lengths_rejected_without_body() {
    let max = MAX_BACKEND_STARTUP_MESSAGE_LEN;
    let mut at_max = vec![b'S'];
    at_max.put_u32(max as u32);
    assert_eq!(decode_backend_message(&at_max), Ok(Decoded::Incomplete));
    let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        (
            "max+1",
            {
                let mut v = vec![b'E'];
                v.put_u32(max as u32 + 1);
                v
            },
            ProtocolError::BackendMessageTooLarge {
                tag: b'E',
                len: max + 1,
            },
        ),
        (
            "huge",
            vec![b'D', 0x7f, 0xff, 0xff, 0xff],
            ProtocolError::BackendMessageTooLarge {
                tag: b'D',
                len: 0x7fff_ffff,
            },
        ),
        (
            "negative",
            vec![b'S', 0xff, 0xff, 0xff, 0xff],
            ProtocolError::BackendMessageTooLarge {
                tag: b'S',
                len: u32::MAX as usize,
            },
        ),
        (
            "known from 2 bytes",
            vec![b'S', 0x01],
            ProtocolError::BackendMessageTooLarge {
                tag: b'S',
                len: 0x0100_0000,
            },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode_backend_message(&bytes), Err(want), "{name}");
    }
    for len in 0..4u32 {
        let mut v = vec![b'R'];
        v.put_u32(len);
        assert!(
            matches!(
                decode_backend_message(&v),
                Err(ProtocolError::MalformedBackendMessage { tag: b'R', .. })
            ),
            "len {len}"
        );
    }
}

#[test]
fn malformed_bodies_rejected() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("auth no code", frame(b'R', b"")),
        ("auth short code", frame(b'R', b"\0\0")),
        ("auth ok trailing", frame(b'R', b"\0\0\0\0x")),
        ("cleartext trailing", frame(b'R', b"\0\0\0\x03x")),
        ("md5 no salt", frame(b'R', b"\0\0\0\x05")),
        (
            "sasl unterminated",
            frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0"),
        ),
        (
            "sasl trailing",
            frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0x"),
        ),
        ("param no nul", frame(b'S', b"a\0b")),
        ("param one string", frame(b'S', b"a\0")),
        ("param trailing", frame(b'S', b"a\0b\0c")),
        ("key no pid", frame(b'K', b"\0\0")),
        ("key 3 bytes", frame(b'K', b"\0\0\0\x01abc")),
        ("key 257 bytes", frame(b'K', &[0u8; 4 + 257])),
        ("npv short", frame(b'v', b"\0\0\0\0")),
        ("npv count too big", frame(b'v', b"\0\0\0\0\0\0\0\x05a\0")),
        ("npv huge count", frame(b'v', b"\0\0\0\0\xff\xff\xff\xff")),
        ("npv trailing", frame(b'v', b"\0\0\0\0\0\0\0\x01a\0b")),
        ("npv unterminated", frame(b'v', b"\0\0\0\0\0\0\0\x01ab")),
        ("error empty", frame(b'E', b"")),
        ("error unterminated", frame(b'E', b"SFATAL\0")),
        ("notice field unterminated", frame(b'N', b"SFATAL")),
        ("ready empty", frame(b'Z', b"")),
        ("ready bad status", frame(b'Z', b"X")),
        ("ready long", frame(b'Z', b"II")),
    ];
    for (name, bytes) in cases {
        let got = decode_backend_message(&bytes);
        assert!(got.is_err(), "{name}: {got:?}");
        assert_eq!(
            got.unwrap_err().sqlstate(),
            SqlState::PROTOCOL_VIOLATION,
            "{name}"
        );
    }
}

#[test]
fn garbage_never_panics() {
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let tags = b"RSKvENZD";
    for _ in 0..5000 {
        let body_len = (next() % 40) as usize;
        let body: Vec<u8> = (0..body_len).map(|_| next() as u8).collect();
        let tag = tags[(next() as usize) % tags.len()];
        let _ = decode_backend_message(&frame(tag, &body));
    }
    for (_, bytes, _) in valid_cases() {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = decode_backend_message(&b);
        }
    }
}

#[test]
fn non_utf8_text_is_decoded_lossily_but_relayed_raw() {
    let bytes = frame(b'S', b"name\0caf\xe9\0");
    let (v, n) = decode_backend_message(&bytes).unwrap().complete().unwrap();
    assert_eq!(n, bytes.len());
    assert_eq!(
        v,
        BackendMessage::ParameterStatus {
            name: "name".into(),
            value: "caf\u{fffd}".into()
        }
    );
}
