//! Server-side SCRAM-SHA-256: RFC 7677 vector, full exchanges against
//! postgres-protocol's client, and malformed input. SCRAM-SHA-256-PLUS is in
//! `channel_binding.rs`.

mod channel_binding;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use rds_iam_protocol::limits::MAX_PASSWORD_MESSAGE_LEN;
use rds_iam_protocol::scram::*;
use rds_iam_protocol::*;

const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_secret() -> ScramSecret {
    ScramSecret::from_password("pencil", &B64.decode(RFC_SALT).unwrap(), 4096)
}

fn initial(data: &[u8]) -> Vec<u8> {
    initial_with(SCRAM_SHA_256, data)
}

/// SASLInitialResponse body selecting `mechanism`, encoded by postgres-protocol.
fn initial_with(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::sasl_initial_response(mechanism, data, &mut b).unwrap();
    body(&b)
}

fn response(data: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::sasl_response(data, &mut b).unwrap();
    body(&b)
}

/// Body of a client `p` frame via our decoder.
fn body(frame: &[u8]) -> Vec<u8> {
    let (v, n) = decode_password_frame(frame).unwrap().complete().unwrap();
    assert_eq!(n, frame.len());
    v.to_vec()
}

/// Payload of a server SASLContinue/SASLFinal frame, checked with our decoder.
fn sasl_payload(out: &[u8], code: u32) -> Vec<u8> {
    let (m, n) = decode_backend_message(out).unwrap().complete().unwrap();
    assert_eq!(
        (m, n),
        (BackendMessage::AuthenticationOther(code), out.len())
    );
    out[9..].to_vec()
}

#[test]
fn rfc7677_test_vector() {
    let mut server = ScramServer::new(rfc_secret(), RFC_SERVER_NONCE);
    let mut out = BytesMut::new();
    let step = server.on_password_message(&initial(RFC_CLIENT_FIRST.as_bytes()), &mut out);
    assert_eq!(step, Ok(ScramStep::Continue));
    assert_eq!(sasl_payload(&out, 11), RFC_SERVER_FIRST.as_bytes());
    out.clear();
    let step = server.on_password_message(&response(RFC_CLIENT_FINAL.as_bytes()), &mut out);
    assert_eq!(step, Ok(ScramStep::Authenticated));
    assert_eq!(sasl_payload(&out, 12), RFC_SERVER_FINAL.as_bytes());
    out.clear();
    assert_eq!(
        server.on_password_message(b"", &mut out),
        Err(ScramError::Finished)
    );
}

/// postgres-protocol's client sends the GS2 flag "n" for `ChannelBinding::unsupported()`.
fn flag_n() -> ChannelBinding {
    ChannelBinding::unsupported()
}

/// ... and "y" (it could bind, but the server offered no -PLUS) for `unrequested()`.
fn flag_y() -> ChannelBinding {
    ChannelBinding::unrequested()
}

/// Runs a whole exchange with postgres-protocol's client.
fn exchange(secret: ScramSecret, password: &str, cb: ChannelBinding) -> Result<(), ScramError> {
    let server = ScramServer::new(secret, &server_nonce_from_random(&[7u8; 18]));
    exchange_on(server, SCRAM_SHA_256, password, cb)
}

/// Runs a whole exchange between `server` and postgres-protocol's client, which
/// selects `mechanism`.
fn exchange_on(
    mut server: ScramServer,
    mechanism: &str,
    password: &str,
    cb: ChannelBinding,
) -> Result<(), ScramError> {
    let mut client = ScramSha256::new(password.as_bytes(), cb);
    let mut out = BytesMut::new();
    assert_eq!(
        server.on_password_message(&initial_with(mechanism, client.message()), &mut out)?,
        ScramStep::Continue
    );
    client.update(&sasl_payload(&out, 11)).unwrap();
    out.clear();
    let step = server.on_password_message(&response(client.message()), &mut out)?;
    assert_eq!(step, ScramStep::Authenticated);
    client
        .finish(&sasl_payload(&out, 12))
        .expect("client accepts the server signature");
    Ok(())
}

#[test]
fn full_exchange_with_postgres_protocol_client() {
    let secret = || ScramSecret::from_password("s3cret", b"0123456789abcdef", DEFAULT_ITERATIONS);
    exchange(secret(), "s3cret", flag_n()).unwrap();
    // "y,,": client can bind, we offer no -PLUS: allowed.
    exchange(secret(), "s3cret", flag_y()).unwrap();
    assert_eq!(
        exchange(secret(), "wrong", flag_y()),
        Err(ScramError::InvalidProof)
    );
    assert_eq!(
        ScramError::InvalidProof.sqlstate(),
        SqlState::INVALID_PASSWORD
    );
}

#[test]
fn verifier_from_postgres_protocol_parses_and_authenticates() {
    let stored = postgres_protocol::password::scram_sha_256(b"hunter2");
    let secret = ScramSecret::parse(&stored).unwrap();
    assert_eq!(secret.iterations, 4096);
    exchange(secret.clone(), "hunter2", flag_y()).unwrap();
    assert_eq!(
        exchange(secret, "hunter3", flag_y()),
        Err(ScramError::InvalidProof)
    );
}

#[test]
fn secret_parse_rejects_garbage() {
    for s in [
        "",
        "md5abc",
        "SCRAM-SHA-256$4096:c2FsdA==",
        "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$99999999:c2FsdA==$AAAA:AAAA",
        "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
    ] {
        assert!(ScramSecret::parse(s).is_err(), "{s}");
    }
}

