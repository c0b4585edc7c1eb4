//! A SigV4-signed call to an AWS Query API (STS, RDS): form body in, XML out. Small on
//! purpose: `check` and `policy` make at most three such calls, and the RDS SDK crate would
//! double the build for one field. Endpoints honour the SDK's `AWS_ENDPOINT_URL_<SERVICE>`
//! and `AWS_ENDPOINT_URL` overrides (tests point them at loopback stubs).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use rds_iam_signer::rfc3986;

/// Bodies above this are not an STS or RDS answer we want.
const MAX_RESPONSE_LEN: usize = 1024 * 1024;

/// The two services `check` and `policy` talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Sts,
    Rds,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Self::Sts => "sts",
            Self::Rds => "rds",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Self::Sts => "2011-06-15",
            Self::Rds => "2014-10-31",
        }
    }

    fn endpoint_env(self) -> &'static str {
        match self {
            Self::Sts => "AWS_ENDPOINT_URL_STS",
            Self::Rds => "AWS_ENDPOINT_URL_RDS",
        }
    }

    /// The endpoint for `region`: the service override, the global override, else AWS's.
    pub fn endpoint(self, region: &str, env: &HashMap<String, String>) -> String {
        let from_env = [self.endpoint_env(), "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| env.get(*k).filter(|v| !v.is_empty()));
        match from_env {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let suffix = if region.starts_with("cn-") {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://{}.{region}.{suffix}", self.signing_name())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AwsApiError {
    #[error("cannot reach {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("no answer from {endpoint} within {}", humantime::format_duration(*.timeout))]
    Timeout { endpoint: String, timeout: Duration },
    #[error("cannot sign the {service} request: {detail}")]
    Signing {
        service: &'static str,
        detail: String,
    },
    #[error("{service} answered HTTP {status}: {code}: {message}")]
    Api {
        service: &'static str,
        status: u16,
        code: String,
        message: String,
        /// Server clock minus ours, from the response's `Date` header.
        skew: Option<i64>,
    },
    #[error("{service} answered without {field}")]
    MissingField {
        service: &'static str,
        field: &'static str,
    },
}

impl AwsApiError {
    /// The AWS error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct ApiResponse {
    pub body: String,
    /// Server clock minus ours in whole seconds, from the `Date` header.
    pub skew: Option<i64>,
}

impl ApiResponse {
    /// Text of the first `<tag>` element.
    pub fn field(&self, tag: &str) -> Option<String> {
        xml_text(&self.body, tag)
    }
}

/// POSTs `Action=action&params...&Version=...` to `service` in `region`, signed with `creds`.
pub async fn call(
    service: Service,
    region: &str,
    creds: &Credentials,
    action: &str,
    params: &[(&str, &str)],
    env: &HashMap<String, String>,
    timeout: Duration,
) -> Result<ApiResponse, AwsApiError> {
    let endpoint = service.endpoint(region, env);
    let mut body = format!("Action={action}");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", rfc3986(v)));
    }
    body.push_str(&format!("&Version={}", service.api_version()));
    let request = signed_request(service, region, creds, &endpoint, body)?;
    let connector = Connector::builder()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build();
    let exchange = async {
        let response = connector
            .call(request)
            .await
            .map_err(|e| AwsApiError::Unreachable {
                endpoint: endpoint.clone(),
                detail: error_chain(&e),
            })?;
        let received_at = SystemTime::now();
        let status = response.status().as_u16();
        let skew = response
            .headers()
            .get("date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .map(|server| seconds_between(received_at, server));
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| AwsApiError::Unreachable {
                endpoint: endpoint.clone(),
                detail: error_chain(&e),
            })?
            .into_bytes();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RESPONSE_LEN)]);
        Ok::<_, AwsApiError>((status, skew, text.into_owned()))
    };
    let (status, skew, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AwsApiError::Timeout {
            endpoint: endpoint.clone(),
            timeout,
        })??;
    if !(200..300).contains(&status) {
        return Err(AwsApiError::Api {
            service: service.signing_name(),
            status,
            code: xml_text(&body, "Code").unwrap_or_else(|| "(no code)".into()),
            message: xml_text(&body, "Message").unwrap_or_default(),
            skew,
        });
    }
    Ok(ApiResponse { body, skew })
}

fn signed_request(
    service: Service,
    region: &str,
    creds: &Credentials,
    endpoint: &str,
    body: String,
) -> Result<HttpRequest, AwsApiError> {
    let signing_err = |detail: String| AwsApiError::Signing {
        service: service.signing_name(),
        detail,
    };
    let url = format!("{endpoint}/");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("content-type", content_type)
        .body(body.clone())
        .map_err(|e| signing_err(e.to_string()))?;
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service.signing_name())
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_err(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        std::iter::once(("content-type", content_type)),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| signing_err(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| signing_err(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    HttpRequest::try_from(request.map(SdkBody::from)).map_err(|e| signing_err(e.to_string()))
}

/// `b - a` in whole seconds, negative when `b` is earlier.
fn seconds_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Text of the first `<tag>…</tag>` in `xml`, entities decoded. The STS and RDS answers we
/// read are flat, generated documents; a full XML parser would buy nothing here.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_and_defaults() {
        let mut env = HashMap::new();
        assert_eq!(
            Service::Sts.endpoint("eu-west-1", &env),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            Service::Rds.endpoint("cn-north-1", &env),
            "https://rds.cn-north-1.amazonaws.com.cn"
        );
        env.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9/".into());
        assert_eq!(Service::Rds.endpoint("x", &env), "http://127.0.0.1:9");
        env.insert("AWS_ENDPOINT_URL_STS".into(), "http://127.0.0.1:8".into());
        assert_eq!(Service::Sts.endpoint("x", &env), "http://127.0.0.1:8");
    }

    #[test]
    fn xml_text_takes_the_first_element_and_decodes_entities() {
        let xml = "<R><Error><Code>Access&amp;Denied</Code></Error><Code>later</Code></R>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("Access&Denied"));
        assert_eq!(xml_text(xml, "Message"), None);
    }
}
