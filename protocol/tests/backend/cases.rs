//! Every valid server message before ReadyForQuery, as pgwire (or a hand) encodes it.

use super::*;

/// (name, frame bytes produced by pgwire or by hand, expected value).
pub fn valid_cases() -> Vec<(&'static str, Vec<u8>, BackendMessage)> {
    use BackendMessage as M;
    let long_key: Vec<u8> = (0..=255u8).collect();
    let pg_fields = vec![
        (b'S', "FATAL".to_string()),
        (b'V', "FATAL".to_string()),
        (b'C', "28000".to_string()),
        (
            b'M',
            "PAM authentication failed for user \"iam\"".to_string(),
        ),
        (b'D', "d".to_string()),
        (b'H', "h".to_string()),
        (b'F', "auth.c".to_string()),
        (b'L', "1".to_string()),
        (b'R', "auth_failed".to_string()),
    ];
    let want_fields = ErrorFields {
        severity: "FATAL".into(),
        code: "28000".into(),
        message: "PAM authentication failed for user \"iam\"".into(),
        detail: Some("d".into()),
        hint: Some("h".into()),
        other: vec![
            (b'V', "FATAL".into()),
            (b'F', "auth.c".into()),
            (b'L', "1".into()),
            (b'R', "auth_failed".into()),
        ],
    };
    vec![
        ("auth ok", pg(Authentication::Ok), M::AuthenticationOk),
        (
            "cleartext",
            pg(Authentication::CleartextPassword),
            M::AuthenticationCleartextPassword,
        ),
        (
            "md5",
            pg(Authentication::MD5Password(vec![1, 2, 3, 4])),
            M::AuthenticationMd5Password,
        ),
        (
            "sasl",
            pg(Authentication::SASL(vec![
                "SCRAM-SHA-256-PLUS".into(),
                "SCRAM-SHA-256".into(),
            ])),
            M::AuthenticationSasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
            },
        ),
        (
            "kerberos",
            pg(Authentication::KerberosV5),
            M::AuthenticationOther(2),
        ),
        (
            "sasl continue",
            pg(Authentication::SASLContinue(Bytes::from_static(b"r=abc"))),
            M::AuthenticationOther(11),
        ),
        (
            "gss",
            frame(b'R', &7u32.to_be_bytes()),
            M::AuthenticationOther(7),
        ),
        (
            "parameter status",
            pg(PgParam::new("server_version".into(), "16.4".into())),
            M::ParameterStatus {
                name: "server_version".into(),
                value: "16.4".into(),
            },
        ),
        (
            "parameter status empty value",
            pg(PgParam::new("application_name".into(), String::new())),
            M::ParameterStatus {
                name: "application_name".into(),
                value: String::new(),
            },
        ),
        (
            "key data 3.0",
            pg(PgKey::new(4242, SecretKey::I32(0x0102_0304))),
            M::BackendKeyData {
                pid: 4242,
                secret: Bytes::from_static(&[1, 2, 3, 4]),
            },
        ),
        (
            "key data 3.2 256 bytes",
            pg(PgKey::new(
                7,
                SecretKey::Bytes(Bytes::from(long_key.clone())),
            )),
            M::BackendKeyData {
                pid: 7,
                secret: Bytes::from(long_key),
            },
        ),
        (
            "negotiate protocol version",
            pg(PgNpv::new(0, vec!["_pq_.foo".into(), "_pq_.bar".into()])),
            M::NegotiateProtocolVersion {
                newest_minor: 0,
                unrecognized: vec!["_pq_.foo".into(), "_pq_.bar".into()],
            },
        ),
        (
            "negotiate no options",
            pg(PgNpv::new(2, vec![])),
            M::NegotiateProtocolVersion {
                newest_minor: 2,
                unrecognized: vec![],
            },
        ),
        (
            "error",
            pg(PgError::new(pg_fields.clone())),
            M::ErrorResponse(want_fields.clone()),
        ),
        (
            "notice",
            pg(PgNotice::new(pg_fields)),
            M::NoticeResponse(want_fields),
        ),
        (
            "notice minimal",
            frame(b'N', b"SWARNING\0C01000\0Mhm\0\0"),
            M::NoticeResponse(fields("WARNING", "01000", "hm")),
        ),
        (
            "ready idle",
            pg(PgReady::new(TransactionStatus::Idle)),
            M::ReadyForQuery { status: b'I' },
        ),
        (
            "ready tx",
            frame(b'Z', b"T"),
            M::ReadyForQuery { status: b'T' },
        ),
        (
            "ready failed tx",
            frame(b'Z', b"E"),
            M::ReadyForQuery { status: b'E' },
        ),
        ("other", frame(b'D', b"\0\0"), M::Other { tag: b'D' }),
        ("other empty", frame(b'1', b""), M::Other { tag: b'1' }),
    ]
}
