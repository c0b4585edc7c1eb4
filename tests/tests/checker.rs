//! The token checker against botocore's vectors and hand-built tokens, one per refusal reason.

use std::time::{Duration, SystemTime};

use standin::checker::{parse_amz_date, Refusal, TokenChecker, TokenRequest};
use standin::{Credentials, FakeAws};

const HOST: &str = "db.cluster-abc.eu-central-1.rds.amazonaws.com";
const REGION: &str = "eu-central-1";
const USER: &str = "iam_user";

struct Vector {
    creds: Credentials,
    hostname: String,
    port: u16,
    username: String,
    region: String,
    signing_time: SystemTime,
    token: String,
}

fn vectors() -> Vec<Vector> {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../data/rds-auth-tokens.json")).unwrap();
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().to_owned();
    json.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let mut creds =
                Credentials::long_term(&s(v, "access_key_id"), &s(v, "secret_access_key"));
            creds.session_token = v["session_token"].as_str().map(str::to_owned);
            Vector {
                creds,
                hostname: s(v, "hostname"),
                port: v["port"].as_u64().unwrap() as u16,
                username: s(v, "username"),
                region: s(v, "region"),
                signing_time: humantime::parse_rfc3339(&s(v, "signing_time")).unwrap(),
                token: s(v, "token"),
            }
        })
        .collect()
}

fn vector_checker(v: &Vector) -> TokenChecker {
    let aws = FakeAws::new();
    aws.insert(v.creds.clone());
    TokenChecker::new(&v.hostname, v.port, &v.region, aws)
}

#[test]
fn botocore_vectors_verify_at_their_signing_time() {
    for v in vectors() {
        let verified = vector_checker(&v)
            .check(&v.token, &v.username, v.signing_time)
            .unwrap_or_else(|e| panic!("{}: {e}", v.hostname));
        assert_eq!(verified.db_user, v.username);
        assert_eq!(verified.signed_at, v.signing_time);
    }
}

#[test]
fn sign_for_test_reproduces_botocore_vectors_byte_for_byte() {
    for v in vectors() {
        let token = standin::sign_for_test(
            &v.hostname,
            v.port,
            &v.region,
            &v.username,
            &v.creds,
            v.signing_time,
        );
        assert_eq!(token, v.token);
    }
}

#[test]
fn tampering_any_byte_of_a_vector_fails() {
    for v in vectors() {
        let checker = vector_checker(&v);
        for i in 0..v.token.len() {
            let mut bytes = v.token.clone().into_bytes();
            // A different letter, not merely a different case (%2F and %2f mean the same).
            bytes[i] = if bytes[i].eq_ignore_ascii_case(&b'z') {
                b'y'
            } else {
                b'Z'
            };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(
                checker
                    .check(&tampered, &v.username, v.signing_time)
                    .is_err(),
                "byte {i} of {tampered}"
            );
        }
        // Flipping a signature hex digit to another hex digit is a bad signature.
        let mut bytes = v.token.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            checker
                .check(&tampered, &v.username, v.signing_time)
                .unwrap_err(),
            Refusal::BadSignature
        );
    }
}

#[test]
fn vector_with_session_token_is_over_its_expiry_window_at_use() {
    let v = vectors().pop().unwrap();
    let late = v.signing_time + Duration::from_secs(901);
    assert_eq!(
        vector_checker(&v)
            .check(&v.token, &v.username, late)
            .unwrap_err(),
        Refusal::Expired
    );
}

// ---- hand-built tokens, one refusal reason each ----

struct Fixture {
    aws: FakeAws,
    checker: TokenChecker,
    key: Credentials,
    now: SystemTime,
}

fn fixture() -> Fixture {
    let aws = FakeAws::new();
    let key = aws.create_access_key();
    Fixture {
        checker: TokenChecker::new(HOST, 5432, REGION, aws.clone()),
        aws,
        key,
        now: parse_amz_date("20250315T120000Z").unwrap(),
    }
}

impl Fixture {
    fn request(&self) -> TokenRequest {
        TokenRequest::new(HOST, 5432, REGION, USER, self.now)
    }

    fn check(&self, token: &str) -> Result<(), Refusal> {
        self.checker.check(token, USER, self.now).map(|_| ())
    }

