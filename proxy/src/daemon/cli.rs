//! Command line: `rds-iam-proxy [OPTIONS] [TARGET]...` runs the proxy; subcommands do one thing.

use clap::{Parser, Subcommand};
use rds_iam_config::RunArgs;

use crate::commands::{PolicyArgs, ProbeArgs, TokenArgs};

#[derive(Debug, Parser)]
#[command(
    name = "rds-iam-proxy",
    version,
    about = "IAM authentication sidecar for Aurora and RDS PostgreSQL: connect on localhost with no password",
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print one IAM auth token on stdout, nothing else (drop-in for `aws rds generate-db-auth-token`).
    Token(TokenArgs),
    /// Connect once through every stage (config, credentials, token, DNS, TCP, TLS, IAM auth,
    /// SELECT 1) and say what is wrong. Exit 0 when all pass, 1 on a failed stage, 2 for bad config.
    Check(RunArgs),
    /// Print the IAM policy JSON that allows these targets to connect (`rds-db:connect`).
    Policy(PolicyArgs),
    /// Ask the admin endpoint on loopback (/startup, /liveness or /readiness); exit 0 on 200.
    /// For Kubernetes `exec` probes, with the admin endpoint on loopback.
    Probe(ProbeArgs),
}
