//! Process entry point, in the library so the end-to-end test crate can build the same binary.

use std::process::ExitCode;

use clap::Parser;
use rds_iam_config::LogFormat;

use super::cli::{Cli, Command};
use super::environment::Environment;
use super::{logging, run};
use crate::commands;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Environment::capture();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-iam-proxy: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(dispatch(cli, env)))
}

async fn dispatch(cli: Cli, env: Environment) -> u8 {
    match cli.command {
        Some(Command::Token(args)) => {
            logging::init(LogFormat::Text, "warn");
            commands::token(&args).await
        }
        Some(Command::Check(args)) => {
            logging::init(LogFormat::Text, "off");
            commands::check(&args, env.vars(), &mut std::io::stdout()).await
        }
        Some(Command::Policy(args)) => {
            logging::init(LogFormat::Text, "warn");
            commands::policy(&args, env.vars()).await
        }
        None => run_proxy(cli.run, env).await,
    }
}

async fn run_proxy(args: rds_iam_config::RunArgs, env: Environment) -> u8 {
    let settings = match rds_iam_config::load(&args, env.vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rds-iam-proxy: {e}");
            return run::StartupError::from(e).exit_code();
        }
    };
    logging::init(settings.log_format, &settings.log_level);
    match run::serve(settings, args, env).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("rds-iam-proxy: {e}");
            e.exit_code()
        }
    }
}
