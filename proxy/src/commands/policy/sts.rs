//! STS GetCallerIdentity: who the credentials belong to (the account in the policy ARN) and,
//! from the answer's `Date` header, how far our clock is from AWS's.

use std::collections::HashMap;
use std::time::Duration;

use aws_credential_types::Credentials;

use super::aws_api::{call, AwsApiError, Service};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    /// AWS's clock minus ours, in seconds, when the answer had a `Date` header.
    pub skew: Option<i64>,
}

pub async fn caller_identity(
    region: &str,
    creds: &Credentials,
    env: &HashMap<String, String>,
    timeout: Duration,
) -> Result<CallerIdentity, AwsApiError> {
    let response = call(
        Service::Sts,
        region,
        creds,
        "GetCallerIdentity",
        &[],
        env,
        timeout,
    )
    .await?;
    let missing = |field| AwsApiError::MissingField {
        service: "sts",
        field,
    };
    Ok(CallerIdentity {
        account: response
            .field("Account")
            .ok_or_else(|| missing("Account"))?,
        arn: response.field("Arn").ok_or_else(|| missing("Arn"))?,
        skew: response.skew,
    })
}
