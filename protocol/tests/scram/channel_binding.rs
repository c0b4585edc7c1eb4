//! SCRAM-SHA-256-PLUS with `tls-server-end-point`: whole exchanges against
//! postgres-protocol's client, PostgreSQL's refusals (auth-scram.c) and the
//! mechanism lists.

use super::*;
use sha2::{Digest, Sha256, Sha384};

/// Stands in for the hash of the certificate the proxy presented.
fn end_point() -> Vec<u8> {
    Sha256::digest(b"the proxy's certificate, DER").to_vec()
}

fn secret() -> ScramSecret {
    ScramSecret::from_password("s3cret", b"0123456789abcdef", DEFAULT_ITERATIONS)
}

fn tls_server(data: Option<Vec<u8>>) -> ScramServer {
    ScramServer::with_channel_binding(secret(), &server_nonce_from_random(&[9u8; 18]), data)
}

fn plus_client(data: Vec<u8>) -> ChannelBinding {
    ChannelBinding::tls_server_end_point(data)
}

#[test]
fn plus_exchange_with_postgres_protocol_client() {
    let server = tls_server(Some(end_point()));
    assert!(server.channel_binding_offered());
    exchange_on(
        server,
        SCRAM_SHA_256_PLUS,
        "s3cret",
        plus_client(end_point()),
    )
    .unwrap();
    assert_eq!(
        exchange_on(
            tls_server(Some(end_point())),
            SCRAM_SHA_256_PLUS,
            "wrong",
            plus_client(end_point())
        ),
        Err(ScramError::InvalidProof)
    );
}

/// The `c=` the client sends is base64("p=tls-server-end-point,," + hash), and the server
/// accepts exactly that.
#[test]
fn plus_client_final_carries_the_certificate_hash() {
    let mut client = ScramSha256::new(b"s3cret", plus_client(end_point()));
    assert!(client
        .message()
        .starts_with(b"p=tls-server-end-point,,n=,r="));
    let mut server = tls_server(Some(end_point()));
    let mut out = BytesMut::new();
    let first = initial_with(SCRAM_SHA_256_PLUS, client.message());
    assert_eq!(
        server.on_password_message(&first, &mut out),
        Ok(ScramStep::Continue)
    );
    client.update(&sasl_payload(&out, 11)).unwrap();
    let want = [&b"p=tls-server-end-point,,"[..], &end_point()].concat();
    let want = format!("c={},", B64.encode(want));
    assert!(client.message().starts_with(want.as_bytes()));
    out.clear();
    assert_eq!(
        server.on_password_message(&response(client.message()), &mut out),
        Ok(ScramStep::Authenticated)
    );
    client.finish(&sasl_payload(&out, 12)).unwrap();
}

#[test]
fn wrong_binding_data_is_refused() {
    let cert = b"the proxy's certificate, DER";
    for (name, data) in [
        (
            "other certificate",
            Sha256::digest(b"another certificate").to_vec(),
        ),
        ("other hash", Sha384::digest(cert).to_vec()),
        ("truncated", end_point()[..31].to_vec()),
        ("one byte", vec![0]),
    ] {
        let got = exchange_on(
            tls_server(Some(end_point())),
            SCRAM_SHA_256_PLUS,
            "s3cret",
            plus_client(data),
        );
        assert_eq!(got, Err(ScramError::ChannelBindingMismatch), "{name}");
    }
    assert_eq!(
        ScramError::ChannelBindingMismatch.sqlstate(),
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    );
}

#[test]
fn client_final_binding_errors() {
    let header = "p=tls-server-end-point,,";
    let with_data = |data: &[u8]| B64.encode([header.as_bytes(), data].concat());
    let nonce = format!("abc{}", server_nonce_from_random(&[9u8; 18]));
    let zero_proof = B64.encode([0u8; 32]);
    let cases = [
        (
            "biws",
            "biws".to_string(),
            ScramError::ChannelBindingMismatch,
        ),
        ("eSws", "eSws".into(), ScramError::ChannelBindingMismatch),
        (
            "header only",
            with_data(b""),
            ScramError::ChannelBindingMismatch,
        ),
        (
            "data only",
            B64.encode(end_point()),
            ScramError::ChannelBindingMismatch,
        ),
        ("empty", String::new(), ScramError::ChannelBindingMismatch),
        // Binding checks out: the proof is next.
        ("right", with_data(&end_point()), ScramError::InvalidProof),
    ];
    for (name, c, want) in cases {
        let mut server = tls_server(Some(end_point()));
        let mut out = BytesMut::new();
        let first = initial_with(SCRAM_SHA_256_PLUS, format!("{header}n=,r=abc").as_bytes());
        assert_eq!(
            server.on_password_message(&first, &mut out),
            Ok(ScramStep::Continue)
        );
        out.clear();
        let fin = format!("c={c},r={nonce},p={zero_proof}");
        assert_eq!(
            server.on_password_message(&response(fin.as_bytes()), &mut out),
            Err(want),
            "{name}"
        );
        assert!(out.is_empty(), "{name}");
    }
}

