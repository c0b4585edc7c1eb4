//! The monitor of one cluster: one IAM connection to the writer, through the writer's own
//! instance endpoint, on which the topology is read every `topology_refresh`. When that
//! connection is lost, a session fails to connect, or the instance turns out to be in
//! recovery, it probes the instances it knows (and the cluster endpoint) every 100 ms, all
//! at once, until one answers `pg_is_in_recovery() = false`. A topology that cannot be read
//! leaves the targets on their endpoints (DNS) and is tried again every refresh.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rds_iam_protocol::{ProtocolVersion, StartupMessage};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::cluster::{Cluster, Login};
use super::read::{read, ReadError, Reading};
use super::select::{Node, View};
use crate::targets::{Endpoint, TargetContext};
use crate::upstream::session::connect_with_retry;
use crate::upstream::UpstreamStream;

/// How often the writer is looked for while something is wrong.
const FAST_POLL: Duration = Duration::from_millis(100);
/// How often a topology not read yet is tried again (sessions dial the endpoint meanwhile).
const FIRST_READ_RETRY: Duration = Duration::from_secs(1);
/// One probe of one instance (connect, TLS, IAM, the query), at most.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Shown in `pg_stat_activity`.
const APPLICATION_NAME: &str = "rds-iam-proxy topology";

/// The monitor's connection, to the instance it confirmed as the writer.
struct Conn {
    stream: UpstreamStream,
    buf: BytesMut,
    instance: Arc<str>,
}

enum Search {
    Found(Box<(Conn, Reading)>),
    /// The topology cannot be read (function missing, no permission, instance endpoints
    /// out of reach).
    Unavailable(String),
    /// No writer yet; `reached`: some instance answered.
    NoWriter {
        reached: bool,
    },
}

struct Monitor {
    cluster: Arc<Cluster>,
    login: Login,
    /// Instance endpoints by server id, built once each.
    endpoints: HashMap<String, Arc<Endpoint>>,
    /// The first reading failed (its warning written) and none has succeeded since.
    waiting_for_first: bool,
    last_failure: Option<String>,
}

/// Runs until the cluster is closed. Waits for a login first: the target's forced user,
/// else `topology_user`, else that of the first client that authenticated.
pub(super) async fn run(cluster: Arc<Cluster>) {
    let mut login = cluster.login();
    let login = tokio::select! {
        l = login.wait_for(Option::is_some) => match l {
            Ok(l) => l.clone().unwrap_or_else(|| unreachable!("waited for Some")),
            Err(_) => return,
        },
        () = cluster.stop.cancelled() => return,
    };
    let stop = cluster.stop.clone();
    let monitor = Monitor {
        cluster,
        login,
        endpoints: HashMap::new(),
        waiting_for_first: false,
        last_failure: None,
    };
    tokio::select! {
        () = monitor.run() => {}
        () = stop.cancelled() => {}
    }
}

impl Monitor {
    async fn run(mut self) {
        let mut conn: Option<Conn> = None;
        loop {
            conn = match conn.take() {
                Some(c) => self.watch(c).await,
                None => self.find().await,
            };
        }
    }

    /// Waits on the writer's connection for the refresh, a wake-up or its loss, then reads.
    async fn watch(&mut self, mut c: Conn) -> Option<Conn> {
        let lost = tokio::select! {
            () = tokio::time::sleep(self.cluster.settings.refresh) => false,
            () = self.cluster.wake.notified() => false,
            n = c.stream.read_buf(&mut c.buf) => !matches!(n, Ok(n) if n > 0),
        };
        let shared = &self.cluster.shared;
        if lost {
            tracing::info!(cluster = %shared.name, instance = %c.instance, "topology connection lost; looking for the writer");
        } else {
            match tokio::time::timeout(PROBE_TIMEOUT, read(&mut c.stream, &mut c.buf)).await {
                Ok(Ok(r)) if !r.in_recovery && r.instance.as_str() == &*c.instance => {
                    self.publish(&r);
                    return Some(c);
                }
                Ok(Ok(r)) => {
                    tracing::info!(cluster = %shared.name, instance = %r.instance, "the writer is in recovery now; looking for the new one");
                }
                Ok(Err(e)) => {
                    tracing::info!(cluster = %shared.name, error = %e, "topology read failed; looking for the writer");
                }
                Err(_) => {
                    tracing::info!(cluster = %shared.name, "topology read timed out; looking for the writer");
                }
            }
        }
        shared.trouble_seen();
        shared.searching(false);
        None
    }

    /// Looks for the writer once; on failure waits (100 ms while following, 1 s before the
    /// first reading, the refresh when the topology cannot be read).
    async fn find(&mut self) -> Option<Conn> {
        let shared = self.cluster.shared.clone();
        match self.search().await {
            Search::Found(found) => {
                let (c, r) = *found;
                if std::mem::take(&mut self.waiting_for_first) || shared.is_fallback() {
                    tracing::info!(cluster = %shared.name, writer = %r.instance, "Aurora topology read; following the writer");
                }
                self.publish(&r);
                Some(c)
            }
            Search::Unavailable(why) => {
                if !shared.is_fallback() {
                    tracing::warn!(
                        cluster = %shared.name,
                        reason = %why,
                        "cannot read the Aurora topology; dialling the endpoint by DNS (as topology = off)"
                    );
                }
                shared.fall_back();
                tokio::time::sleep(self.cluster.settings.refresh).await;
                None
            }
            Search::NoWriter { reached } if shared.view().is_some() => {
                shared.searching(!reached);
                tokio::time::sleep(FAST_POLL).await;
                None
            }
            Search::NoWriter { .. } => {
                if !std::mem::replace(&mut self.waiting_for_first, true) {
                    tracing::warn!(
                        cluster = %shared.name,
                        reason = %self.last_failure.as_deref().unwrap_or("no instance answered"),
                        "cannot read the Aurora topology yet; dialling the endpoint by DNS meanwhile"
                    );
                }
                tokio::time::sleep(FIRST_READ_RETRY).await;
                None
            }
        }
    }

