//! An in-memory "AWS account": access keys the token checker trusts, plus a loopback
//! ECS/EKS Pod Identity container credential endpoint that mints session credentials.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::runtime::{serve_http, Background};

/// Path served by the container endpoint (the one EKS Pod Identity uses).
pub const CONTAINER_CREDENTIALS_PATH: &str = "/v1/credentials";

/// One set of AWS credentials. `session_token`/`expires` are set for temporary (ASIA…) ones.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expires: Option<SystemTime>,
}

impl Credentials {
    pub fn long_term(access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
            expires: None,
        }
    }

    pub fn temporary(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: &str,
        expires: SystemTime,
    ) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: Some(session_token.to_owned()),
            expires: Some(expires),
        }
    }
}

// Secrets stay out of test output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "**"))
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Cheap to clone; all clones share one account.
#[derive(Clone, Default)]
pub struct FakeAws {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: Mutex<HashMap<String, Credentials>>,
    endpoint: Mutex<EndpointSettings>,
    calls: AtomicU64,
    failing: AtomicBool,
}

struct EndpointSettings {
    session_lifetime: Duration,
    authorization: Option<String>,
    last_issued: Option<Credentials>,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(3600),
            authorization: None,
            last_issued: None,
        }
    }
}

impl FakeAws {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) credentials, e.g. the fixed keys of the botocore vectors.
    pub fn insert(&self, credentials: Credentials) {
        self.keys()
            .insert(credentials.access_key_id.clone(), credentials);
    }

    /// A fresh long-term access key (AKIA…).
    pub fn create_access_key(&self) -> Credentials {
        let creds = Credentials::long_term(&random_id("AKIA"), &random_secret());
        self.insert(creds.clone());
        creds
    }

    /// Fresh session credentials (ASIA…) valid for `lifetime` from now.
    pub fn create_session(&self, lifetime: Duration) -> Credentials {
        // Real STS session tokens are several hundred bytes: tokens end up over 1 KB.
        let token = format!("IQoJb3JpZ2luX2VjE{}==", random_base64(880));
        let creds = Credentials::temporary(
            &random_id("ASIA"),
            &random_secret(),
            &token,
            whole_seconds(SystemTime::now() + lifetime),
        );
        self.insert(creds.clone());
        creds
    }

    /// Forgets a key: tokens signed with it are refused as unknown from then on.
    pub fn revoke(&self, access_key_id: &str) -> bool {
        self.keys().remove(access_key_id).is_some()
    }

    pub fn lookup(&self, access_key_id: &str) -> Option<Credentials> {
        self.keys().get(access_key_id).cloned()
    }

    /// Lifetime of the session credentials the container endpoint hands out (default 1 h).
    pub fn set_session_lifetime(&self, lifetime: Duration) {
        self.settings().session_lifetime = lifetime;
    }

    /// While true the container endpoint answers 503 (credential outage).
    pub fn set_container_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    /// Require this exact `Authorization` header (as `AWS_CONTAINER_AUTHORIZATION_TOKEN`).
    pub fn set_container_authorization(&self, token: Option<String>) {
        self.settings().authorization = token;
    }

    pub fn container_authorization(&self) -> Option<String> {
        self.settings().authorization.clone()
    }

    /// Requests the container endpoint received, failed ones included.
    pub fn container_calls(&self) -> u64 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// The credentials most recently handed out by the container endpoint.
    pub fn last_issued(&self) -> Option<Credentials> {
        self.settings().last_issued.clone()
    }

    /// Serves the container endpoint on 127.0.0.1:0 until the returned value is dropped.
    pub fn start_container_endpoint(&self) -> std::io::Result<ContainerEndpoint> {
        let app = axum::Router::new()
            .route(
                CONTAINER_CREDENTIALS_PATH,
                axum::routing::get(serve_credentials),
            )
            .with_state(self.clone());
        let (addr, background) = serve_http("standin-aws", app)?;
        Ok(ContainerEndpoint {
            addr,
            _background: background,
        })
    }

    fn keys(&self) -> MutexGuard<'_, HashMap<String, Credentials>> {
        self.inner.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> MutexGuard<'_, EndpointSettings> {
        self.inner
            .endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// A running container credential endpoint; stops when dropped.
pub struct ContainerEndpoint {
    addr: SocketAddr,
    _background: Background,
}

impl ContainerEndpoint {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, CONTAINER_CREDENTIALS_PATH)
    }
}

async fn serve_credentials(State(aws): State<FakeAws>, headers: HeaderMap) -> Response {
    aws.inner.calls.fetch_add(1, Ordering::SeqCst);
    if aws.inner.failing.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "credential outage (stand-in)",
        )
            .into_response();
    }
    let (lifetime, required) = {
        let s = aws.settings();
        (s.session_lifetime, s.authorization.clone())
    };
    if let Some(required) = required {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if sent != Some(required.as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad Authorization header").into_response();
        }
    }
    let creds = aws.create_session(lifetime);
    aws.settings().last_issued = Some(creds.clone());
    let expiration = creds.expires.expect("session credentials expire");
    Json(serde_json::json!({
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token,
        "Expiration": humantime::format_rfc3339_seconds(expiration).to_string(),
    }))
    .into_response()
}

/// The endpoint's JSON carries whole seconds; keep the store identical to what it reports.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..16)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn random_secret() -> String {
    random_base64(40)
}

fn random_base64(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}
