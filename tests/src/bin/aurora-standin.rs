#![forbid(unsafe_code)]
//! Local demo: an Aurora stand-in with IAM user `iam_user` and database `demo`. Prints how to
//! run rds-iam-proxy and psql against it, then waits for Ctrl-C (or SIGTERM).
//!
//! `--print-env FILE` writes KEY=VALUE lines (ending with STANDIN_READY=1) once everything is
//! up, atomically, so a script can wait for the file and source it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use standin::{StandIn, StandInOptions};

const USER: &str = "iam_user";
const DATABASE: &str = "demo";

#[tokio::main]
async fn main() -> Result<()> {
    let mut opts = StandInOptions::default();
    let mut env_file: Option<PathBuf> = None;
    let mut password_users: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--print-env" => env_file = Some(value()?.into()),
            "--host" => opts.host = value()?,
            "--region" => opts.region = value()?,
            "--session-lifetime" => opts.session_lifetime = humantime::parse_duration(&value()?)?,
            "--max-connections" => opts.max_connections = value()?.parse()?,
            // A SCRAM user beside the IAM one (bench/: direct and pgbouncer connections).
            "--password-user" => {
                let v = value()?;
                let (name, password) =
                    v.split_once(':').context("--password-user NAME:PASSWORD")?;
                password_users.push((name.to_owned(), password.to_owned()));
            }
            "-h" | "--help" => {
                println!(
                    "usage: aurora-standin [--print-env FILE] [--host HOST] [--region REGION] \
                     [--session-lifetime DUR] [--max-connections N] [--password-user NAME:PASSWORD]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }

    let standin = StandIn::start(opts).await?;
    standin.create_iam_user(USER).await?;
    standin.create_database(DATABASE, USER).await?;
    for (name, password) in &password_users {
        standin.create_password_user(name, password).await?;
    }

    let env = standin.credentials_env();
    let proxy = standin.proxy_args(USER, DATABASE);
    let quoted = |s: &str| shell_quote(s);
    println!("Aurora stand-in for {} is up.", standin.endpoint());
    println!("  PostgreSQL really listens on {}", standin.addr());
    println!("  CA file: {}", standin.ca_file().display());
    println!("  AWS container credentials: {}", standin.container_url());
    println!();
    println!("Run the proxy:");
    let env_line: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", quoted(v)))
        .collect();
    let args_line: Vec<String> = proxy.iter().map(|a| quoted(a)).collect();
    println!(
        "  env {} \\\n    rds-iam-proxy {}",
        env_line.join(" "),
        args_line.join(" ")
    );
    println!();
    println!("Then, through the proxy:");
    println!("  psql 'host=127.0.0.1 port=5432 user={USER} dbname={DATABASE}'");
    println!();
    println!("Or directly, with a token from the proxy:");
    println!(
        "  PGPASSWORD=\"$(env {} rds-iam-proxy token --host {} --port {} --user {USER})\" \\\n    \
         psql 'host={} hostaddr={} port={} sslmode=verify-full sslrootcert={} user={USER} dbname={DATABASE}'",
        env_line.join(" "),
        standin.host(),
        standin.advertised_port(),
        standin.host(),
        standin.addr().ip(),
        standin.addr().port(),
        standin.ca_file().display(),
    );

    if let Some(path) = &env_file {
        let mut lines: Vec<(String, String)> = env.clone();
        lines.extend([
            ("STANDIN_HOST".into(), standin.host().to_owned()),
            ("STANDIN_PORT".into(), standin.advertised_port().to_string()),
            ("STANDIN_CONNECT_TO".into(), standin.addr().to_string()),
            (
                "STANDIN_CA_FILE".into(),
                standin.ca_file().display().to_string(),
            ),
            ("STANDIN_TARGET".into(), proxy[0].clone()),
            ("STANDIN_USER".into(), USER.into()),
            ("STANDIN_DATABASE".into(), DATABASE.into()),
            ("STANDIN_PID".into(), std::process::id().to_string()),
            ("STANDIN_READY".into(), "1".into()),
        ]);
        let text: String = lines
            .iter()
            .map(|(k, v)| format!("{k}={}\n", quoted(v)))
            .collect();
        // Write-then-rename: the file appears complete or not at all.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
        println!();
        println!("Environment written to {}", path.display());
    }
    println!();
    println!("Ctrl-C to stop.");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping");
    if let Some(path) = &env_file {
        let _ = std::fs::remove_file(path);
    }
    standin.stop().await
}

/// Single-quotes for sh unless the value is plainly safe.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,+".contains(&b));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
