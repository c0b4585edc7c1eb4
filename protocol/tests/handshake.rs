//! Upstream handshake state machine sequences.

use bytes::{Bytes, BytesMut};
use rds_iam_protocol::*;
use BackendMessage as M;
use HandshakeStep::*;

fn start() -> (UpstreamHandshake, BytesMut, StartupMessage) {
    let s = StartupMessage::new(
        ProtocolVersion::V3_0,
        vec![
            ("user".into(), "iam".into()),
            ("database".into(), "db".into()),
        ],
    );
    let mut out = BytesMut::new();
    let h = UpstreamHandshake::new(&s, &mut out);
    (h, out, s)
}

fn param(n: &str) -> BackendMessage {
    M::ParameterStatus {
        name: n.into(),
        value: "v".into(),
    }
}

fn key(len: usize) -> BackendMessage {
    M::BackendKeyData {
        pid: 77,
        secret: Bytes::from(vec![9u8; len]),
    }
}

fn err(code: &str) -> ErrorFields {
    ErrorFields {
        severity: "FATAL".into(),
        code: code.into(),
        message: "PAM authentication failed for user \"iam\"".into(),
        ..Default::default()
    }
}

/// Feeds `msgs` in order; returns the steps, or the error with its index.
fn run(
    msgs: &[BackendMessage],
) -> (
    UpstreamHandshake,
    Result<Vec<HandshakeStep>, (usize, HandshakeError)>,
) {
    let (mut h, _, _) = start();
    let mut steps = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        match h.on_message(m) {
            Ok(s) => steps.push(s),
            Err(e) => return (h, Err((i, e))),
        }
    }
    (h, Ok(steps))
}

#[test]
fn new_writes_the_startup_message() {
    let (_, out, s) = start();
    assert_eq!(
        decode_frontend_startup(&out).unwrap(),
        Decoded::Complete {
            value: FrontendStartup::Startup(s),
            consumed: out.len()
        }
    );
}

#[test]
fn successful_sequences() {
    let cases: Vec<(&str, Vec<BackendMessage>, Vec<HandshakeStep>)> = vec![
        (
            "cleartext, 3.0 key",
            vec![
                M::AuthenticationCleartextPassword,
                M::AuthenticationOk,
                param("server_version"),
                param("TimeZone"),
                key(4),
                M::ReadyForQuery { status: b'I' },
            ],
            vec![
                SendPassword,
                RelayToClient,
                RelayToClient,
                RelayToClient,
                RelayToClient,
                Ready,
            ],
        ),
        (
            "NegotiateProtocolVersion first, 3.2 long key",
            vec![
                M::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec!["_pq_.x".into()],
                },
                M::AuthenticationCleartextPassword,
                M::AuthenticationOk,
                param("a"),
                key(32),
                M::ReadyForQuery { status: b'I' },
            ],
            vec![
                RelayToClient,
                SendPassword,
                RelayToClient,
                RelayToClient,
                RelayToClient,
                Ready,
            ],
        ),
        (
            "NegotiateProtocolVersion after password, notices anywhere",
            vec![
                M::NoticeResponse(err("01000")),
                M::AuthenticationCleartextPassword,
                M::NegotiateProtocolVersion {
                    newest_minor: 2,
                    unrecognized: vec![],
                },
                M::AuthenticationOk,
                M::NoticeResponse(err("01000")),
                M::ReadyForQuery { status: b'I' },
            ],
            vec![
                RelayToClient,
                SendPassword,
                RelayToClient,
                RelayToClient,
                RelayToClient,
                Ready,
            ],
        ),
        (
            "trust: AuthenticationOk without password request",
            vec![M::AuthenticationOk, M::ReadyForQuery { status: b'I' }],
            vec![RelayToClient, Ready],
        ),
    ];
    for (name, msgs, want) in cases {
        let (h, got) = run(&msgs);
        assert_eq!(
            got.as_ref().map_err(|(i, e)| format!("{i}: {e}")),
            Ok(&want),
            "{name}"
        );
        assert!(h.is_ready() && h.is_authenticated(), "{name}");
    }
}