#[test]
fn downgrade_to_y_is_refused_when_plus_was_offered() {
    let got = exchange_on(
        tls_server(Some(end_point())),
        SCRAM_SHA_256,
        "s3cret",
        flag_y(),
    );
    assert_eq!(got, Err(ScramError::ChannelBindingDowngrade));
    assert_eq!(
        ScramError::ChannelBindingDowngrade.sqlstate(),
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    );
    // Without TLS nothing was offered, so "y" is the truth and allowed.
    exchange_on(tls_server(None), SCRAM_SHA_256, "s3cret", flag_y()).unwrap();
}

#[test]
fn plus_without_binding_data_is_refused() {
    for server in [
        ScramServer::new(secret(), "nonce"),
        tls_server(None),
        tls_server(Some(Vec::new())),
    ] {
        assert!(!server.channel_binding_offered());
        let got = exchange_on(
            server,
            SCRAM_SHA_256_PLUS,
            "s3cret",
            plus_client(end_point()),
        );
        assert_eq!(got, Err(ScramError::ChannelBindingUnavailable));
    }
    assert_eq!(
        ScramError::ChannelBindingUnavailable.sqlstate(),
        SqlState::PROTOCOL_VIOLATION
    );
}

#[test]
fn plain_scram_still_works_when_plus_is_offered() {
    exchange_on(
        tls_server(Some(end_point())),
        SCRAM_SHA_256,
        "s3cret",
        flag_n(),
    )
    .unwrap();
    let mut server = tls_server(Some(end_point()));
    let mut out = BytesMut::new();
    server
        .on_password_message(&initial(b"n,,n=,r=abc"), &mut out)
        .unwrap();
    out.clear();
    let nonce = format!("abc{}", server_nonce_from_random(&[9u8; 18]));
    let fin = format!("c=eSws,r={nonce},p={}", B64.encode([0u8; 32]));
    assert_eq!(
        server.on_password_message(&response(fin.as_bytes()), &mut out),
        Err(ScramError::Malformed("channel binding data does not match"))
    );
}

#[test]
fn client_first_binding_errors() {
    use ScramError as E;
    let p = SqlState::PROTOCOL_VIOLATION;
    let cases: Vec<(&str, &str, &str, E, SqlState)> = vec![
        (
            "plus n",
            SCRAM_SHA_256_PLUS,
            "n,,n=,r=abc",
            E::MissingChannelBinding,
            p,
        ),
        (
            "plus y",
            SCRAM_SHA_256_PLUS,
            "y,,n=,r=abc",
            E::MissingChannelBinding,
            p,
        ),
        (
            "tls-unique",
            SCRAM_SHA_256_PLUS,
            "p=tls-unique,,n=,r=abc",
            E::UnsupportedChannelBindingType("tls-unique".into()),
            p,
        ),
        (
            "empty type",
            SCRAM_SHA_256_PLUS,
            "p=,,n=,r=abc",
            E::UnsupportedChannelBindingType(String::new()),
            p,
        ),
        (
            "p without plus",
            SCRAM_SHA_256,
            "p=tls-server-end-point,,n=,r=abc",
            E::ChannelBindingNotSelected,
            p,
        ),
        (
            "y downgrade",
            SCRAM_SHA_256,
            "y,,n=,r=abc",
            E::ChannelBindingDowngrade,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        ),
        (
            "mechanism case",
            "scram-sha-256-plus",
            "p=tls-server-end-point,,n=,r=abc",
            E::UnsupportedMechanism("scram-sha-256-plus".into()),
            p,
        ),
        (
            "flag junk",
            SCRAM_SHA_256_PLUS,
            "ptls-server-end-point,,n=,r=abc",
            E::Malformed("bad channel binding flag"),
            p,
        ),
    ];
    for (name, mechanism, data, want, code) in cases {
        let mut server = tls_server(Some(end_point()));
        let mut out = BytesMut::new();
        let body = initial_with(mechanism, data.as_bytes());
        assert_eq!(
            server.on_password_message(&body, &mut out),
            Err(want.clone()),
            "{name}"
        );
        assert_eq!(want.sqlstate(), code, "{name}");
        assert!(out.is_empty(), "{name}: nothing written on error");
        assert_eq!(
            server.on_password_message(&body, &mut out),
            Err(ScramError::Finished),
            "{name}"
        );
    }
}

#[test]
fn mechanism_lists() {
    let plus = tls_server(Some(end_point()));
    assert_eq!(plus.mechanisms(), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    let mut out = BytesMut::new();
    plus.encode_authentication_sasl(&mut out);
    assert_eq!(
        &out[..],
        b"R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
    );
    assert_eq!(
        decode_backend_message(&out).unwrap(),
        Decoded::Complete {
            value: BackendMessage::AuthenticationSasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]
            },
            consumed: out.len()
        }
    );

    let want_plain = b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0";
    for server in [tls_server(None), ScramServer::new(secret(), "nonce")] {
        assert_eq!(server.mechanisms(), ["SCRAM-SHA-256"]);
        let mut out = BytesMut::new();
        server.encode_authentication_sasl(&mut out);
        assert_eq!(&out[..], want_plain);
    }
    let mut out = BytesMut::new();
    encode_authentication_sasl(&mut out);
    assert_eq!(&out[..], want_plain);
    assert_eq!(TLS_SERVER_END_POINT, "tls-server-end-point");
}
