//! Server-side check of RDS IAM auth tokens, written from the AWS SigV4 query-signing spec
//! (deliberately independent of the project's signer), plus a record of every check.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::fake_aws::{Credentials, FakeAws};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const SERVICE: &str = "rds-db";
/// Longest `X-Amz-Expires` RDS accepts.
pub const MAX_EXPIRES_SECS: u64 = 900;
/// How far in the future `X-Amz-Date` may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 unreserved characters stay; everything else is %XX (upper case), as SigV4 wants.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("signature does not match")]
    BadSignature,
    #[error("signed for {got}, expected {expected}")]
    WrongEndpoint { expected: String, got: String },
    #[error("signed for region {got}, expected {expected}")]
    WrongRegion { expected: String, got: String },
    #[error("signed for service {0}, expected rds-db")]
    WrongService(String),
    #[error("Action is {0}, expected connect")]
    WrongAction(String),
    #[error("token is for DBUser {token_user}, login is {login_user}")]
    UserMismatch {
        token_user: String,
        login_user: String,
    },
    #[error("X-Amz-Expires {0} is over 900")]
    ExpiresTooLong(u64),
    #[error("token expired")]
    Expired,
    #[error("X-Amz-Date is too far in the future")]
    NotYetValid,
    #[error("unknown access key {0}")]
    UnknownAccessKey(String),
    #[error("session token missing for temporary credentials")]
    SessionTokenMissing,
    #[error("session token does not match the access key")]
    SessionTokenWrong,
    #[error("the temporary credentials that signed the token have expired")]
    CredentialsExpired,
}

/// What a successful check established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `host:port` the token was signed for (one of the checker's endpoints).
    pub endpoint: String,
    pub access_key_id: String,
    pub db_user: String,
    pub signed_at: SystemTime,
}

/// Checks tokens for one server's endpoints against a [`FakeAws`] account, recording each
/// check. A plain stand-in has one endpoint; an Aurora instance accepts its own, the cluster's
/// and the reader endpoint's names, as Aurora does.
pub struct TokenChecker {
    endpoints: Vec<String>,
    region: String,
    aws: FakeAws,
    clock_skew_secs: AtomicI64,
    log: Mutex<Log>,
}

/// Records share one copy per distinct token, so long benchmarks stay small.
#[derive(Default)]
struct Log {
    records: Vec<CheckRecord>,
    tokens: HashSet<Arc<str>>,
}

impl TokenChecker {
    /// `port` is the advertised endpoint port the token is signed for (5432), not the real one.
    pub fn new(host: &str, port: u16, region: &str, aws: FakeAws) -> Self {
        Self::for_hosts(&[host], port, region, aws)
    }

    /// Accepting tokens signed for any of `hosts` at `port`.
    pub fn for_hosts(hosts: &[&str], port: u16, region: &str, aws: FakeAws) -> Self {
        Self {
            endpoints: hosts
                .iter()
                .map(|h| format!("{}:{port}", h.to_ascii_lowercase()))
                .collect(),
            region: region.to_owned(),
            aws,
            clock_skew_secs: AtomicI64::new(0),
            log: Mutex::new(Log::default()),
        }
    }

    /// `host:port` tokens must be signed for (the first, for a checker of several).
    pub fn endpoint(&self) -> &str {
        &self.endpoints[0]
    }

    /// Shifts the checker's clock (positive = later), e.g. to expire tokens without waiting.
    pub fn set_clock_skew(&self, skew_secs: i64) {
        self.clock_skew_secs.store(skew_secs, Ordering::SeqCst);
    }

    /// The checker's idea of now.
    pub fn now(&self) -> SystemTime {
        let skew = self.clock_skew_secs.load(Ordering::SeqCst);
        let now = SystemTime::now();
        if skew >= 0 {
            now + Duration::from_secs(skew.unsigned_abs())
        } else {
            now - Duration::from_secs(skew.unsigned_abs())
        }
    }

    /// Checks at the checker's clock and records the outcome (used by the LDAP server).
    pub fn verify(&self, token: &str, login_user: &str) -> Result<Verified, Refusal> {
        let result = self.check(token, login_user, self.now());
        let mut log = self.lock_log();
        let token = match log.tokens.get(token) {
            Some(seen) => seen.clone(),
            None => {
                let token: Arc<str> = token.into();
                log.tokens.insert(token.clone());
                token
            }
        };
        log.records.push(CheckRecord {
            login_user: login_user.to_owned(),
            token,
            at: SystemTime::now(),
            result: result.clone(),
        });
        result
    }

