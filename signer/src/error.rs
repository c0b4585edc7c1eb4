//! Errors of the signer. Every message is safe to log and to show a client: none carries a
//! token, a secret access key or a session token.

use aws_credential_types::provider::error::CredentialsError;

/// What the proxy should say when credentials are missing, so users know where we looked.
pub(crate) const CHAIN_SOURCES: &str = "environment variables (AWS_ACCESS_KEY_ID / \
AWS_SECRET_ACCESS_KEY), the shared config and credentials files (profile, SSO, credential_process), \
web identity / IRSA (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), the ECS / EKS Pod Identity \
container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI), and EC2 instance \
metadata (IMDS)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The credentials chain found nothing at all.
    #[error("no AWS credentials found; looked in {CHAIN_SOURCES}: {detail}")]
    NoCredentials { detail: String },

    /// A credentials source was found but failed (STS refused, endpoint unreachable, bad config).
    #[error("loading AWS credentials failed: {detail}")]
    Credentials { detail: String },

    /// The credentials we hold expire too soon to sign anything useful.
    #[error("AWS credentials expired or expire too soon to sign a token: {detail}")]
    CredentialsExpired { detail: String },

    /// The host, port, user or region cannot be signed for.
    #[error("invalid token request: {detail}")]
    InvalidRequest { detail: String },

    /// aws-sigv4 refused to sign.
    #[error("signing the auth token failed: {detail}")]
    Signing { detail: String },

    /// `Signer::shutdown` was called.
    #[error("the token signer has been shut down")]
    ShutDown,
}

impl SignerError {
    /// True when the failure is about AWS credentials (the proxy answers SQLSTATE 08004).
    pub fn is_credentials(&self) -> bool {
        matches!(
            self,
            Self::NoCredentials { .. } | Self::Credentials { .. } | Self::CredentialsExpired { .. }
        )
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidRequest {
            detail: detail.into(),
        }
    }

    pub(crate) fn from_credentials_error(err: &CredentialsError) -> Self {
        let detail = error_chain(err);
        match err {
            CredentialsError::CredentialsNotLoaded(_) => Self::NoCredentials { detail },
            _ => Self::Credentials { detail },
        }
    }
}

/// "outer: inner: innermost" — the AWS errors keep the useful part in their sources.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
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
