//! Client-side first packets: table-driven cases, every prefix, limits,
//! round trips, and cross-checks against pgwire's codec.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::cancel::CancelRequest as PgCancel;
use pgwire::messages::startup::{GssEncRequest, SecretKey, SslRequest, Startup};
use pgwire::messages::{DecodeContext, Message, ProtocolVersion as PgVersion};
use rds_iam_protocol::frontend::{encode_gssenc_request, CANCEL_REQUEST_CODE};
use rds_iam_protocol::limits::{MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LEN};
use rds_iam_protocol::*;

fn packet(code: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u32((8 + body.len()) as u32);
    v.put_u32(code);
    v.put_slice(body);
    v
}

fn startup(version: ProtocolVersion, params: &[(&str, &str)]) -> StartupMessage {
    StartupMessage::new(
        version,
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn encoded(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

fn cancel_bytes(pid: u32, key: &[u8]) -> Vec<u8> {
    encoded(|b| {
        CancelRequest {
            pid,
            secret: Bytes::copy_from_slice(key),
        }
        .encode(b)
    })
}

/// Every valid packet: (name, bytes, expected value).
fn valid_cases() -> Vec<(&'static str, Vec<u8>, FrontendStartup)> {
    let s30 = startup(
        ProtocolVersion::V3_0,
        &[("user", "alice"), ("database", "db")],
    );
    let s32 = startup(
        ProtocolVersion::V3_2,
        &[
            ("user", "bob"),
            ("application_name", "psql"),
            ("options", "-c search_path=x"),
            ("replication", "database"),
            ("_pq_.test", "1"),
            ("client_encoding", "UTF8"),
            ("empty", ""),
        ],
    );
    let s39999 = startup(
        ProtocolVersion {
            major: 3,
            minor: 9999,
        },
        &[("user", "u")],
    );
    let long_key: Vec<u8> = (0..=255u8).collect();
    vec![
        (
            "ssl",
            encoded(encode_ssl_request),
            FrontendStartup::SslRequest,
        ),
        (
            "gss",
            encoded(encode_gssenc_request),
            FrontendStartup::GssEncRequest,
        ),
        (
            "cancel 3.0",
            cancel_bytes(42, &[1, 2, 3, 4]),
            FrontendStartup::Cancel(CancelRequest {
                pid: 42,
                secret: Bytes::from_static(&[1, 2, 3, 4]),
            }),
        ),
        (
            "cancel 3.2 256-byte key",
            cancel_bytes(7, &long_key),
            FrontendStartup::Cancel(CancelRequest {
                pid: 7,
                secret: Bytes::from(long_key.clone()),
            }),
        ),
        (
            "startup 3.0",
            encoded(|b| s30.encode(b)),
            FrontendStartup::Startup(s30.clone()),
        ),
        (
            "startup 3.2",
            encoded(|b| s32.encode(b)),
            FrontendStartup::Startup(s32.clone()),
        ),
        (
            "startup 3.9999",
            encoded(|b| s39999.encode(b)),
            FrontendStartup::Startup(s39999.clone()),
        ),
        (
            "startup without params",
            packet(196608, &[0]),
            FrontendStartup::Startup(startup(ProtocolVersion::V3_0, &[])),
        ),
    ]
}

#[test]
fn valid_packets_decode_and_consume_exactly() {
    for (name, bytes, want) in valid_cases() {
        let mut with_trailer = bytes.clone();
        with_trailer.extend_from_slice(b"\x16trailing");
        let got = decode_frontend_startup(&with_trailer).unwrap();
        assert_eq!(
            got,
            Decoded::Complete {
                value: want,
                consumed: bytes.len()
            },
            "{name}"
        );
    }
}

#[test]
fn every_prefix_is_incomplete() {
    for (name, bytes, _) in valid_cases() {
        for n in 0..bytes.len() {
            let got = decode_frontend_startup(&bytes[..n]);
            assert_eq!(got, Ok(Decoded::Incomplete), "{name}: prefix {n}");
        }
    }
}

#[test]
fn round_trip_encode_decode() {
    for (name, bytes, value) in valid_cases() {
        let re = match &value {
            FrontendStartup::SslRequest => encoded(encode_ssl_request),
            FrontendStartup::GssEncRequest => encoded(encode_gssenc_request),
            FrontendStartup::Cancel(c) => encoded(|b| c.encode(b)),
            FrontendStartup::Startup(s) => encoded(|b| s.encode(b)),
            FrontendStartup::DirectTls => unreachable!(),
        };
        assert_eq!(re, bytes, "{name}");
    }
}

#[test]
fn request_codes() {
    assert_eq!(
        &encoded(encode_ssl_request)[4..],
        &80877103u32.to_be_bytes()
    );
    assert_eq!(
        &encoded(encode_gssenc_request)[4..],
        &80877104u32.to_be_bytes()
    );
    assert_eq!(CANCEL_REQUEST_CODE, 80877102);
    assert_eq!(&cancel_bytes(1, b"abcd")[4..8], &80877102u32.to_be_bytes());
    assert_eq!(encoded(|b| encode_ssl_response(true, b)), b"S");
    assert_eq!(encoded(|b| encode_ssl_response(false, b)), b"N");
}

#[test]
fn direct_tls_detected_from_first_byte() {
    // TLS 1.x handshake record header: 0x16 0x03 0x01 ...
    for buf in [&[0x16u8][..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]] {
        assert_eq!(
            decode_frontend_startup(buf),
            Ok(Decoded::Complete {
                value: FrontendStartup::DirectTls,
                consumed: 0
            })
        );
    }
}

#[test]
fn lengths_rejected_before_body_arrives() {
    let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        (
            "10001",
            10_001u32.to_be_bytes().to_vec(),
            ProtocolError::StartupTooLarge { len: 10_001 },
        ),
        (
            "max+1 with code",
            packet_header(MAX_STARTUP_PACKET_LEN as u32 + 1, 196608),
            ProtocolError::StartupTooLarge {
                len: MAX_STARTUP_PACKET_LEN + 1,
            },
        ),
        (
            "negative",
            vec![0xff, 0xff, 0xff, 0xff],
            ProtocolError::StartupTooLarge {
                len: u32::MAX as usize,
            },
        ),
        // One byte is enough to know the length is over 10,000.
        (
            "first byte",
            vec![0x01],
            ProtocolError::StartupTooLarge { len: 0x0100_0000 },
        ),
        (
            "two bytes",
            vec![0x00, 0x01],
            ProtocolError::StartupTooLarge { len: 0x0001_0000 },
        ),
        (
            "0",
            vec![0, 0, 0, 0],
            ProtocolError::StartupTooShort { len: 0 },
        ),
        (
            "7",
            vec![0, 0, 0, 7],
            ProtocolError::StartupTooShort { len: 7 },
        ),
        (
            "http",
            b"GET / HTTP/1.1\r\n".to_vec(),
            ProtocolError::StartupTooLarge { len: 0x4745_5420 },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode_frontend_startup(&bytes), Err(want), "{name}");
    }
    // The largest allowed length waits for its body.
    assert_eq!(
        decode_frontend_startup(&packet_header(MAX_STARTUP_PACKET_LEN as u32, 196608)),
        Ok(Decoded::Incomplete)
    );
}

fn packet_header(len: u32, code: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u32(len);
    v.put_u32(code);
    v
}

#[test]
fn bad_codes_and_shapes_rejected_from_header() {
    let key_err = |len| ProtocolError::InvalidCancelKeyLength { len };
    let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        (
            "cancel key 3",
            packet_header(15, CANCEL_REQUEST_CODE),
            key_err(3),
        ),
        (
            "cancel no key",
            packet_header(12, CANCEL_REQUEST_CODE),
            key_err(0),
        ),
        (
            "cancel short",
            packet_header(8, CANCEL_REQUEST_CODE),
            key_err(0),
        ),
        (
            "cancel key 257",
            packet_header(12 + MAX_CANCEL_KEY_LEN as u32 + 1, CANCEL_REQUEST_CODE),
            key_err(257),
        ),
        (
            "protocol 2.0",
            packet_header(100, 0x0002_0000),
            ProtocolError::UnsupportedProtocolVersion { major: 2, minor: 0 },
        ),
        (
            "protocol 4.0",
            packet_header(100, 0x0004_0000),
            ProtocolError::UnsupportedProtocolVersion { major: 4, minor: 0 },
        ),
        (
            "unknown 1234 code",
            packet_header(100, 80877105),
            ProtocolError::UnsupportedProtocolVersion {
                major: 1234,
                minor: 5681,
            },
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(decode_frontend_startup(&bytes), Err(want), "{name}");
    }
    for (name, bytes) in [
        ("ssl len 12", packet(80877103, &[0; 4])),
        ("gss len 9", packet(80877104, &[0])),
    ] {
        assert!(
            matches!(
                decode_frontend_startup(&bytes),
                Err(ProtocolError::MalformedStartup(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn malformed_startup_bodies() {
    let cases: &[(&str, &[u8])] = &[
        ("empty body", b""),
        ("no terminator", b"user\0bob\0"),
        ("name without value", b"user\0"),
        ("unterminated name", b"user"),
        ("data after terminator", b"user\0bob\0\0x"),
        ("invalid utf-8 name", b"us\xffer\0bob\0\0"),
        ("invalid utf-8 value", b"user\0b\xffob\0\0"),
    ];
    for (name, body) in cases {
        let got = decode_frontend_startup(&packet(196608, body));
        assert!(
            matches!(got, Err(ProtocolError::MalformedStartup(_))),
            "{name}: {got:?}"
        );
        assert_eq!(got.unwrap_err().sqlstate(), SqlState::PROTOCOL_VIOLATION);
    }
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random buffers, plus every valid packet with one
    // byte flipped: decoding must return, never panic or over-read.
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for _ in 0..2000 {
        let len = (next() % 64) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if buf.len() > 1 && next() % 2 == 0 {
            buf[0] = 0; // make the length plausible more often
            buf[1] = 0;
        }
        let _ = decode_frontend_startup(&buf);
    }
    for (_, bytes, _) in valid_cases() {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xa5;
            let _ = decode_frontend_startup(&b);
        }
    }
}

#[test]
fn startup_accessors() {
    let mut s = startup(
        ProtocolVersion::V3_0,
        &[("user", "a"), ("application_name", "x"), ("user", "b")],
    );
    assert_eq!(s.user(), Some("b"), "last occurrence wins, like PostgreSQL");
    assert_eq!(s.database(), Some("b"), "database defaults to user");
    s.set("user", "forced");
    assert_eq!(
        s.params,
        vec![
            ("user".into(), "forced".into()),
            ("application_name".into(), "x".into())
        ]
    );
    s.set("database", "db");
    assert_eq!(s.database(), Some("db"));
    assert_eq!(s.get("missing"), None);
    assert_eq!(
        s.params.last().unwrap(),
        &("database".to_string(), "db".to_string())
    );
    let bytes = encoded(|b| s.encode(b));
    assert_eq!(bytes.len(), s.encoded_len());
}

#[test]
fn embedded_nul_in_set_value_cannot_inject_params() {
    let mut s = startup(ProtocolVersion::V3_0, &[("user", "a")]);
    s.set("user", "x\0database\0evil");
    let bytes = encoded(|b| s.encode(b));
    let (v, _) = decode_frontend_startup(&bytes).unwrap().complete().unwrap();
    let FrontendStartup::Startup(d) = v else {
        panic!()
    };
    assert_eq!(d.params, vec![("user".to_string(), "x".to_string())]);
}

#[test]
fn protocol_version_helpers() {
    assert_eq!(ProtocolVersion::V3_0.code(), 196608);
    assert_eq!(ProtocolVersion::V3_2.code(), 196610);
    assert_eq!(ProtocolVersion::from_code(196610), ProtocolVersion::V3_2);
    assert!(ProtocolVersion::V3_2.has_long_cancel_keys());
    assert!(!ProtocolVersion::V3_0.has_long_cancel_keys());
    assert_eq!(ProtocolVersion::V3_2.to_string(), "3.2");
}

mod pgwire_interop;