    /// Pure check at the instant `now`; records nothing.
    pub fn check(
        &self,
        token: &str,
        login_user: &str,
        now: SystemTime,
    ) -> Result<Verified, Refusal> {
        let token = ParsedToken::parse(token)?;
        let param = |name: &str| token.param(name);

        if param("X-Amz-Algorithm")? != ALGORITHM {
            return Err(malformed("unsupported X-Amz-Algorithm"));
        }
        if param("X-Amz-SignedHeaders")? != "host" {
            return Err(malformed("X-Amz-SignedHeaders must be host"));
        }
        let action = param("Action")?;
        if action != "connect" {
            return Err(Refusal::WrongAction(action.to_owned()));
        }
        let endpoint = token.host_port.to_ascii_lowercase();
        if !self.endpoints.contains(&endpoint) {
            return Err(Refusal::WrongEndpoint {
                expected: self.endpoints.join(" or "),
                got: token.host_port.clone(),
            });
        }
        let db_user = param("DBUser")?;
        if db_user != login_user {
            return Err(Refusal::UserMismatch {
                token_user: db_user.to_owned(),
                login_user: login_user.to_owned(),
            });
        }

        let scope: Vec<&str> = param("X-Amz-Credential")?.split('/').collect();
        let [access_key_id, scope_date, region, service, terminator] = scope[..] else {
            return Err(malformed("X-Amz-Credential needs 5 parts"));
        };
        if terminator != "aws4_request" {
            return Err(malformed("X-Amz-Credential must end in aws4_request"));
        }
        if region != self.region {
            return Err(Refusal::WrongRegion {
                expected: self.region.clone(),
                got: region.to_owned(),
            });
        }
        if service != SERVICE {
            return Err(Refusal::WrongService(service.to_owned()));
        }
        let amz_date = param("X-Amz-Date")?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| malformed("bad X-Amz-Date"))?;
        if !amz_date.starts_with(scope_date) || scope_date.len() != 8 {
            return Err(malformed("credential scope date differs from X-Amz-Date"));
        }
        let expires: u64 = param("X-Amz-Expires")?
            .parse()
            .map_err(|_| malformed("bad X-Amz-Expires"))?;

        // Signature first among the remaining checks: a forged token learns nothing else.
        let creds = self
            .aws
            .lookup(access_key_id)
            .ok_or_else(|| Refusal::UnknownAccessKey(access_key_id.to_owned()))?;
        let signature = param("X-Amz-Signature")?;
        let signature = decode_signature(signature)?;
        let canonical_query = canonical_query(
            token
                .params
                .iter()
                .filter_map(|(k, v)| (k != "X-Amz-Signature").then_some((k.as_str(), v.as_str()))),
        );
        let request = canonical_request(&token.host_port, &canonical_query);
        let to_sign = string_to_sign(amz_date, scope_date, region, service, &request);
        signing_mac(
            &creds.secret_access_key,
            scope_date,
            region,
            service,
            &to_sign,
        )
        .verify_slice(&signature)
        .map_err(|_| Refusal::BadSignature)?;

        match (
            &creds.session_token,
            token.params.get("X-Amz-Security-Token"),
        ) {
            (Some(_), None) => return Err(Refusal::SessionTokenMissing),
            (Some(expected), Some(got)) if expected != got => {
                return Err(Refusal::SessionTokenWrong)
            }
            (None, Some(_)) => return Err(Refusal::SessionTokenWrong),
            _ => {}
        }
        if expires > MAX_EXPIRES_SECS {
            return Err(Refusal::ExpiresTooLong(expires));
        }
        if signed_at > now + MAX_CLOCK_SKEW {
            return Err(Refusal::NotYetValid);
        }
        if signed_at + Duration::from_secs(expires) < now {
            return Err(Refusal::Expired);
        }
        if creds.expires.is_some_and(|e| e <= now) {
            return Err(Refusal::CredentialsExpired);
        }
        Ok(Verified {
            endpoint,
            access_key_id: access_key_id.to_owned(),
            db_user: db_user.to_owned(),
            signed_at,
        })
    }

    /// Every check [`verify`](Self::verify) has made, oldest first.
    pub fn records(&self) -> Vec<CheckRecord> {
        self.lock_log().records.clone()
    }

    pub fn stats(&self) -> TokenStats {
        TokenStats::from_records(&self.lock_log().records)
    }

    pub fn reset_records(&self) {
        *self.lock_log() = Log::default();
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One token check as the database saw it.
#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub login_user: String,
    pub token: Arc<str>,
    pub at: SystemTime,
    pub result: Result<Verified, Refusal>,
}

/// Summary of the checks so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub checks: usize,
    pub accepted: usize,
    pub refused: usize,
    pub distinct_tokens: usize,
    /// Checks per login user (accepted and refused).
    pub per_user: BTreeMap<String, usize>,
    /// Refusal reasons in order.
    pub refusals: Vec<Refusal>,
}

impl TokenStats {
    fn from_records(records: &[CheckRecord]) -> Self {
        let mut stats = TokenStats {
            checks: records.len(),
            ..Default::default()
        };
        let mut tokens = HashSet::new();
        for record in records {
            tokens.insert(&*record.token);
            *stats.per_user.entry(record.login_user.clone()).or_default() += 1;
            match &record.result {
                Ok(_) => stats.accepted += 1,
                Err(refusal) => {
                    stats.refused += 1;
                    stats.refusals.push(refusal.clone());
                }
            }
        }
        stats.distinct_tokens = tokens.len();
        stats
    }
}

