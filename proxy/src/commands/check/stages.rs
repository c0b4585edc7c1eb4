//! The walk for one target: each stage runs the proxy's own code for that step, prints its
//! line, and the first failure ends the walk with its diagnosis.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use rds_iam_config::{CaFile, PoolMode, Settings, Target};
use rds_iam_protocol::{ProtocolVersion, StartupMessage};
use rds_iam_signer::AuthToken;

use super::diagnose::{self, Facts, MAX_SKEW_SECS};
use super::query::select_one;
use super::report::{Cause, Failure, Report};
use crate::commands::policy::aws_api::AwsApiError;
use crate::commands::policy::sts::caller_identity;
use crate::targets::{auto_paths, resolve_region, RegionSource, TargetBuilder, TargetContext};
use crate::upstream::{
    authenticate, connect_any, describe_topology, resolve, start_tls, UpstreamError, UpstreamStream,
};

/// What the stages of one target's walk share.
struct Walk<'a, 'r> {
    target: &'a Target,
    ctx: TargetContext,
    user: String,
    facts: Facts,
    timeout: Duration,
    env: &'a HashMap<String, String>,
    report: &'a mut Report<'r>,
}

/// Checks one target, stage by stage.
pub async fn walk(
    target: &Target,
    settings: &Settings,
    builder: &TargetBuilder,
    env: &HashMap<String, String>,
    report: &mut Report<'_>,
) -> Result<(), Failure> {
    let mut walk = config(target, settings, builder, env, report).await?;
    let creds = walk.credentials().await?;
    walk.identity(&creds).await?;
    let token = walk.token().await?;
    let (tcp, addr) = walk.tcp().await?;
    let mut stream = walk.tls(tcp, addr).await?;
    walk.auth(&mut stream, addr, &token).await?;
    walk.query(&mut stream).await?;
    walk.topology(&mut stream).await;
    Ok(())
}

/// Whether the target pools server connections, and how.
fn pooling(target: &Target, settings: &Settings) -> String {
    match target.pool_mode {
        PoolMode::None => "pool_mode none (a server connection per client)".to_owned(),
        PoolMode::Session => {
            let pool = &settings.pool;
            format!(
                "pool_mode session (up to {} idle per key, idle timeout {}, lifetime {}, reset {:?})",
                pool.max_idle,
                humantime::format_duration(pool.idle_timeout),
                humantime::format_duration(pool.lifetime),
                pool.reset_query
            )
        }
    }
}

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

/// The `config` stage: the target as the proxy would build it.
async fn config<'a, 'r>(
    target: &'a Target,
    settings: &Settings,
    builder: &TargetBuilder,
    env: &'a HashMap<String, String>,
    report: &'a mut Report<'r>,
) -> Result<Walk<'a, 'r>, Failure> {
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
    let ctx = builder
        .build(target, settings)
        .await
        .map_err(|e| diagnose::startup(&e))?;
    let ca_file = match &target.ca_file {
        CaFile::Path(p) => Some(p.clone()),
        CaFile::Auto => auto_paths(env.get("HOME").map(std::path::Path::new))
            .into_iter()
            .find(|p| p.exists()),
    };
    let from_host = matches!(
        resolve_region(target.region.as_deref(), &target.host, None).await,
        Some((_, RegionSource::Host))
    );
    report.ok(
        "config",
        &format!(
            "target {} → {}:{} as \"{user}\", database {}, region {}{}, dial {}:{}, CA bundle {}, {}, topology {}",
            target.name,
            target.host,
            target.port,
            target.database.as_deref().unwrap_or("(the user's default)"),
            ctx.region,
            if from_host { " (from the host)" } else { "" },
            ctx.endpoint.dial.0,
            ctx.endpoint.dial.1,
            ca_file
                .as_ref()
                .map_or("(auto)".into(), |p| p.display().to_string()),
            pooling(target, settings),
            ctx.cluster
                .as_ref()
                .map_or("off", |c| c.role.label()),
        ),
    );
    let facts = Facts {
        target: target.name.clone(),
        host: target.host.clone(),
        port: target.port,
        user: user.clone(),
        region: ctx.region.clone(),
        ca_file,
        connect_to: target.connect_to.clone(),
        ..Facts::default()
    };
    Ok(Walk {
        target,
        ctx,
        user,
        facts,
        timeout: settings.connect_timeout,
        env,
        report,
    })
}

impl Walk<'_, '_> {
    /// Credentials from the chain, and what kind they are.
    async fn credentials(&mut self) -> Result<Credentials, Failure> {
        let creds = within("credentials", self.timeout, self.ctx.signer.credentials())
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
        let kind = if creds.session_token().is_some() {
            "temporary"
        } else {
            "long-term"
        };
        let line = format!(
            "{kind} access key {}, {expiry}",
            mask(creds.access_key_id())
        );
        self.report.ok("credentials", &line);
        Ok(creds)
    }