#[test]
fn client_first_errors() {
    let cases: Vec<(&str, Vec<u8>, ScramError)> = vec![
        (
            "channel binding",
            initial(b"p=tls-server-end-point,,n=,r=abc"),
            ScramError::ChannelBindingNotSelected,
        ),
        (
            "authzid",
            initial(b"n,a=bob,n=,r=abc"),
            ScramError::Malformed("authorization identity not supported"),
        ),
        (
            "no nonce",
            initial(b"n,,n="),
            ScramError::Malformed("expected r= attribute"),
        ),
        (
            "empty nonce",
            initial(b"n,,n=,r="),
            ScramError::Malformed("bad client nonce"),
        ),
        (
            "extension first",
            initial(b"n,,m=x,n=,r=abc"),
            ScramError::Malformed("expected n= attribute"),
        ),
        (
            "bad flag",
            initial(b"x,,n=,r=abc"),
            ScramError::Malformed("bad channel binding flag"),
        ),
        (
            "not utf8",
            initial(b"n,,n=\xff,r=abc"),
            ScramError::Malformed("not UTF-8"),
        ),
        (
            "-PLUS without TLS",
            initial_with(SCRAM_SHA_256_PLUS, b"p=tls-server-end-point,,n=,r=a"),
            ScramError::ChannelBindingUnavailable,
        ),
        (
            "unknown mechanism",
            initial_with("SCRAM-SHA-1", b"n,,n=,r=a"),
            ScramError::UnsupportedMechanism("SCRAM-SHA-1".into()),
        ),
        (
            "length mismatch",
            b"SCRAM-SHA-256\0\0\0\0\x0an,,n=,r=a".to_vec(),
            ScramError::Malformed("data length mismatch"),
        ),
        (
            "no length",
            b"SCRAM-SHA-256\0".to_vec(),
            ScramError::Malformed("no data length"),
        ),
        (
            "minus one",
            b"SCRAM-SHA-256\0\xff\xff\xff\xff".to_vec(),
            ScramError::Malformed("data length mismatch"),
        ),
    ];
    for (name, body, want) in cases {
        let mut server = ScramServer::new(rfc_secret(), RFC_SERVER_NONCE);
        let mut out = BytesMut::new();
        assert_eq!(
            server.on_password_message(&body, &mut out),
            Err(want),
            "{name}"
        );
        assert!(out.is_empty(), "{name}: nothing written on error");
        assert_eq!(
            server.on_password_message(&body, &mut out),
            Err(ScramError::Finished),
            "{name}"
        );
    }
}

#[test]
fn client_final_errors() {
    let cases: Vec<(&str, String, ScramError)> = vec![
        (
            "nonce mismatch",
            RFC_CLIENT_FINAL.replace("k0,p=", "k1,p="),
            ScramError::NonceMismatch,
        ),
        (
            "channel data",
            RFC_CLIENT_FINAL.replace("c=biws", "c=eSws"),
            ScramError::Malformed("channel binding data does not match"),
        ),
        (
            "no proof",
            "c=biws,r=x".into(),
            ScramError::Malformed("missing proof"),
        ),
        (
            "short proof",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA".into(),
            ScramError::Malformed("bad proof"),
        ),
        (
            "wrong proof",
            RFC_CLIENT_FINAL.replace("p=dH", "p=dI"),
            ScramError::InvalidProof,
        ),
    ];
    for (name, fin, want) in cases {
        let mut server = ScramServer::new(rfc_secret(), RFC_SERVER_NONCE);
        let mut out = BytesMut::new();
        server
            .on_password_message(&initial(RFC_CLIENT_FIRST.as_bytes()), &mut out)
            .unwrap();
        out.clear();
        assert_eq!(
            server.on_password_message(&response(fin.as_bytes()), &mut out),
            Err(want),
            "{name}"
        );
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn authentication_sasl_frame() {
    let mut out = BytesMut::new();
    encode_authentication_sasl(&mut out);
    assert_eq!(
        decode_backend_message(&out).unwrap(),
        Decoded::Complete {
            value: BackendMessage::AuthenticationSasl {
                mechanisms: vec!["SCRAM-SHA-256".into()]
            },
            consumed: out.len()
        }
    );
}

#[test]
fn password_frame_limits_and_prefixes() {
    let mut frame = BytesMut::new();
    frontend::password_message(b"pw", &mut frame).unwrap();
    for n in 0..frame.len() {
        assert_eq!(
            decode_password_frame(&frame[..n]),
            Ok(Decoded::Incomplete),
            "prefix {n}"
        );
    }
    assert_eq!(body(&frame), b"pw\0");
    let too_big = (MAX_PASSWORD_MESSAGE_LEN as u32 + 1).to_be_bytes();
    assert!(matches!(
        decode_password_frame(&[b'p', too_big[0], too_big[1], too_big[2], too_big[3]]),
        Err(ProtocolError::FrontendMessageTooLarge { .. })
    ));
    assert!(matches!(
        decode_password_frame(&[b'p', 0, 0, 0, 3]),
        Err(ProtocolError::MalformedFrontendMessage { .. })
    ));
    assert!(matches!(
        decode_password_frame(b"Q\0\0\0\x05x"),
        Err(ProtocolError::MalformedFrontendMessage { tag: b'Q', .. })
    ));
}
