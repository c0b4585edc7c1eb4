//! The AWS environment of the processes the tests spawn: what keeps the AWS SDK's default
//! credential chain on this machine and on the sources a test gives it.

use std::path::Path;

/// Environment variables that would make an AWS SDK pick other credentials than the stand-in's
/// (the default chain tries environment and profile before the container endpoint).
pub const AWS_ENV_TO_REMOVE: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_DEFAULT_REGION",
];

/// No instance metadata (the chain never falls through to 169.254.169.254), and `config` and
/// `credentials` (empty or missing files) as the AWS config and shared credentials files, so a
/// developer's `~/.aws` stays out.
pub fn isolated(config: &Path, credentials: &Path) -> Vec<(String, String)> {
    vec![
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_CONFIG_FILE".into(), config.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            credentials.display().to_string(),
        ),
    ]
}

/// Long-term credentials in the environment: the first source of the default chain.
pub fn static_credentials(access_key_id: &str, secret_access_key: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), access_key_id.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret_access_key.into()),
    ]
}
