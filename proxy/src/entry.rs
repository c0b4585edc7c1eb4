//! Process entry point, in the library so the end-to-end test crate can build the same binary.

use std::collections::HashMap;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::{check, logging, policy, run, token_cmd};
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
        Some(Command::Check(args)) => {
            logging::init(rds_iam_config::LogFormat::Text, "off");
            let env: HashMap<String, String> = std::env::vars().collect();
            check::check(&args, &env, &mut std::io::stdout()).await
        }
        Some(Command::Policy(args)) => {
            logging::init(rds_iam_config::LogFormat::Text, "warn");
            let env: HashMap<String, String> = std::env::vars().collect();
            match policy::policy(&args, &env).await {
                Ok(out) => {
                    for w in &out.warnings {
                        eprintln!("rds-iam-proxy: warning: {w}");
                    }
                    match serde_json::to_string_pretty(&out.document) {
                        Ok(json) => {
                            println!("{json}");
                            0
                        }
                        Err(e) => {
                            eprintln!("rds-iam-proxy: {e}");
                            1
                        }
                    }
                }
                Err(e) => {
                    eprintln!("rds-iam-proxy: {e}");
                    e.exit_code()
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
