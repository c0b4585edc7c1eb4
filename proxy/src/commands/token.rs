//! `rds-iam-proxy token`: one token on stdout.

use rds_iam_signer::{region_from_host, CredentialOptions, Signer, SignerError, TokenRequest};

use crate::targets::resolve_region;

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// Database endpoint the token is signed for.
    #[arg(long)]
    pub host: String,
    /// Database port.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// Database user.
    #[arg(long)]
    pub user: String,
    /// Signing region (default: parsed from the host, else the AWS config).
    #[arg(long)]
    pub region: Option<String>,
    /// AWS profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Assume this role on top of the default credentials.
    #[arg(long)]
    pub role_arn: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenCommandError {
    #[error("cannot tell the signing region of {host}: pass --region or set AWS_REGION")]
    NoRegion { host: String },
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// Prints the token; returns the exit code.
pub(crate) async fn token(args: &TokenArgs) -> u8 {
    match mint(args).await {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(e) => {
            eprintln!("rds-iam-proxy: {e}");
            1
        }
    }
}

async fn mint(args: &TokenArgs) -> Result<String, TokenCommandError> {
    let signer = Signer::from_aws_config(CredentialOptions {
        profile: args.profile.clone(),
        role_arn: args.role_arn.clone(),
        region: args.region.clone().or_else(|| region_from_host(&args.host)),
    })
    .await?;
    let (region, _) = resolve_region(args.region.as_deref(), &args.host, Some(&signer))
        .await
        .ok_or_else(|| TokenCommandError::NoRegion {
            host: args.host.clone(),
        })?;
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
