//! `rds-iam-proxy token`: one token on stdout.

use rds_iam_signer::{region_from_host, CredentialOptions, Signer, SignerError, TokenRequest};

use crate::cli::TokenArgs;

#[derive(Debug, thiserror::Error)]
pub enum TokenCommandError {
    #[error("cannot tell the signing region of {host}: pass --region or set AWS_REGION")]
    NoRegion { host: String },
    #[error(transparent)]
    Signer(#[from] SignerError),
}

pub async fn token(args: &TokenArgs) -> Result<String, TokenCommandError> {
    let region = args.region.clone().or_else(|| region_from_host(&args.host));
    let signer = Signer::from_aws_config(CredentialOptions {
        profile: args.profile.clone(),
        role_arn: args.role_arn.clone(),
        region: region.clone(),
    })
    .await?;
    let region = match region {
        Some(r) => r,
        None => signer
            .default_region()
            .await
            .ok_or_else(|| TokenCommandError::NoRegion {
                host: args.host.clone(),
            })?,
    };
    let token = signer
        .token(&TokenRequest {
            host: args.host.clone(),
            port: args.port,
            user: args.user.clone(),
            region,
        })
        .await?;
    Ok(token.expose().to_owned())
}