    fn refusal(&self, request: TokenRequest) -> Refusal {
        self.check(&request.sign(&self.key)).unwrap_err()
    }
}

#[test]
fn accepts_a_correct_token() {
    let f = fixture();
    let token = f.request().sign(&f.key);
    assert!(token.starts_with(&format!("{HOST}:5432/?Action=connect&DBUser=iam_user&")));
    f.check(&token).unwrap();
}

#[test]
fn accepts_percent_encoded_user_names() {
    let f = fixture();
    let user = "app.reader+x@example.com";
    let token = TokenRequest::new(HOST, 5432, REGION, user, f.now).sign(&f.key);
    assert!(token.contains("DBUser=app.reader%2Bx%40example.com&"));
    f.checker.check(&token, user, f.now).unwrap();
}

#[test]
fn refuses_bad_signature() {
    let f = fixture();
    let mut other = f.key.clone();
    other.secret_access_key.push('x');
    assert_eq!(
        f.check(&f.request().sign(&other)).unwrap_err(),
        Refusal::BadSignature
    );
}

#[test]
fn refuses_wrong_host() {
    let f = fixture();
    let mut r = f.request();
    r.host = "db.cluster-other.eu-central-1.rds.amazonaws.com".into();
    assert!(matches!(f.refusal(r), Refusal::WrongEndpoint { .. }));
}

#[test]
fn refuses_token_signed_for_the_real_port_instead_of_the_advertised_one() {
    let f = fixture();
    let mut r = f.request();
    r.port = 54321;
    assert_eq!(
        f.refusal(r),
        Refusal::WrongEndpoint {
            expected: format!("{HOST}:5432"),
            got: format!("{HOST}:54321"),
        }
    );
}

#[test]
fn refuses_token_signed_for_the_tunnel_address() {
    let f = fixture();
    let mut r = f.request();
    r.host = "127.0.0.1".into();
    assert!(matches!(f.refusal(r), Refusal::WrongEndpoint { .. }));
}

#[test]
fn refuses_wrong_region() {
    let f = fixture();
    let mut r = f.request();
    r.region = "us-east-1".into();
    assert!(matches!(f.refusal(r), Refusal::WrongRegion { .. }));
}

#[test]
fn refuses_wrong_service() {
    let f = fixture();
    let mut r = f.request();
    r.service = "rds".into();
    assert_eq!(f.refusal(r), Refusal::WrongService("rds".into()));
}

#[test]
fn refuses_wrong_action() {
    let f = fixture();
    let mut r = f.request();
    r.action = "Connect".into();
    assert_eq!(f.refusal(r), Refusal::WrongAction("Connect".into()));
}

#[test]
fn refuses_token_for_another_user() {
    let f = fixture();
    let mut r = f.request();
    r.db_user = "admin".into();
    assert_eq!(
        f.refusal(r),
        Refusal::UserMismatch {
            token_user: "admin".into(),
            login_user: USER.into(),
        }
    );
}

#[test]
fn refuses_expired_token() {
    let f = fixture();
    let mut r = f.request();
    r.signed_at = f.now - Duration::from_secs(901);
    assert_eq!(f.refusal(r), Refusal::Expired);
    // Still fine at the last second of its 15 minutes.
    let mut r = f.request();
    r.signed_at = f.now - Duration::from_secs(900);
    f.check(&r.sign(&f.key)).unwrap();
}

#[test]
fn refuses_expires_over_900() {
    let f = fixture();
    let mut r = f.request();
    r.expires_secs = 901;
    assert_eq!(f.refusal(r), Refusal::ExpiresTooLong(901));
}

#[test]
fn refuses_token_from_the_future() {
    let f = fixture();
    let mut r = f.request();
    r.signed_at = f.now + Duration::from_secs(301);
    assert_eq!(f.refusal(r), Refusal::NotYetValid);
    // Small skew is tolerated.
    let mut r = f.request();
    r.signed_at = f.now + Duration::from_secs(60);
    f.check(&r.sign(&f.key)).unwrap();
}

