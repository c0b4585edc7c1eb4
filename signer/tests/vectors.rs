//! Token minting: byte-for-byte against botocore's vectors, and special user names against an
//! independent SigV4 computation written here from the spec (hmac + sha2, no aws-sigv4).

use aws_credential_types::Credentials;
use hmac::{Hmac, KeyInit, Mac};
use rds_iam_signer::{generate_auth_token, AuthToken, TokenRequest};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

struct Vector {
    creds: Credentials,
    req: TokenRequest,
    time: SystemTime,
    token: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("data/rds-auth-tokens.json");
    let all: Vec<Value> = serde_json::from_str(text).expect("vectors parse");
    assert!(all.len() >= 3, "expected at least 3 vectors");
    all.iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
            Vector {
                creds: Credentials::new(
                    s("access_key_id"),
                    s("secret_access_key"),
                    v["session_token"].as_str().map(str::to_string),
                    None,
                    "vectors",
                ),
                req: TokenRequest {
                    host: s("hostname"),
                    port: u16::try_from(v["port"].as_u64().unwrap()).unwrap(),
                    user: s("username"),
                    region: s("region"),
                },
                time: OffsetDateTime::parse(&s("signing_time"), &Rfc3339)
                    .unwrap()
                    .into(),
                token: s("token"),
            }
        })
        .collect()
}

#[test]
fn every_vector_matches_botocore_byte_for_byte() {
    for v in vectors() {
        let token = generate_auth_token(&v.creds, &v.req, v.time).unwrap();
        assert_eq!(token.expose(), v.token, "vector for user {}", v.req.user);
    }
}

// ---- independent SigV4 (query-string presign) from the AWS spec --------------------------

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &str) -> String {
    hex::encode(Sha256::digest(data.as_bytes()))
}

/// The token botocore would produce, computed step by step.
fn reference_token(creds: &Credentials, req: &TokenRequest, at: SystemTime) -> String {
    let t = OffsetDateTime::from(at);
    let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
    let scope = format!("{date}/{}/rds-db/aws4_request", req.region);
    let credential = format!("{}/{scope}", creds.access_key_id());
    let host_header = if req.port == 443 {
        req.host.to_ascii_lowercase()
    } else {
        format!("{}:{}", req.host.to_ascii_lowercase(), req.port)
    };

    let mut query: Vec<(String, String)> = vec![
        ("Action".into(), "connect".into()),
        ("DBUser".into(), req.user.clone()),
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("X-Amz-Credential".into(), credential.clone()),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Expires".into(), "900".into()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ];
    if let Some(tok) = creds.session_token() {
        query.push(("X-Amz-Security-Token".into(), tok.into()));
    }
    let mut canonical_query: Vec<(String, String)> =
        query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    canonical_query.sort();
    let canonical_query = canonical_query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "GET\n/\n{canonical_query}\nhost:{host_header}\n\nhost\n{}",
        sha256_hex("")
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(&canonical_request)
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key()).as_bytes(),
        &date,
    );
    let k_region = hmac(&k_date, &req.region);
    let k_service = hmac(&k_region, "rds-db");
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex::encode(hmac(&k_signing, &string_to_sign));

    // botocore's output order: the signature last, the session token just before it.
    let mut out = format!("{}:{}/?", req.host, req.port);
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Security-Token")
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if let Some(tok) = creds.session_token() {
        parts.push(format!("X-Amz-Security-Token={}", enc(tok)));
    }
    parts.push(format!("X-Amz-Signature={signature}"));
    out.push_str(&parts.join("&"));
    out
}

#[test]
fn reference_implementation_reproduces_the_vectors() {
    // Guards the guard: the hand-written SigV4 must itself agree with botocore.
    for v in vectors() {
        assert_eq!(reference_token(&v.creds, &v.req, v.time), v.token);
    }
}

#[test]
fn special_user_names_match_independent_sigv4() {
    let at = OffsetDateTime::parse("2025-03-04T05:06:07Z", &Rfc3339)
        .unwrap()
        .into();
    let creds = [
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "t",
        ),
        Credentials::new(
            "ASIAEXAMPLE",
            "secret/with+chars=",
            Some("FQoGZXIvYXdzE+/token==".into()),
            None,
            "t",
        ),
    ];
    let users = [
        "app.reader@example.com",
        "a+b",
        "with space",
        "100%pure",
        "üñíçødé_用户",
        "semi;colon&amp=eq?#frag/slash",
        "tilde~dash-dot.under_score",
    ];
    for c in &creds {
        for user in users {
            for (host, port) in [
                ("Mixed.Case.us-east-1.rds.amazonaws.com", 5432),
                ("db.example", 443),
            ] {
                let req = TokenRequest::new(host, port, user, "us-east-1");
                let got = generate_auth_token(c, &req, at).unwrap();
                assert_eq!(
                    got.expose(),
                    reference_token(c, &req, at),
                    "user {user:?} port {port}"
                );
                // The user appears RFC 3986-encoded: no raw reserved characters.
                assert!(got.expose().contains(&format!("DBUser={}&", enc(user))));
            }
        }
    }
    // Encoding matters: '+' and ' ' must not sign the same.
    let plus = generate_auth_token(
        &creds[0],
        &TokenRequest::new("h.example", 5432, "a+b", "us-east-1"),
        at,
    )
    .unwrap();
    let space = generate_auth_token(
        &creds[0],
        &TokenRequest::new("h.example", 5432, "a b", "us-east-1"),
        at,
    )
    .unwrap();
    let sig = |t: &AuthToken| {
        t.expose()
            .rsplit_once("X-Amz-Signature=")
            .unwrap()
            .1
            .to_string()
    };
    assert_ne!(sig(&plus), sig(&space));
}

#[test]
fn token_changes_with_time_and_user() {
    let v = &vectors()[0];
    let later = generate_auth_token(&v.creds, &v.req, v.time + Duration::from_secs(1)).unwrap();
    assert_ne!(later.expose(), v.token);
    let mut other = v.req.clone();
    other.user.push('2');
    assert_ne!(
        generate_auth_token(&v.creds, &other, v.time)
            .unwrap()
            .expose(),
        v.token
    );
}

#[test]
fn debug_and_display_are_redacted() {
    for v in vectors() {
        let token = generate_auth_token(&v.creds, &v.req, v.time).unwrap();
        let shown = [
            format!("{token:?}"),
            format!("{token}"),
            format!("{:?}", Some(&token)),
        ];
        for s in &shown {
            assert!(s.contains("REDACTED"), "{s}");
            assert!(s.contains(&format!("{}:{}", v.req.host, v.req.port)), "{s}");
            assert!(s.contains(&v.req.user), "{s}");
            for secret in [
                "X-Amz-Signature",
                "X-Amz-Credential",
                "Action=connect",
                v.creds.access_key_id(),
            ] {
                assert!(!s.contains(secret), "{s} leaks {secret}");
            }
            let sig = v.token.rsplit_once('=').unwrap().1;
            assert!(!s.contains(sig), "{s} leaks the signature");
            if let Some(st) = v.creds.session_token() {
                assert!(!s.contains(&st[..16]), "{s} leaks the session token");
            }
        }
        assert_eq!(token.user(), v.req.user);
    }
}