    /// Probes the instances it knows and the cluster endpoint at once; an instance in
    /// recovery tells of the others, which are probed next. A writer found through the
    /// cluster endpoint is confirmed through its own instance endpoint, which is what
    /// sessions will dial.
    async fn search(&mut self) -> Search {
        let mut next: Vec<Arc<Endpoint>> = self
            .cluster
            .shared
            .view()
            .map(|v| v.nodes.iter().map(|n| n.endpoint.clone()).collect())
            .unwrap_or_default();
        next.push(self.cluster.context.endpoint.clone());
        let mut tried = HashSet::new();
        let (mut reached, mut unavailable) = (false, None);
        while !next.is_empty() {
            let mut probes = JoinSet::new();
            for endpoint in next.drain(..) {
                if tried.insert(endpoint.host.clone()) {
                    probes.spawn(probe(
                        self.cluster.context.clone(),
                        self.login.clone(),
                        endpoint,
                    ));
                }
            }
            while let Some(done) = probes.join_next().await {
                let Ok((endpoint, result)) = done else {
                    continue;
                };
                match result {
                    Ok((c, r)) if !r.in_recovery => {
                        probes.abort_all();
                        return self.confirm(&endpoint, c, r).await;
                    }
                    Ok((_, r)) => {
                        reached = true;
                        next.extend(r.rows.iter().map(|row| self.endpoint(&row.id)));
                    }
                    Err(ReadError::Unavailable(why)) => {
                        reached = true;
                        unavailable = Some(why);
                    }
                    Err(e) => {
                        tracing::debug!(cluster = %self.cluster.shared.name, host = %endpoint.host, error = %e, "topology probe failed");
                        self.last_failure = Some(e.to_string());
                    }
                }
            }
        }
        match unavailable {
            Some(why) if self.cluster.shared.view().is_none() => Search::Unavailable(why),
            _ => Search::NoWriter { reached },
        }
    }

    /// A writer found at `endpoint`: kept if that is its instance endpoint, else looked up
    /// there (a tunnel that carries only the cluster endpoint cannot serve instances).
    async fn confirm(&mut self, endpoint: &Endpoint, c: Conn, r: Reading) -> Search {
        if endpoint.instance.is_some() {
            return Search::Found(Box::new((c, r)));
        }
        drop(c);
        let own = self.endpoint(&r.instance);
        let (_, result) = probe(
            self.cluster.context.clone(),
            self.login.clone(),
            own.clone(),
        )
        .await;
        match result {
            Ok((c, r)) if !r.in_recovery => Search::Found(Box::new((c, r))),
            Ok(_) => Search::NoWriter { reached: true },
            Err(e) => Search::Unavailable(format!(
                "the writer's instance endpoint {} cannot be reached ({e}); through a tunnel, give a --resolve entry for each instance endpoint",
                own.host
            )),
        }
    }

    fn endpoint(&mut self, id: &str) -> Arc<Endpoint> {
        let cluster = &self.cluster;
        self.endpoints
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(cluster.context.instance_endpoint(&cluster.endpoint, id)))
            .clone()
    }

    /// The reading of the confirmed writer `r.instance`, as the view sessions pick from.
    fn publish(&mut self, r: &Reading) {
        let writer: Arc<str> = r.instance.as_str().into();
        let mut nodes: Vec<Node> = r
            .rows
            .iter()
            .map(|row| Node {
                id: row.id.as_str().into(),
                endpoint: self.endpoint(&row.id),
                lag: row.lag,
                claims_writer: row.claims_writer && *row.id != *writer,
            })
            .collect();
        if !nodes.iter().any(|n| n.id == writer) {
            nodes.push(Node {
                id: writer.clone(),
                endpoint: self.endpoint(&writer),
                lag: Duration::ZERO,
                claims_writer: false,
            });
        }
        self.cluster.shared.publish(View {
            nodes,
            writer: Some(writer),
        });
    }
}

/// One IAM connection to `endpoint` and one reading on it, within [`PROBE_TIMEOUT`].
async fn probe(
    context: Arc<TargetContext>,
    login: Login,
    endpoint: Arc<Endpoint>,
) -> (Arc<Endpoint>, Result<(Conn, Reading), ReadError>) {
    let startup = StartupMessage::new(
        ProtocolVersion::V3_0,
        vec![
            ("user".into(), login.user.clone()),
            ("database".into(), login.database.clone()),
            ("application_name".into(), APPLICATION_NAME.into()),
        ],
    );
    let deadline = Instant::now() + context.connect_timeout.min(PROBE_TIMEOUT);
    let attempt = async {
        let session = connect_with_retry(&context, &endpoint, &startup, &login.user, deadline)
            .await
            .map_err(|e| ReadError::Failed(Box::new(e.into())))?;
        let mut stream = session.stream;
        let mut buf = BytesMut::new();
        let reading = read(&mut stream, &mut buf).await?;
        let conn = Conn {
            stream,
            buf,
            instance: reading.instance.as_str().into(),
        };
        Ok((conn, reading))
    };
    let result = tokio::time::timeout_at(deadline, attempt)
        .await
        .unwrap_or(Err(ReadError::Malformed(
            "no answer within the probe timeout",
        )));
    (endpoint, result)
}