    /// Who the credentials belong to, and the clock against AWS's.
    async fn identity(&mut self, creds: &Credentials) -> Result<(), Failure> {
        let region = &self.ctx.region;
        match caller_identity(region, creds, self.env, self.timeout).await {
            Ok(id) => {
                self.facts.account = Some(id.account.clone());
                self.facts.principal = Some(id.arn.clone());
                self.facts.skew = id.skew;
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
                let line = format!("{} (account {}), {clock}", id.arn, id.account);
                self.report.ok("identity", &line);
                Ok(())
            }
            // The proxy itself never calls STS: an unreachable STS is worth a warning, not a
            // stop.
            Err(e @ (AwsApiError::Unreachable { .. } | AwsApiError::Timeout { .. })) => {
                self.report.warn(
                    "identity",
                    &format!("STS GetCallerIdentity failed ({e}); account and clock not verified, continuing"),
                );
                Ok(())
            }
            Err(e) => Err(Failure::new(
                "identity",
                format!("STS GetCallerIdentity refused these credentials: {e}"),
                diagnose::sts(&e, &self.facts),
            )),
        }
    }

    async fn token(&mut self) -> Result<AuthToken, Failure> {
        let request = self.ctx.token_request(&self.user);
        let token = within("token", self.timeout, self.ctx.signer.token(&request))
            .await?
            .map_err(|e| {
                Failure::new(
                    "token",
                    format!("cannot mint an IAM token: {e}"),
                    diagnose::token(&e, &self.facts),
                )
            })?;
        let ctx = &self.ctx;
        let line = format!(
            "signed for {}:{} as \"{}\" in {} (valid 15m)",
            ctx.host, ctx.port, self.user, ctx.region
        );
        self.report.ok("token", &line);
        Ok(token)
    }

    /// The `dns` and `tcp` stages: the proxy's own dial, one step at a time.
    async fn tcp(&mut self) -> Result<(tokio::net::TcpStream, SocketAddr), Failure> {
        let (host, port) = self.ctx.endpoint.dial.clone();
        let addrs = within("dns", self.timeout, resolve(&host, port))
            .await?
            .map_err(|e| Failure::new("dns", e.to_string(), diagnose::dns(&self.facts)))?;
        let via = if self.target.connect_to.is_some() {
            " (connect_to)"
        } else {
            ""
        };
        let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        self.report
            .ok("dns", &format!("{host}{via} → {}", ips.join(", ")));
        let started = Instant::now();
        let (tcp, addr) = within("tcp", self.timeout, connect_any(&host, addrs))
            .await?
            .map_err(|e| Failure::new("tcp", e.to_string(), diagnose::tcp(&self.facts)))?;
        let line = format!("connected to {addr} in {}ms", started.elapsed().as_millis());
        self.report.ok("tcp", &line);
        Ok((tcp, addr))
    }

    async fn tls(
        &mut self,
        tcp: tokio::net::TcpStream,
        addr: SocketAddr,
    ) -> Result<UpstreamStream, Failure> {
        let stream = within(
            "tls",
            self.timeout,
            start_tls(tcp, addr, &self.ctx.endpoint.trust),
        )
        .await?
        .map_err(|e| Failure::new("tls", tls_summary(&e), diagnose::tls(&e, &self.facts)))?;
        let version = stream
            .get_ref()
            .1
            .protocol_version()
            .map_or("TLS".into(), |v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                other => format!("{other:?}"),
            });
        let line = format!("verified {} ({version})", self.ctx.host);
        self.report.ok("tls", &line);
        Ok(stream)
    }

    /// IAM authentication, on the session the query then uses.
    async fn auth(
        &mut self,
        stream: &mut UpstreamStream,
        addr: SocketAddr,
        token: &AuthToken,
    ) -> Result<(), Failure> {
        let user = self.user.clone();
        let mut params = vec![
            ("user".to_owned(), user.clone()),
            (
                "application_name".to_owned(),
                "rds-iam-proxy check".to_owned(),
            ),
        ];
        if let Some(db) = &self.target.database {
            params.push(("database".to_owned(), db.clone()));
        }
        let startup = StartupMessage::new(ProtocolVersion::V3_0, params);
        within(
            "auth",
            self.timeout,
            authenticate(stream, addr, &startup, token, &user),
        )
        .await?
        .map_err(|e| {
            let (summary, causes) = diagnose::auth(&e, &self.facts);
            Failure::new("auth", summary, causes)
        })?;
        self.report
            .ok("auth", &format!("IAM token accepted for \"{user}\""));
        Ok(())
    }

    async fn query(&mut self, stream: &mut UpstreamStream) -> Result<(), Failure> {
        let started = Instant::now();
        let value = within("query", self.timeout, select_one(stream))
            .await?
            .map_err(|e| Failure::new("query", e.to_string(), Vec::new()))?;
        let line = format!(
            "SELECT 1 returned {value} in {}ms",
            started.elapsed().as_millis()
        );
        self.report.ok("query", &line);
        Ok(())
    }
}

impl Walk<'_, '_> {
    /// The Aurora topology, for a target that follows one: what the proxy would read. A
    /// topology that cannot be read is a warning: the proxy then dials the endpoint by DNS.
    async fn topology(&mut self, stream: &mut UpstreamStream) {
        let Some(cluster) = self.ctx.cluster.clone() else {
            return;
        };
        match tokio::time::timeout(self.timeout, describe_topology(stream, &cluster)).await {
            Ok(Ok(lines)) => {
                for line in lines {
                    self.report.ok("topology", &line);
                }
            }
            Ok(Err(why)) => self.report.warn(
                "topology",
                &format!("cannot read the Aurora topology ({why}): the proxy will dial {} by DNS; grant the user EXECUTE on pg_catalog.aurora_replica_status() or set topology = off", self.target.host),
            ),
            Err(_) => self.report.warn("topology", "no answer to the topology query within connect_timeout"),
        }
    }
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
