//! A loopback STS endpoint answering `AssumeRole`, so a proxy with `role_arn` goes through
//! aws-config's real AssumeRoleProvider (point it here with `AWS_ENDPOINT_URL_STS`). The caller
//! must sign with an access key the [`FakeAws`] account knows; the session credentials it gets
//! back are added to the account, so the token checker accepts tokens signed with them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::fake_aws::{Credentials, FakeAws};
use crate::runtime::{serve_http, Background};

/// How long assumed-role credentials live (STS's default is one hour).
const SESSION_LIFETIME: Duration = Duration::from_secs(3600);

/// One `AssumeRole` call that succeeded.
#[derive(Debug, Clone)]
pub struct AssumeRoleCall {
    /// The access key the request was signed with.
    pub caller_access_key_id: String,
    pub role_arn: String,
    pub role_session_name: String,
    pub issued: Credentials,
}

#[derive(Clone)]
struct Sts {
    aws: FakeAws,
    calls: Arc<Mutex<Vec<AssumeRoleCall>>>,
}

/// A running STS endpoint; stops when dropped.
pub struct StsEndpoint {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<AssumeRoleCall>>>,
    _background: Background,
}

impl StsEndpoint {
    /// Serves STS for `aws` on 127.0.0.1:0.
    pub fn start(aws: &FakeAws) -> std::io::Result<StsEndpoint> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/", axum::routing::post(serve_sts))
            .with_state(Sts {
                aws: aws.clone(),
                calls: calls.clone(),
            });
        let (addr, background) = serve_http("standin-sts", app)?;
        Ok(StsEndpoint {
            addr,
            calls,
            _background: background,
        })
    }

    /// Value for `AWS_ENDPOINT_URL_STS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The successful `AssumeRole` calls so far.
    pub fn calls(&self) -> Vec<AssumeRoleCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The access key named in a SigV4 `Authorization` header (`... Credential=AKID/date/...`).
fn signing_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))?;
    Some(credential.split('/').next()?.to_owned())
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>standin</RequestId></ErrorResponse>"
    );
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

async fn serve_sts(State(sts): State<Sts>, headers: HeaderMap, body: String) -> Response {
    let Some(caller) = signing_key(&headers) else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "unsigned request",
        );
    };
    if sts.aws.lookup(&caller).is_none() {
        return sts_error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    let params = form(&body);
    if params.get("Action").map(String::as_str) != Some("AssumeRole") {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "only AssumeRole is served",
        );
    }
    let (Some(role_arn), Some(session_name)) =
        (params.get("RoleArn"), params.get("RoleSessionName"))
    else {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "RoleArn and RoleSessionName",
        );
    };
    let issued = sts.aws.create_session(SESSION_LIFETIME);
    let expiration = humantime::format_rfc3339_seconds(issued.expires.expect("session expires"));
    let xml = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROASTANDIN:{session_name}</AssumedRoleId>\
         <Arn>{role_arn}/{session_name}</Arn></AssumedRoleUser></AssumeRoleResult>\
         <ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata></AssumeRoleResponse>",
        issued.access_key_id,
        issued.secret_access_key,
        issued.session_token.as_deref().unwrap_or_default(),
    );
    sts.calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(AssumeRoleCall {
            caller_access_key_id: caller,
            role_arn: role_arn.clone(),
            role_session_name: session_name.clone(),
            issued,
        });
    ([(header::CONTENT_TYPE, "text/xml")], xml).into_response()
}
