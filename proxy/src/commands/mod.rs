//! The subcommands: `check` walks the proxy's own connect stages one by one, `policy` prints
//! the IAM policy the targets need, `token` prints one token, `probe` asks the admin endpoint. Each returns its exit code.

mod check;
mod policy;
mod probe;
mod token;

use std::collections::HashMap;

pub(crate) use check::check;
pub(crate) use policy::PolicyArgs;
pub(crate) use probe::{probe, ProbeArgs};
pub(crate) use token::{token, TokenArgs};

/// `rds-iam-proxy policy`: the JSON on stdout, warnings on stderr.
pub(crate) async fn policy(args: &PolicyArgs, env: &HashMap<String, String>) -> u8 {
    let out = match policy::policy(args, env).await {
        Ok(out) => out,
        Err(e) => {
            eprintln!("rds-iam-proxy: {e}");
            return e.exit_code();
        }
    };
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