#[test]
fn backend_key_and_negotiation_are_recorded() {
    let (h, r) = run(&[
        M::NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized: vec!["_pq_.x".into()],
        },
        M::AuthenticationCleartextPassword,
        M::AuthenticationOk,
        key(32),
        M::ReadyForQuery { status: b'I' },
    ]);
    r.unwrap();
    assert_eq!(h.backend_key(), Some((77, &Bytes::from(vec![9u8; 32]))));
    assert_eq!(
        h.negotiated_protocol(),
        Some((0, &["_pq_.x".to_string()][..]))
    );
    let (h, _) = run(&[M::AuthenticationOk]);
    assert_eq!(h.backend_key(), None);
    assert_eq!(h.negotiated_protocol(), None);
}

#[test]
fn failing_sequences() {
    let sasl = vec!["SCRAM-SHA-256".to_string()];
    let cases: Vec<(&str, Vec<BackendMessage>, usize, HandshakeError)> = vec![
        (
            "md5 refused",
            vec![M::AuthenticationMd5Password],
            0,
            HandshakeError::Md5Requested,
        ),
        (
            "sasl refused",
            vec![M::AuthenticationSasl {
                mechanisms: sasl.clone(),
            }],
            0,
            HandshakeError::SaslRequested {
                mechanisms: sasl.clone(),
            },
        ),
        (
            "gss refused",
            vec![M::AuthenticationOther(7)],
            0,
            HandshakeError::UnsupportedAuth(7),
        ),
        (
            "token rejected",
            vec![
                M::AuthenticationCleartextPassword,
                M::ErrorResponse(err("28000")),
            ],
            1,
            HandshakeError::Rejected(err("28000")),
        ),
        (
            "too many connections",
            vec![M::ErrorResponse(err("53300"))],
            0,
            HandshakeError::Rejected(err("53300")),
        ),
        (
            "password asked twice",
            vec![
                M::AuthenticationCleartextPassword,
                M::AuthenticationCleartextPassword,
            ],
            1,
            HandshakeError::PasswordRequestedTwice,
        ),
        (
            "error after auth ok",
            vec![M::AuthenticationOk, M::ErrorResponse(err("57P03"))],
            1,
            HandshakeError::Rejected(err("57P03")),
        ),
        (
            "ready before auth",
            vec![M::ReadyForQuery { status: b'I' }],
            0,
            HandshakeError::UnexpectedMessage { tag: b'Z' },
        ),
        (
            "parameter before auth",
            vec![param("a")],
            0,
            HandshakeError::UnexpectedMessage { tag: b'S' },
        ),
        (
            "key before auth",
            vec![M::AuthenticationCleartextPassword, key(4)],
            1,
            HandshakeError::UnexpectedMessage { tag: b'K' },
        ),
        (
            "second key",
            vec![M::AuthenticationOk, key(4), key(4)],
            2,
            HandshakeError::UnexpectedMessage { tag: b'K' },
        ),
        (
            "second negotiate",
            vec![
                M::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec![],
                },
                M::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec![],
                },
            ],
            1,
            HandshakeError::UnexpectedMessage { tag: b'v' },
        ),
        (
            "negotiate after auth ok",
            vec![
                M::AuthenticationOk,
                M::NegotiateProtocolVersion {
                    newest_minor: 0,
                    unrecognized: vec![],
                },
            ],
            1,
            HandshakeError::UnexpectedMessage { tag: b'v' },
        ),
        (
            "second auth ok",
            vec![M::AuthenticationOk, M::AuthenticationOk],
            1,
            HandshakeError::UnexpectedMessage { tag: b'R' },
        ),
        (
            "password after auth ok",
            vec![M::AuthenticationOk, M::AuthenticationCleartextPassword],
            1,
            HandshakeError::UnexpectedMessage { tag: b'R' },
        ),
        (
            "md5 after auth ok",
            vec![M::AuthenticationOk, M::AuthenticationMd5Password],
            1,
            HandshakeError::UnexpectedMessage { tag: b'R' },
        ),
        (
            "data row",
            vec![M::AuthenticationOk, M::Other { tag: b'D' }],
            1,
            HandshakeError::UnexpectedMessage { tag: b'D' },
        ),
        (
            "message after ready",
            vec![
                M::AuthenticationOk,
                M::ReadyForQuery { status: b'I' },
                param("a"),
            ],
            2,
            HandshakeError::UnexpectedMessage { tag: b'S' },
        ),
    ];
    for (name, msgs, at, want) in cases {
        let (mut h, got) = run(&msgs);
        assert_eq!(got, Err((at, want)), "{name}");
        assert!(!h.is_ready(), "{name}");
        // Once failed, always failed.
        assert!(
            h.on_message(&M::ReadyForQuery { status: b'I' }).is_err(),
            "{name}"
        );
    }
}

