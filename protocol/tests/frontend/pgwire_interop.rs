//! Our frontend codec against pgwire's: each side decodes what the other encodes.

use super::*;

#[test]
fn our_startup_decodes_with_pgwire() {
    let s = startup(
        ProtocolVersion::V3_2,
        &[
            ("user", "alice"),
            ("database", "db"),
            ("application_name", "app"),
        ],
    );
    let mut buf = BytesMut::new();
    s.encode(&mut buf);
    let pg = Startup::decode(&mut buf, &DecodeContext::new(PgVersion::PROTOCOL3_2))
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    assert_eq!((pg.protocol_number_major, pg.protocol_number_minor), (3, 2));
    let mut ours: Vec<_> = s.params.clone();
    ours.sort();
    assert_eq!(pg.parameters.into_iter().collect::<Vec<_>>(), ours);
}

#[test]
fn pgwire_startup_decodes_with_ours() {
    let mut pg = Startup::new();
    pg.parameters.insert("user".into(), "alice".into());
    pg.parameters.insert("database".into(), "db".into());
    let mut buf = BytesMut::new();
    pg.encode(&mut buf).unwrap();
    let (v, n) = decode_frontend_startup(&buf).unwrap().complete().unwrap();
    assert_eq!(n, buf.len());
    let FrontendStartup::Startup(s) = v else {
        panic!("{v:?}")
    };
    assert_eq!(s.version, ProtocolVersion::V3_0);
    assert_eq!(s.user(), Some("alice"));
    assert_eq!(s.get("database"), Some("db"));
}

#[test]
fn pgwire_ssl_and_gss_requests_decode_with_ours() {
    let mut buf = BytesMut::new();
    SslRequest::new().encode(&mut buf).unwrap();
    assert_eq!(buf.to_vec(), encoded(encode_ssl_request));
    assert_eq!(
        decode_frontend_startup(&buf),
        Ok(Decoded::Complete {
            value: FrontendStartup::SslRequest,
            consumed: 8
        })
    );
    let mut buf = BytesMut::new();
    GssEncRequest::new().encode(&mut buf).unwrap();
    assert_eq!(
        decode_frontend_startup(&buf),
        Ok(Decoded::Complete {
            value: FrontendStartup::GssEncRequest,
            consumed: 8
        })
    );
}

#[test]
fn cancel_requests_against_pgwire_both_versions() {
    // 3.0: 4-byte key, pgwire decodes it as I32 only with a 3.0 context.
    let ours = CancelRequest {
        pid: 1234,
        secret: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
    };
    let mut buf = BytesMut::new();
    ours.encode(&mut buf);
    let pg = PgCancel::decode(
        &mut buf.clone(),
        &DecodeContext::new(PgVersion::PROTOCOL3_0),
    )
    .unwrap()
    .unwrap();
    assert_eq!(pg.pid, 1234);
    assert_eq!(pg.secret_key, SecretKey::I32(0xdeadbeefu32 as i32));

    // 3.2: 32-byte key.
    let key: Vec<u8> = (100..132).collect();
    let ours = CancelRequest {
        pid: 99,
        secret: Bytes::from(key.clone()),
    };
    let mut buf = BytesMut::new();
    ours.encode(&mut buf);
    let pg = PgCancel::decode(&mut buf, &DecodeContext::new(PgVersion::PROTOCOL3_2))
        .unwrap()
        .unwrap();
    assert_eq!(pg.secret_key, SecretKey::Bytes(Bytes::from(key.clone())));

    // And pgwire's encoding decodes with ours.
    let mut buf = BytesMut::new();
    PgCancel::new(99, SecretKey::Bytes(Bytes::from(key.clone())))
        .encode(&mut buf)
        .unwrap();
    assert_eq!(
        decode_frontend_startup(&buf).unwrap(),
        Decoded::Complete {
            value: FrontendStartup::Cancel(CancelRequest {
                pid: 99,
                secret: Bytes::from(key)
            }),
            consumed: buf.len()
        }
    );
}