#[test]
fn refuses_unknown_access_key() {
    let f = fixture();
    let stranger = Credentials::long_term("AKIASTRANGERSTRANGER", "secret");
    let refusal = f.check(&f.request().sign(&stranger)).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::UnknownAccessKey("AKIASTRANGERSTRANGER".into())
    );
    // Revoking a key makes its tokens unknown too.
    f.aws.revoke(&f.key.access_key_id);
    assert!(matches!(
        f.refusal(f.request()),
        Refusal::UnknownAccessKey(_)
    ));
}

#[test]
fn refuses_temporary_credentials_without_session_token() {
    let f = fixture();
    let session = f.aws.create_session(Duration::from_secs(3600));
    let mut r = TokenRequest::new(HOST, 5432, REGION, USER, SystemTime::now());
    r.session_token = Some(None);
    let refusal = f.checker.check(&r.sign(&session), USER, SystemTime::now());
    assert_eq!(refusal.unwrap_err(), Refusal::SessionTokenMissing);
}

#[test]
fn refuses_wrong_session_token() {
    let f = fixture();
    let session = f.aws.create_session(Duration::from_secs(3600));
    let mut r = TokenRequest::new(HOST, 5432, REGION, USER, SystemTime::now());
    r.session_token = Some(Some("not-the-token".into()));
    let refusal = f.checker.check(&r.sign(&session), USER, SystemTime::now());
    assert_eq!(refusal.unwrap_err(), Refusal::SessionTokenWrong);
    // A session token on a long-term key is wrong as well.
    let mut r = f.request();
    r.session_token = Some(Some("unexpected".into()));
    assert_eq!(f.refusal(r), Refusal::SessionTokenWrong);
}

#[test]
fn accepts_temporary_credentials_with_their_session_token() {
    let f = fixture();
    let session = f.aws.create_session(Duration::from_secs(3600));
    let now = SystemTime::now();
    let token = TokenRequest::new(HOST, 5432, REGION, USER, now).sign(&session);
    assert!(token.len() > 1024, "session tokens make tokens over 1 KB");
    assert!(token.contains("&X-Amz-Security-Token="));
    f.checker.check(&token, USER, now).unwrap();
}

#[test]
fn refuses_token_whose_temporary_credentials_expired() {
    let f = fixture();
    let session = f.aws.create_session(Duration::from_secs(60));
    let now = SystemTime::now();
    let token = TokenRequest::new(HOST, 5432, REGION, USER, now).sign(&session);
    f.checker.check(&token, USER, now).unwrap();
    // Within the token's 15 minutes but after the credentials' expiry.
    let later = now + Duration::from_secs(120);
    assert_eq!(
        f.checker.check(&token, USER, later).unwrap_err(),
        Refusal::CredentialsExpired
    );
}

#[test]
fn refuses_malformed_tokens() {
    let f = fixture();
    let good = f.request().sign(&f.key);
    for bad in [
        "".to_owned(),
        "not a token".to_owned(),
        format!("https://{good}"),
        good.replace(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
        ),
        good.replace(
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=host%3Bx-amz-date",
        ),
        good.replace("&X-Amz-Date=", "&X-Amz-Date=x"),
        format!("{good}&Action=connect"),
    ] {
        assert!(
            matches!(f.check(&bad), Err(Refusal::Malformed(_))),
            "{bad}: {:?}",
            f.check(&bad)
        );
    }
}

#[test]
fn verify_records_every_check() {
    let f = fixture();
    f.checker.set_clock_skew(0);
    let token = TokenRequest::new(HOST, 5432, REGION, USER, SystemTime::now()).sign(&f.key);
    for _ in 0..3 {
        f.checker.verify(&token, USER).unwrap();
    }
    f.checker.verify("garbage", "other").unwrap_err();
    // A token minted now is expired 16 minutes later.
    f.checker.set_clock_skew(16 * 60);
    assert_eq!(
        f.checker.verify(&token, USER).unwrap_err(),
        Refusal::Expired
    );

    let stats = f.checker.stats();
    assert_eq!(stats.checks, 5);
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.refused, 2);
    assert_eq!(stats.distinct_tokens, 2);
    assert_eq!(stats.per_user[USER], 4);
    assert_eq!(stats.per_user["other"], 1);
    assert!(matches!(stats.refusals[0], Refusal::Malformed(_)));
    assert_eq!(stats.refusals[1], Refusal::Expired);
    f.checker.reset_records();
    assert_eq!(f.checker.stats().checks, 0);
}
