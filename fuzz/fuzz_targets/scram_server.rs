//! The client's `p` frames after the proxy offers SCRAM-SHA-256 (`client_password`,
//! proxy/src/connection/client_auth.rs): frames through `decode_password_frame`, bodies into
//! `ScramServer`. The proof in the client-final-message is computed here independently: when
//! the input's client-final ends with an empty `p=`, the correct proof for the password is
//! filled in, so the fuzzer reaches the proof check and the success path; a proof the server
//! accepts must be the correct one, and the correct one must never be refused as invalid.
#![no_main]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::BytesMut;
use hmac::{KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use rds_iam_fuzz::{check_error, decode_like_reads};
use rds_iam_protocol::backend::auth_code;
use rds_iam_protocol::limits::MAX_PASSWORD_MESSAGE_LEN;
use rds_iam_protocol::scram::{
    decode_password_frame, ScramError, ScramSecret, ScramServer, ScramStep,
};
use rds_iam_protocol::{decode_backend_message, BackendMessage, Decoded};
use sha2::{Digest, Sha256};

const PASSWORD: &[u8] = b"pencil";
const SALT: &[u8] = b"fuzz-salt";
const ITERATIONS: u32 = 16;
const SERVER_NONCE: &str = "c2VydmVyLW5vbmNl";

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802 Hi(), ClientKey, StoredKey, ServerKey, computed here rather than by the crate.
fn keys() -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut u = hmac(PASSWORD, &[SALT, &1u32.to_be_bytes()].concat());
    let mut salted = u;
    for _ in 1..ITERATIONS {
        u = hmac(PASSWORD, &u);
        salted.iter_mut().zip(u).for_each(|(s, x)| *s ^= x);
    }
    let client_key = hmac(&salted, b"Client Key");
    (
        client_key,
        Sha256::digest(client_key).into(),
        hmac(&salted, b"Server Key"),
    )
}

fuzz_target!(|data: &[u8]| {
    let (client_key, stored_key, server_key) = keys();
    let secret = ScramSecret {
        iterations: ITERATIONS,
        salt: SALT.to_vec(),
        stored_key,
        server_key,
    };
    let mut server = ScramServer::new(secret, SERVER_NONCE);
    // client-first-message-bare + "," + server-first-message, once the first step passed.
    let mut auth_prefix: Option<String> = None;
    let mut ended = false;
    let mut rest = data;
    loop {
        let (body, consumed) = match decode_like_reads(rest, decode_password_frame) {
            Err(e) => return check_error(&e),
            Ok(Decoded::Incomplete) => return,
            Ok(Decoded::Complete { value, consumed }) => (value, consumed),
        };
        assert!(consumed <= 1 + MAX_PASSWORD_MESSAGE_LEN);
        assert_eq!(body.len() + 5, consumed);
        assert_eq!(&rest[5..consumed], &body[..]);
        rest = &rest[consumed..];

        let mut body = body.to_vec();
        let mut expected_signature = None;
        if let Some(prefix) = &auth_prefix {
            if let Some(without_proof) = body.strip_suffix(b",p=") {
                // The honest client's proof for what the input says.
                let auth_message = [prefix.as_bytes(), b",", without_proof].concat();
                let signature = hmac(&stored_key, &auth_message);
                let proof: Vec<u8> = client_key
                    .iter()
                    .zip(signature)
                    .map(|(k, s)| k ^ s)
                    .collect();
                body.extend_from_slice(B64.encode(proof).as_bytes());
                expected_signature = Some(hmac(&server_key, &auth_message));
            }
        }

        let mut out = BytesMut::new();
        let step = server.on_password_message(&body, &mut out);
        if ended {
            assert_eq!(step, Err(ScramError::Finished));
            continue;
        }
        match step {
            Ok(ScramStep::Continue) => {
                assert!(auth_prefix.is_none(), "continued twice");
                let server_first = sasl_payload(&out, auth_code::SASL_CONTINUE);
                let bare = client_first_bare(&body);
                let client_nonce = bare.split(',').nth(1).unwrap().strip_prefix("r=").unwrap();
                let want = format!(
                    "r={client_nonce}{SERVER_NONCE},s={},i={ITERATIONS}",
                    B64.encode(SALT)
                );
                assert_eq!(server_first, want);
                auth_prefix = Some(format!("{bare},{server_first}"));
            }
            Ok(ScramStep::Authenticated) => {
                let Some(signature) = expected_signature else {
                    panic!("authenticated by a proof the fuzzer made up: {body:?}");
                };
                let server_final = sasl_payload(&out, auth_code::SASL_FINAL);
                assert_eq!(server_final, format!("v={}", B64.encode(signature)));
                ended = true;
            }
            Err(e) => {
                assert!(
                    !(expected_signature.is_some() && e == ScramError::InvalidProof),
                    "the correct proof was refused"
                );
                assert_eq!(e.sqlstate().0.len(), 5);
                let _ = e.to_string();
                ended = true;
            }
        }
    }
});

/// The text after the auth code of the `R` frame the server wrote, which must be one frame.
fn sasl_payload(out: &[u8], code: u32) -> String {
    let (message, consumed) = decode_backend_message(out).unwrap().complete().unwrap();
    assert_eq!(consumed, out.len());
    assert_eq!(message, BackendMessage::AuthenticationOther(code));
    String::from_utf8(out[9..].to_vec()).unwrap()
}

/// client-first-message-bare of an accepted SASLInitialResponse body (parsed here as RFC 5802
/// and the PostgreSQL docs describe it, not by the crate).
fn client_first_bare(body: &[u8]) -> String {
    let nul = body.iter().position(|&b| b == 0).unwrap();
    assert_eq!(&body[..nul], b"SCRAM-SHA-256");
    let data = &body[nul + 5..];
    let len = i32::from_be_bytes(body[nul + 1..nul + 5].try_into().unwrap());
    assert_eq!(len as usize, data.len());
    let text = std::str::from_utf8(data).unwrap();
    let mut parts = text.splitn(3, ',');
    let cbind = parts.next().unwrap();
    assert!(
        cbind == "n" || cbind == "y",
        "channel binding flag {cbind:?} accepted"
    );
    assert_eq!(parts.next(), Some(""), "authzid accepted");
    let bare = parts.next().unwrap();
    assert!(bare.starts_with("n="));
    bare.to_string()
}
