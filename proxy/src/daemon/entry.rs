//! Process entry point, in the library so the end-to-end test crate can build the same binary.

use std::process::ExitCode;

use clap::Parser;
use rds_iam_config::LogFormat;

use super::cli::{Cli, Command};
use super::environment::Environment;
use super::signals::EarlyHangup;
use super::{limits, logging, run};
use crate::commands;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything slow: a SIGHUP during start-up must not end the daemon.
    let early_hangup = cli.command.is_none().then(EarlyHangup::install);
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
    ExitCode::from(runtime.block_on(dispatch(cli, env, early_hangup)))
}

async fn dispatch(cli: Cli, env: Environment, early_hangup: Option<EarlyHangup>) -> u8 {
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
        Some(Command::Probe(args)) => commands::probe(&args).await,
        None => run_proxy(cli.run, env, early_hangup).await,
    }
}

async fn run_proxy(
    args: rds_iam_config::RunArgs,
    env: Environment,
    early_hangup: Option<EarlyHangup>,
) -> u8 {
    // Before the settings, which may hold client_password.
    let held = limits::hold_off_core_dumps();
    let settings = match rds_iam_config::load(&args, env.vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rds-iam-proxy: {e}");
            return run::StartupError::from(e).exit_code();
        }
    };
    logging::init(settings.log_format, &settings.log_level);
    let limits = limits::apply(held, settings.allow_core_dumps);
    tracing::info!(
        open_files = limits.open_files,
        core_dumps = limits.core_dumps,
        "process limits set"
    );
    match run::serve(settings, args, env, early_hangup).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("rds-iam-proxy: {e}");
            e.exit_code()
        }
    }
}