/// Inputs of a token; fields are public so tests can sign deliberately wrong tokens.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub host: String,
    pub port: u16,
    pub region: String,
    pub service: String,
    pub action: String,
    pub db_user: String,
    pub expires_secs: u64,
    pub signed_at: SystemTime,
    /// Overrides the credentials' session token (`Some(None)` leaves it out).
    pub session_token: Option<Option<String>>,
}

impl TokenRequest {
    pub fn new(host: &str, port: u16, region: &str, db_user: &str, signed_at: SystemTime) -> Self {
        Self {
            host: host.to_owned(),
            port,
            region: region.to_owned(),
            service: SERVICE.to_owned(),
            action: "connect".to_owned(),
            db_user: db_user.to_owned(),
            expires_secs: MAX_EXPIRES_SECS,
            signed_at,
            session_token: None,
        }
    }

    /// The token, in botocore's parameter order and encoding.
    pub fn sign(&self, creds: &Credentials) -> String {
        let amz_date = format_amz_date(self.signed_at);
        let date = &amz_date[..8];
        let credential = format!(
            "{}/{date}/{}/{}/aws4_request",
            creds.access_key_id, self.region, self.service
        );
        let expires = self.expires_secs.to_string();
        let session_token = match &self.session_token {
            Some(overridden) => overridden.clone(),
            None => creds.session_token.clone(),
        };
        let mut params = vec![
            ("Action", self.action.as_str()),
            ("DBUser", self.db_user.as_str()),
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", credential.as_str()),
            ("X-Amz-Date", amz_date.as_str()),
            ("X-Amz-Expires", expires.as_str()),
            ("X-Amz-SignedHeaders", "host"),
        ];
        if let Some(token) = &session_token {
            params.push(("X-Amz-Security-Token", token.as_str()));
        }
        let host_port = format!("{}:{}", self.host, self.port);
        let request = canonical_request(&host_port, &canonical_query(params.iter().copied()));
        let to_sign = string_to_sign(&amz_date, date, &self.region, &self.service, &request);
        let mac = signing_mac(
            &creds.secret_access_key,
            date,
            &self.region,
            &self.service,
            &to_sign,
        );
        let signature = hex::encode(mac.finalize().into_bytes());

        let mut token = format!("{host_port}/?");
        for (k, v) in params
            .iter()
            .chain([("X-Amz-Signature", signature.as_str())].iter())
        {
            let _ = write!(token, "{}={}&", encode(k), encode(v));
        }
        token.pop();
        token
    }
}

/// Signs a well-formed token for tests (the botocore vectors prove this matches AWS).
pub fn sign_for_test(
    host: &str,
    port: u16,
    region: &str,
    db_user: &str,
    creds: &Credentials,
    signed_at: SystemTime,
) -> String {
    TokenRequest::new(host, port, region, db_user, signed_at).sign(creds)
}

struct ParsedToken {
    host_port: String,
    params: BTreeMap<String, String>,
}

impl ParsedToken {
    fn parse(token: &str) -> Result<Self, Refusal> {
        let (host_port, query) = token
            .split_once("/?")
            .ok_or_else(|| malformed("expected HOST:PORT/?QUERY"))?;
        if host_port.contains('/') || !host_port.contains(':') {
            return Err(malformed("expected HOST:PORT before /?"));
        }
        let mut params = BTreeMap::new();
        for pair in query.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| malformed("query parameter without ="))?;
            let (k, v) = (decode(k)?, decode(v)?);
            if params.insert(k, v).is_some() {
                return Err(malformed("duplicate query parameter"));
            }
        }
        Ok(Self {
            host_port: host_port.to_owned(),
            params,
        })
    }

    fn param(&self, name: &str) -> Result<&str, Refusal> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| malformed(&format!("missing {name}")))
    }
}

fn malformed(why: &str) -> Refusal {
    Refusal::Malformed(why.to_owned())
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

fn decode(s: &str) -> Result<String, Refusal> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| malformed("query is not UTF-8"))
}

fn decode_signature(sig: &str) -> Result<Vec<u8>, Refusal> {
    // Lower-case hex only, as SigV4 writes it; anything else is a different token.
    let well_formed =
        sig.len() == 64 && sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(malformed(
            "X-Amz-Signature must be 64 lower-case hex digits",
        ));
    }
    hex::decode(sig).map_err(|_| malformed("bad X-Amz-Signature"))
}

/// Sorted by encoded key (then value), each `key=value` encoded, joined with `&`.
fn canonical_query<'a>(params: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = params.map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_request(host_port: &str, canonical_query: &str) -> String {
    format!("GET\n/\n{canonical_query}\nhost:{host_port}\n\nhost\n{EMPTY_PAYLOAD_SHA256}")
}

fn string_to_sign(
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    request: &str,
) -> String {
    let hash = hex::encode(Sha256::digest(request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{hash}")
}

/// HMAC keyed with the derived SigV4 signing key, already fed the string to sign.
fn signing_mac(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    to_sign: &str,
) -> Hmac<Sha256> {
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes()
    };
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let mut mac = Hmac::<Sha256>::new_from_slice(&k_signing).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    mac
}

/// `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape_ok {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}
