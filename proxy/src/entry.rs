//! Process entry point, in the library so the end-to-end test crate can build the same binary.

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::{logging, run, token_cmd};
use clap::Parser;

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
    ExitCode::from(runtime.block_on(dispatch(cli)))
}

async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Some(Command::Token(args)) => {
            logging::init(rds_iam_config::LogFormat::Text, "warn");
            match token_cmd::token(&args).await {
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
        None => {
            let settings = match run::load_settings(&cli.run) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("rds-iam-proxy: {e}");
                    return e.exit_code();
                }
            };
            logging::init(settings.log_format, &settings.log_level);
            match run::run(settings).await {
                Ok(code) => code,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    eprintln!("rds-iam-proxy: {e}");
                    e.exit_code()
                }
            }
        }
    }
}
