//! Command line: `rds-iam-proxy [OPTIONS] [TARGET]...` runs the proxy; subcommands do one thing.

use clap::{Parser, Subcommand};
use rds_iam_config::RunArgs;

#[derive(Debug, Parser)]
#[command(
    name = "rds-iam-proxy",
    version,
    about = "IAM authentication sidecar for Aurora and RDS PostgreSQL: connect on localhost with no password",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one IAM auth token on stdout, nothing else (drop-in for `aws rds generate-db-auth-token`).
    Token(TokenArgs),
    /// Connect once through every stage (config, credentials, token, DNS, TCP, TLS, IAM auth,
    /// SELECT 1) and say what is wrong. Exit 0 when all pass, 1 on a failed stage, 2 for bad config.
    Check(RunArgs),
    /// Print the IAM policy JSON that allows these targets to connect (`rds-db:connect`).
    Policy(PolicyArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// AWS account id of the database [default: from STS GetCallerIdentity]
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Resource id of the cluster (cluster-...) or instance (db-...) [default: from RDS
    /// DescribeDBClusters / DescribeDBInstances, else *]
    #[arg(long, value_name = "ID")]
    pub resource_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
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
