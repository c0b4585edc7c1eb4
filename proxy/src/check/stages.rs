//! The walk for one target: each stage runs the proxy's own code for that step, prints its
//! line, and the first failure ends the walk with its diagnosis.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rds_iam_config::{CaFile, Settings, Target};
use rds_iam_protocol::{ProtocolVersion, StartupMessage};
use rds_iam_signer::region_from_host;

use super::diagnose::{self, Facts, MAX_SKEW_SECS};
use super::query::select_one;
use super::report::{Cause, Failure, Report};
use crate::app::{build_target, SignerPool};
use crate::ca_bundle::auto_paths;
use crate::policy::aws_api::AwsApiError;
use crate::policy::sts::caller_identity;
use crate::upstream::{authenticate, connect_any, resolve, start_tls, UpstreamError};

/// The stages in order, as printed.
pub const STAGES: [&str; 9] = [
    "config",
    "credentials",
    "identity",
    "token",
    "dns",
    "tcp",
    "tls",
    "auth",
    "query",
];

/// Bounds one stage by the connect timeout, as the proxy bounds the whole connect.
async fn within<T, E>(
    stage: &'static str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, Failure> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        Failure::new(
            stage,
            format!(
                "no answer within {} (connect_timeout)",
                humantime::format_duration(timeout)
            ),
            Vec::new(),
        )
    })
}