#[test]
fn error_texts_and_codes() {
    let md5 = HandshakeError::Md5Requested;
    assert!(md5.to_string().contains("not an IAM token"), "{md5}");
    assert!(md5.to_string().contains("GRANT rds_iam TO"), "{md5}");
    assert!(md5.hint().unwrap().contains("rds_iam"));
    assert_eq!(
        md5.sqlstate(),
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    );
    let sasl = HandshakeError::SaslRequested {
        mechanisms: vec!["SCRAM-SHA-256".into()],
    };
    assert!(sasl.to_string().contains("GRANT rds_iam TO"), "{sasl}");
    assert!(sasl.to_string().contains("SCRAM-SHA-256"), "{sasl}");

    let rejected = HandshakeError::Rejected(err("28000"));
    assert!(rejected.is_auth_rejection());
    let HandshakeError::Rejected(f) = &rejected else {
        unreachable!()
    };
    assert_eq!(f.code, "28000");
    assert!(HandshakeError::Rejected(err("28P01")).is_auth_rejection());
    assert_eq!(
        HandshakeError::Rejected(err("28P01")).sqlstate(),
        SqlState::INVALID_PASSWORD
    );
    assert!(!HandshakeError::Rejected(err("53300")).is_auth_rejection());
    assert_eq!(
        HandshakeError::Rejected(err("53300")).sqlstate(),
        SqlState::SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION
    );
    assert_eq!(
        HandshakeError::PasswordRequestedTwice.sqlstate(),
        SqlState::PROTOCOL_VIOLATION
    );
    assert!(HandshakeError::UnexpectedMessage { tag: b'D' }
        .to_string()
        .contains("'D'"));
}

/// The driver's loop over raw bytes: decode, step, relay `consumed` bytes.
#[test]
fn driver_loop_over_raw_bytes() {
    let mut wire = BytesMut::new();
    for m in [
        M::AuthenticationCleartextPassword,
        M::AuthenticationOk,
        param("server_version"),
        key(4),
        M::ReadyForQuery { status: b'I' },
    ] {
        m.encode(&mut wire);
    }
    let (mut h, _, _) = start();
    let mut relayed = Vec::new();
    let mut upstream = BytesMut::new();
    let mut buf = &wire[..];
    loop {
        let (msg, n) = decode_backend_message(buf).unwrap().complete().unwrap();
        match h.on_message(&msg).unwrap() {
            SendPassword => encode_password_message("token", &mut upstream),
            RelayToClient => relayed.extend_from_slice(&buf[..n]),
            Ready => {
                relayed.extend_from_slice(&buf[..n]);
                buf = &buf[n..];
                break;
            }
        }
        buf = &buf[n..];
    }
    assert!(buf.is_empty());
    assert_eq!(&upstream[..], b"p\0\0\0\x0atoken\0");
    // Everything but the password request reaches the client, byte for byte.
    let cleartext_len = 9;
    assert_eq!(relayed, wire[cleartext_len..].to_vec());
}
