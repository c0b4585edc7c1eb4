//! Minting one IAM auth token: a SigV4-presigned `rds-db:connect` URL, byte for byte what
//! botocore's `generate_db_auth_token` produces.

use crate::encode::{encode_into, rfc3986};
use crate::error::SignerError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// RDS rejects `X-Amz-Expires` above 900 seconds.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

const SERVICE: &str = "rds-db";

/// What a token is minted for. Hashable: it is the token cache's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRequest {
    /// The RDS endpoint the token is signed for (never a tunnel address).
    pub host: String,
    pub port: u16,
    /// Database user name, as given (it is encoded here).
    pub user: String,
    /// Signing region, e.g. `us-east-1`.
    pub region: String,
}

impl TokenRequest {
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            region: region.into(),
        }
    }

    fn validate(&self) -> Result<(), SignerError> {
        let host_ok = !self.host.is_empty()
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !host_ok {
            return Err(SignerError::invalid(format!(
                "host {:?} is not a DNS name",
                self.host
            )));
        }
        if self.port == 0 {
            return Err(SignerError::invalid("port 0"));
        }
        if self.user.is_empty() {
            return Err(SignerError::invalid("empty database user"));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !region_ok {
            return Err(SignerError::invalid(format!(
                "region {:?} is not an AWS region name",
                self.region
            )));
        }
        Ok(())
    }
}

/// A bearer credential for one database login. Only [`AuthToken::expose`] reveals it; `Debug`
/// and `Display` print `AuthToken(host:port/…, user, REDACTED)`. Cloning is cheap.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(Arc<TokenInner>);

#[derive(PartialEq, Eq)]
struct TokenInner {
    token: String,
    /// Length of the `host:port` prefix, so the redacted form can show it.
    authority_len: usize,
    user: String,
}

impl AuthToken {
    /// The token text: use it as the password, never log it.
    pub fn expose(&self) -> &str {
        &self.0.token
    }

    /// The database user this token was minted for.
    pub fn user(&self) -> &str {
        &self.0.user
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AuthToken({}/…, {}, REDACTED)",
            &self.0.token[..self.0.authority_len],
            self.0.user
        )
    }
}

impl fmt::Display for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `host` header value botocore signs (`_host_from_url`): lower case, without the
/// default https port. aws-sigv4 would do the same, but we pass it explicitly so the rule is ours.
fn signed_host(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// Mints a token for `req` with `creds`, as of `signing_time`. Pure: no I/O, no caching.
pub fn generate_auth_token(
    creds: &Credentials,
    req: &TokenRequest,
    signing_time: SystemTime,
) -> Result<AuthToken, SignerError> {
    req.validate()?;
    let authority = format!("{}:{}", req.host, req.port);
    // aws-sigv4 form-decodes the query it is given, so the user must already be RFC 3986
    // encoded (a raw `+` would be signed as a space).
    let user_enc = rfc3986(&req.user);
    let url = format!("https://{authority}/?Action=connect&DBUser={user_enc}");
    let host_header = signed_host(&req.host, req.port);

    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&req.region)
        .name(SERVICE)
        .time(signing_time)
        .settings(settings)
        .build()
        .map_err(|e| SignerError::Signing {
            detail: e.to_string(),
        })?
        .into();
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", host_header.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| SignerError::invalid(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignerError::Signing {
            detail: e.to_string(),
        })?
        .into_parts();
    let (_headers, signed) = instructions.into_parts();

    // Rebuild the query in botocore's order; aws-sigv4 puts the signature before the token.
    let find = |name: &str| -> Option<&Cow<'static, str>> {
        signed.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    };
    let mut token = String::with_capacity(url.len() + 512);
    token.push_str(&url["https://".len()..]);
    const ORDER: [(&str, bool); 7] = [
        ("X-Amz-Algorithm", true),
        ("X-Amz-Credential", true),
        ("X-Amz-Date", true),
        ("X-Amz-Expires", true),
        ("X-Amz-SignedHeaders", true),
        ("X-Amz-Security-Token", false),
        ("X-Amz-Signature", true),
    ];
    for (name, required) in ORDER {
        match find(name) {
            Some(value) => {
                token.push('&');
                token.push_str(name);
                token.push('=');
                encode_into(&mut token, value);
            }
            None if required => {
                return Err(SignerError::Signing {
                    detail: format!("aws-sigv4 returned no {name}"),
                })
            }
            None => {}
        }
    }
    Ok(AuthToken(Arc::new(TokenInner {
        token,
        authority_len: authority.len(),
        user: req.user.clone(),
    })))
}

/// The region in an RDS endpoint name: `NAME.[...].REGION.rds.amazonaws.com` (or
/// `.amazonaws.com.cn`). `None` for anything else (custom DNS, IP addresses).
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".rds.amazonaws.com")
        .or_else(|| host.strip_suffix(".rds.amazonaws.com.cn"))?;
    // At least one label (the instance or cluster name) must precede the region.
    let (name, region) = rest.rsplit_once('.')?;
    let looks_like_region = !name.is_empty()
        && region.contains('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.ends_with(|c: char| c.is_ascii_digit());
    looks_like_region.then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_parsing() {
        let cases = [
            (
                "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com",
                Some("ap-northeast-1"),
            ),
            (
                "db.c9akciq32.us-east-1.rds.amazonaws.com",
                Some("us-east-1"),
            ),
            ("DB.C9.US-WEST-2.RDS.AMAZONAWS.COM.", Some("us-west-2")),
            ("db.abc.cn-north-1.rds.amazonaws.com.cn", Some("cn-north-1")),
            (
                "p.proxy-abc.us-gov-west-1.rds.amazonaws.com",
                Some("us-gov-west-1"),
            ),
            ("us-east-1.rds.amazonaws.com", None),
            ("db.example.com", None),
            ("127.0.0.1", None),
            ("db.rds.amazonaws.com", None),
            ("db.abc.notaregion.rds.amazonaws.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(region_from_host(host).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn rejects_bad_requests() {
        let creds = Credentials::new("AKID", "SECRET", None, None, "test");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for req in [
            TokenRequest::new("", 5432, "u", "us-east-1"),
            TokenRequest::new("h:1", 5432, "u", "us-east-1"),
            TokenRequest::new("h/x", 5432, "u", "us-east-1"),
            TokenRequest::new("h", 0, "u", "us-east-1"),
            TokenRequest::new("h", 5432, "", "us-east-1"),
            TokenRequest::new("h", 5432, "u", "us/east"),
        ] {
            let err = generate_auth_token(&creds, &req, t).unwrap_err();
            assert!(matches!(err, SignerError::InvalidRequest { .. }), "{req:?}");
        }
    }

    #[test]
    fn default_https_port_is_kept_in_url_but_not_signed() {
        assert_eq!(signed_host("Db.Example", 443), "db.example");
        assert_eq!(signed_host("Db.Example", 5432), "db.example:5432");
    }
}