pub async fn walk(
    target: &Target,
    settings: &Settings,
    signers: &mut SignerPool,
    env: &HashMap<String, String>,
    report: &mut Report<'_>,
) -> Result<(), Failure> {
    let timeout = settings.connect_timeout;
    let Some(user) = target.user.clone() else {
        return Err(Failure::config(
            format!("target {}: no database user to check with", target.name),
            vec![Cause::new(
                "the target names no user",
                [format!(
                    "put it in the URL (postgres://USER@{}) or pass --user USER",
                    target.host
                )],
            )],
        ));
    };
    let ctx = build_target(target, settings, signers)
        .await
        .map_err(|e| diagnose::startup(&e))?;
    let ca_file = match &target.ca_file {
        CaFile::Path(p) => Some(p.clone()),
        CaFile::Auto => auto_paths(env.get("HOME").map(std::path::Path::new))
            .into_iter()
            .find(|p| p.exists()),
    };
    let mut facts = Facts {
        target: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        user: user.clone(),
        region: ctx.region.clone(),
        ca_file: ca_file.clone(),
        connect_to: target.connect_to.clone(),
        ..Facts::default()
    };
    report.ok(
        "config",
        &format!(
            "target {} → {}:{} as \"{user}\", database {}, region {}{}, dial {}:{}, CA bundle {}",
            target.name,
            target.host,
            target.port,
            target.database.as_deref().unwrap_or("(the user's default)"),
            ctx.region,
            if target.region.is_none() && region_from_host(&target.host).is_some() {
                " (from the host)"
            } else {
                ""
            },
            ctx.dial.0,
            ctx.dial.1,
            ca_file.map_or("(auto)".into(), |p| p.display().to_string()),
        ),
    );

    // Credentials and who they belong to.
    let creds = within("credentials", timeout, ctx.signer.credentials())
        .await?
        .map_err(|e| {
            Failure::new(
                "credentials",
                format!("no usable AWS credentials: {e}"),
                diagnose::credentials(&e),
            )
        })?;
    let expiry = creds.expiry().map_or("do not expire".to_owned(), |t| {
        let left = t
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        format!(
            "expire in {}",
            humantime::format_duration(Duration::from_secs(left.as_secs()))
        )
    });
    report.ok(
        "credentials",
        &format!(
            "{} access key {}, {expiry}",
            if creds.session_token().is_some() {
                "temporary"
            } else {
                "long-term"
            },
            mask(creds.access_key_id())
        ),
    );
    match caller_identity(&ctx.region, &creds, env, timeout).await {
        Ok(id) => {
            facts.account = Some(id.account.clone());
            facts.principal = Some(id.arn.clone());
            facts.skew = id.skew;
            if let Some(s) = id.skew.filter(|s| s.abs() > MAX_SKEW_SECS) {
                return Err(Failure::new(
                    "identity",
                    format!(
                        "{} (account {}), but the clock is {s}s off AWS",
                        id.arn, id.account
                    ),
                    vec![diagnose::clock_cause(s)],
                ));
            }
            let clock = id.skew.map_or("clock offset unknown".into(), |s| {
                format!("clock {s:+}s from AWS")
            });
            report.ok(
                "identity",
                &format!("{} (account {}), {clock}", id.arn, id.account),
            );
        }
        // The proxy itself never calls STS: an unreachable STS is worth a warning, not a stop.
        Err(e @ (AwsApiError::Unreachable { .. } | AwsApiError::Timeout { .. })) => {
            report.warn(
                "identity",
                &format!("STS GetCallerIdentity failed ({e}); account and clock not verified, continuing"),
            );
        }
        Err(e) => {
            return Err(Failure::new(
                "identity",
                format!("STS GetCallerIdentity refused these credentials: {e}"),
                diagnose::sts(&e, &facts),
            ))
        }
    }

    // Token.
    let request = ctx.token_request(&user);
    let token = within("token", timeout, ctx.signer.token(&request))
        .await?
        .map_err(|e| {
            Failure::new(
                "token",
                format!("cannot mint an IAM token: {e}"),
                diagnose::token(&e, &facts),
            )
        })?;
    report.ok(
        "token",
        &format!(
            "signed for {}:{} as \"{user}\" in {} (valid 15m)",
            ctx.host, ctx.port, ctx.region
        ),
    );

    // DNS, TCP, TLS: the proxy's own connect steps, one at a time.
    let (dial_host, dial_port) = (ctx.dial.0.clone(), ctx.dial.1);
    let addrs = within("dns", timeout, resolve(&dial_host, dial_port))
        .await?
        .map_err(|e| Failure::new("dns", e.to_string(), diagnose::dns(&facts)))?;
    let via = if target.connect_to.is_some() {
        " (connect_to)"
    } else {
        ""
    };
    report.ok(
        "dns",
        &format!(
            "{dial_host}{via} → {}",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let started = Instant::now();
    let (tcp, addr) = within("tcp", timeout, connect_any(&dial_host, addrs))
        .await?
        .map_err(|e| Failure::new("tcp", e.to_string(), diagnose::tcp(&facts)))?;
    report.ok(
        "tcp",
        &format!("connected to {addr} in {}ms", started.elapsed().as_millis()),
    );
    let mut stream = within("tls", timeout, start_tls(tcp, addr, &ctx))
        .await?
        .map_err(|e| Failure::new("tls", tls_summary(&e), diagnose::tls(&e, &facts)))?;
    let session = stream.get_ref().1;
    let version = session
        .protocol_version()
        .map_or("TLS".into(), |v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        });
    report.ok("tls", &format!("verified {} ({version})", ctx.host));

    // IAM authentication and a query, on the same session.
    let mut params = vec![
        ("user".to_owned(), user.clone()),
        (
            "application_name".to_owned(),
            "rds-iam-proxy check".to_owned(),
        ),
    ];
    if let Some(db) = &target.database {
        params.push(("database".to_owned(), db.clone()));
    }
    let startup = StartupMessage::new(ProtocolVersion::V3_0, params);
    within(
        "auth",
        timeout,
        authenticate(&mut stream, addr, &startup, &token, &user),
    )
    .await?
    .map_err(|e| {
        let (summary, causes) = diagnose::auth(&e, &facts);
        Failure::new("auth", summary, causes)
    })?;
    report.ok("auth", &format!("IAM token accepted for \"{user}\""));
    let started = Instant::now();
    let value = within("query", timeout, select_one(&mut stream))
        .await?
        .map_err(|e| Failure::new("query", e.to_string(), Vec::new()))?;
    report.ok(
        "query",
        &format!(
            "SELECT 1 returned {value} in {}ms",
            started.elapsed().as_millis()
        ),
    );
    Ok(())
}

fn tls_summary(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Tls { host, source, .. } => {
            format!("certificate of {host} not verified: {source}")
        }
        other => other.to_string(),
    }
}

/// `AKIA…WXYZ`: enough to tell keys apart, not the whole id.
fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let head: String = key.chars().take(4).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}
