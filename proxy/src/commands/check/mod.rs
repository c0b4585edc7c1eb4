//! `rds-iam-proxy check`: connect once through every stage the proxy goes through (config,
//! credentials and caller identity, token, DNS, TCP, TLS, IAM auth, `SELECT 1`), one line per
//! stage; the first failure stops the walk with its likely causes and their fixes.

mod diagnose;
mod query;
mod report;
mod stages;

use std::collections::HashMap;
use std::io::Write;

use rds_iam_config::RunArgs;

use crate::targets::TargetBuilder;
use report::Failure;

/// Runs the check and returns the exit code: 0 all passed, 1 a stage failed, 2 bad settings.
pub(crate) async fn check(
    args: &RunArgs,
    env: &HashMap<String, String>,
    out: &mut dyn Write,
) -> u8 {
    let mut report = report::Report::new(out);
    let settings = match rds_iam_config::load(args, env) {
        Ok(s) => s,
        Err(e) => {
            report.fail(&Failure::config(e.to_string(), Vec::new()));
            return 2;
        }
    };
    let builder = TargetBuilder::new(env.get("HOME").map(std::path::PathBuf::from));
    for target in &settings.targets {
        if let Err(failure) = stages::walk(target, &settings, &builder, env, &mut report).await {
            report.fail(&failure);
            return failure.exit_code;
        }
    }
    builder.signers().shutdown();
    report.note(&format!(
        "all checks passed ({} target{})",
        settings.targets.len(),
        if settings.targets.len() == 1 { "" } else { "s" }
    ));
    0
}
