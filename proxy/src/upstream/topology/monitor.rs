//! The monitor of one cluster: one IAM connection to the writer, on which the topology is
//! read every `topology_refresh`; when that connection is lost, a session fails to connect,
//! or the instance turns out to be in recovery, it looks for the writer every 100 ms among
//! the instances it knows (and the cluster endpoint) until one answers
//! `pg_is_in_recovery() = false`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rds_iam_protocol::{ProtocolVersion, StartupMessage};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::cluster::{Cluster, Login};
use super::read::{read, ReadError, Reading};
use super::select::{Node, View};
use crate::targets::Endpoint;
use crate::upstream::session::connect_with_retry;
use crate::upstream::UpstreamStream;

/// How often the writer is looked for while something is wrong.
const FAST_POLL: Duration = Duration::from_millis(100);
/// How often a topology never read yet is tried again (sessions dial the endpoint meanwhile).
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
    /// The topology cannot be read (function missing, no permission).
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
    /// Set once the first reading failed (its warning written), until one succeeds.
    waited_for_first: Option<()>,
    last_failure: Option<String>,
}

/// Runs until the cluster is closed, or until the topology turns out not to be readable (not
/// Aurora, no permission, no function: the targets then dial their endpoints until a reload).
/// Waits for a login first: the target's forced user, else `topology_user`, else the first
/// client's.
pub(super) async fn run(cluster: Arc<Cluster>) {
    let mut login = cluster.login();
    let login = tokio::select! {
        l = login.wait_for(Option::is_some) => match l {
            Ok(l) => l.clone().unwrap_or_else(|| unreachable!("waited for Some")),
            Err(_) => return,
        },
        () = cluster.stop.cancelled() => return,
    };
    Monitor {
        cluster,
        login,
        endpoints: HashMap::new(),
        waited_for_first: None,
        last_failure: None,
    }
    .run()
    .await;
}

impl Monitor {
    async fn run(mut self) {
        let mut conn: Option<Conn> = None;
        loop {
            if self.cluster.is_fallback() {
                return;
            }
            let stop = self.cluster.stop.clone();
            let current = conn.take();
            let step = async {
                match current {
                    Some(c) => self.watch(c).await,
                    None => self.find().await,
                }
            };
            tokio::select! {
                next = step => conn = next,
                () = stop.cancelled() => return,
            }
        }
    }

    /// Waits on the writer's connection for the refresh, a wake-up or its loss, then reads.
    async fn watch(&mut self, mut c: Conn) -> Option<Conn> {
        let lost = tokio::select! {
            () = tokio::time::sleep(self.cluster.settings.refresh) => false,
            () = self.cluster.wake.notified() => false,
            n = c.stream.read_buf(&mut c.buf) => !matches!(n, Ok(n) if n > 0),
        };
        if lost {
            tracing::info!(cluster = %self.cluster.name, instance = %c.instance, "topology connection lost; looking for the writer");
            self.cluster.trouble_seen();
            self.cluster.searching(false);
            return None;
        }
        let reading = tokio::time::timeout(PROBE_TIMEOUT, read(&mut c.stream, &mut c.buf)).await;
        match reading {
            Ok(Ok(r)) if !r.in_recovery && r.instance.as_str() == &*c.instance => {
                self.publish(&r);
                Some(c)
            }
            Ok(Ok(r)) => {
                tracing::info!(cluster = %self.cluster.name, instance = %r.instance, "the writer is in recovery now; looking for the new one");
                self.cluster.trouble_seen();
                self.cluster.searching(false);
                None
            }
            Ok(Err(e)) => {
                tracing::info!(cluster = %self.cluster.name, error = %e, "topology read failed; looking for the writer");
                self.cluster.trouble_seen();
                self.cluster.searching(false);
                None
            }
            Err(_) => {
                self.cluster.trouble_seen();
                self.cluster.searching(false);
                None
            }
        }
    }

    /// Looks for the writer once; on failure waits (100 ms while following, 1 s before the
    /// first reading).
    async fn find(&mut self) -> Option<Conn> {
        match self.search().await {
            Search::Found(found) => {
                let (c, r) = *found;
                if self.waited_for_first.take().is_some() {
                    tracing::info!(cluster = %self.cluster.name, "Aurora topology read; following the writer");
                }
                self.publish(&r);
                Some(c)
            }
            Search::Unavailable(why) => {
                tracing::warn!(
                    cluster = %self.cluster.name,
                    reason = %why,
                    "cannot read the Aurora topology; dialling the endpoint by DNS (as topology = off)"
                );
                self.cluster.fall_back();
                None
            }
            Search::NoWriter { reached } if self.cluster.view().is_some() => {
                self.cluster.searching(!reached);
                tokio::time::sleep(FAST_POLL).await;
                None
            }
            Search::NoWriter { .. } => {
                if self.waited_for_first.replace(()).is_none() {
                    tracing::warn!(
                        cluster = %self.cluster.name,
                        reason = %self.last_failure.as_deref().unwrap_or("no instance answered"),
                        "cannot read the Aurora topology yet; dialling the endpoint by DNS meanwhile"
                    );
                }
                tokio::time::sleep(FIRST_READ_RETRY).await;
                None
            }
        }
    }

    /// Tries the instances it knows, the last writer first, then the cluster endpoint; an
    /// instance in recovery tells of the others.
    async fn search(&mut self) -> Search {
        let mut queue: VecDeque<Arc<Endpoint>> = VecDeque::new();
        if let Some(view) = self.cluster.view() {
            let mut nodes: Vec<&Node> = view.nodes.iter().collect();
            nodes.sort_by_key(|n| !n.claims_writer);
            queue.extend(nodes.into_iter().map(|n| n.endpoint.clone()));
        }
        queue.push_back(self.cluster.context.endpoint.clone());
        let mut tried = HashSet::new();
        let mut reached = false;
        let mut unavailable = None;
        while let Some(endpoint) = queue.pop_front() {
            if !tried.insert(endpoint.host.clone()) {
                continue;
            }
            match self.probe(&endpoint).await {
                Ok((c, r)) if !r.in_recovery => return Search::Found(Box::new((c, r))),
                Ok((_, r)) => {
                    reached = true;
                    for row in &r.rows {
                        queue.push_back(self.endpoint(&row.id));
                    }
                }
                Err(ReadError::Unavailable(why)) => {
                    reached = true;
                    unavailable = Some(why);
                }
                Err(e) => {
                    tracing::debug!(cluster = %self.cluster.name, host = %endpoint.host, error = %e, "topology probe failed");
                    self.last_failure = Some(e.to_string());
                }
            }
        }
        match unavailable {
            Some(why) if self.cluster.view().is_none() => Search::Unavailable(why),
            _ => Search::NoWriter { reached },
        }
    }

    /// One IAM connection to `endpoint` and one reading on it.
    async fn probe(&self, endpoint: &Arc<Endpoint>) -> Result<(Conn, Reading), ReadError> {
        let context = &self.cluster.context;
        let startup = StartupMessage::new(
            ProtocolVersion::V3_0,
            vec![
                ("user".into(), self.login.user.clone()),
                ("database".into(), self.login.database.clone()),
                ("application_name".into(), APPLICATION_NAME.into()),
            ],
        );
        let limit = context.connect_timeout.min(PROBE_TIMEOUT);
        let deadline = Instant::now() + limit;
        let probe = async {
            let session =
                connect_with_retry(context, endpoint, &startup, &self.login.user, deadline)
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
        tokio::time::timeout_at(deadline, probe)
            .await
            .unwrap_or(Err(ReadError::Malformed(
                "no answer within the probe timeout",
            )))
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
        self.cluster.publish(View {
            nodes,
            writer: Some(writer),
        });
    }
}
