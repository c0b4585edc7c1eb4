//! An Aurora-like cluster on this machine, for topology tests: a writer and hot standbys by
//! streaming replication (each its own PostgreSQL, its own instance endpoint in its
//! certificate, its own IAM token checker), `aurora_replica_status()` and
//! `aurora_db_instance_identifier()` as Aurora serves them, a failover helper (crash the
//! writer, promote the standby furthest ahead, re-point the others, update the topology) and
//! stale DNS for the cluster and reader endpoints.

mod dns;
mod instance;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::aws_env;
use crate::fake_aws::{ContainerEndpoint, FakeAws};
use crate::tls::TestCa;
pub use dns::StaleDns;
pub use instance::{Instance, Names};

/// The topology functions and their table, created on the writer.
const TOPOLOGY_SQL: &str = include_str!("topology.sql");
/// How long [`Aurora::wait_replicated`] waits for the standbys.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct AuroraOptions {
    /// `NAME` in `NAME.cluster-DNSID.REGION.rds.amazonaws.com`.
    pub name: String,
    pub dns_id: String,
    pub region: String,
    /// Hot standbys besides the writer.
    pub readers: usize,
    /// How long the cluster endpoint keeps naming the old writer after a failover.
    pub stale_dns: Duration,
    /// After a failover the old writer comes back as a reader (at its old address, so a
    /// stale cluster endpoint reaches a read-only instance), as Aurora reboots it.
    pub rejoin_old_writer: bool,
}

impl Default for AuroraOptions {
    fn default() -> Self {
        AuroraOptions {
            name: "orders".into(),
            dns_id: "cabc123xyz".into(),
            region: "us-east-1".into(),
            readers: 2,
            stale_dns: Duration::from_secs(20),
            rejoin_old_writer: false,
        }
    }
}

/// What [`Aurora::failover`] did.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    pub old_writer: usize,
    pub new_writer: usize,
    /// From the crash to the new writer accepting writes.
    pub promoted_after: Duration,
}

pub struct Aurora {
    opts: AuroraOptions,
    /// Index into `instances` of the writer.
    writer: AtomicUsize,
    instances: Vec<Instance>,
    cluster_dns: StaleDns,
    reader_dns: StaleDns,
    ca: TestCa,
    aws: FakeAws,
    container: ContainerEndpoint,
    files: TempDir,
}

impl Aurora {
    pub async fn start(opts: AuroraOptions) -> Result<Aurora> {
        let files = tempfile::Builder::new().prefix("aurora-").tempdir()?;
        let ca = TestCa::new("rds-iam-standin Aurora CA")?;
        ca.write_pem(&files.path().join("ca.pem"))?;
        std::fs::write(files.path().join("aws-config"), "")?;
        std::fs::write(files.path().join("aws-credentials"), "")?;
        let aws = FakeAws::new();
        let container = aws.start_container_endpoint()?;

        let names = |i: usize| Names {
            id: format!("{}-instance-{}", opts.name, i + 1),
            host: format!(
                "{}-instance-{}.{}.{}.rds.amazonaws.com",
                opts.name,
                i + 1,
                opts.dns_id,
                opts.region
            ),
            cluster_host: cluster_host(&opts, ""),
            reader_host: cluster_host(&opts, "-ro"),
            region: opts.region.clone(),
        };
        let writer = Instance::start(names(0), &ca, &aws, None).await?;
        let client = writer.superuser_client().await?;
        client.batch_execute(instance::SYNC).await?;
        client
            .batch_execute("CREATE ROLE rds_iam NOLOGIN")
            .await
            .context("creating rds_iam")?;
        // Aurora serves the functions in every database: here each database has them and a
        // copy of the topology table, which every change updates (template1 gives them to
        // databases created later).
        let sessions: Vec<String> = (0..=opts.readers)
            .map(|i| {
                if i == 0 {
                    "MASTER_SESSION_ID".to_owned()
                } else {
                    format!("{:08x}-reader", fastrand::u32(..))
                }
            })
            .collect();
        for db in writer.every_database().await? {
            db.batch_execute(TOPOLOGY_SQL)
                .await
                .context("creating the topology functions")?;
            for (i, session) in sessions.iter().enumerate() {
                db.execute(
                    "INSERT INTO aurora_standin.replicas (server_id, session_id, replica_lag_in_msec) \
                     VALUES ($1, $2, 0)",
                    &[&names(i).id, session],
                )
                .await?;
            }
        }
        let mut instances = vec![writer];
        for i in 1..=opts.readers {
            let standby = Instance::start(names(i), &ca, &aws, Some(&instances[0])).await?;
            instances.push(standby);
        }
        let cluster_dns = StaleDns::start("aurora-cluster-dns", instances[0].addr())?;
        let reader_dns = StaleDns::start(
            "aurora-reader-dns",
            instances.get(1).unwrap_or(&instances[0]).addr(),
        )?;
        let aurora = Aurora {
            opts,
            writer: AtomicUsize::new(0),
            instances,
            cluster_dns,
            reader_dns,
            ca,
            aws,
            container,
            files,
        };
        aurora.wait_replicated().await?;
        Ok(aurora)
    }

    /// `NAME.cluster-DNSID.REGION.rds.amazonaws.com`.
    pub fn cluster_host(&self) -> String {
        cluster_host(&self.opts, "")
    }

    /// `NAME.cluster-ro-DNSID.REGION.rds.amazonaws.com`.
    pub fn reader_host(&self) -> String {
        cluster_host(&self.opts, "-ro")
    }

    pub fn region(&self) -> &str {
        &self.opts.region
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    /// Index of the writer now.
    pub fn writer(&self) -> usize {
        self.writer.load(Ordering::SeqCst)
    }

    /// What the cluster endpoint's name resolves to (stale for a while after a failover).
    pub fn cluster_dns(&self) -> &StaleDns {
        &self.cluster_dns
    }

    /// What the reader endpoint's name resolves to (the first reader).
    pub fn reader_dns(&self) -> &StaleDns {
        &self.reader_dns
    }

    /// `--resolve` arguments: every instance endpoint, and the cluster and reader endpoints
    /// at their stale-DNS forwarders.
    pub fn resolve_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut add = |host: &str, addr: SocketAddr| {
            args.push("--resolve".to_owned());
            args.push(format!("{host}:5432={addr}"));
        };
        for i in &self.instances {
            add(&i.names.host, i.addr());
        }
        add(&self.cluster_host(), self.cluster_dns.addr());
        add(&self.reader_host(), self.reader_dns.addr());
        args
    }

    /// PEM of the CA that signed every instance's certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.files.path().join("ca.pem")
    }

    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn aws(&self) -> &FakeAws {
        &self.aws
    }

    /// Env for a proxy process to take credentials from the cluster's fake account.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
                self.container.url(),
            ),
            ("AWS_REGION".to_owned(), self.opts.region.clone()),
        ];
        env.extend(aws_env::isolated(
            &self.files.path().join("aws-config"),
            &self.files.path().join("aws-credentials"),
        ));
        env
    }

    /// Runs `sql` as superuser on the writer, then waits until every standby has it.
    pub async fn on_writer(&self, sql: &str) -> Result<()> {
        let client = self.instances[self.writer()].superuser_client().await?;
        client.batch_execute(instance::SYNC).await?;
        client.batch_execute(sql).await?;
        self.wait_replicated().await
    }

    /// `CREATE USER name LOGIN; GRANT rds_iam TO name`, on the writer, replicated.
    pub async fn create_iam_user(&self, name: &str) -> Result<()> {
        self.on_writer(&format!(
            "CREATE USER \"{name}\" LOGIN; GRANT rds_iam TO \"{name}\""
        ))
        .await
    }

    /// Sets what `aurora_replica_status()` says of instance `i`'s lag.
    pub async fn set_replica_lag(&self, i: usize, lag: Duration) -> Result<()> {
        let ms = lag.as_millis() as f32;
        for db in self.instances[self.writer()].every_database().await? {
            db.execute(
                "UPDATE aurora_standin.replicas SET replica_lag_in_msec = $1 WHERE server_id = $2",
                &[&ms, &self.instances[i].names.id],
            )
            .await?;
        }
        self.wait_replicated().await
    }

    /// Waits until every running standby has replayed what the writer has written.
    pub async fn wait_replicated(&self) -> Result<()> {
        let writer = &self.instances[self.writer()];
        let target = writer.wal_position().await?;
        let deadline = Instant::now() + REPLICATION_TIMEOUT;
        for (i, standby) in self.instances.iter().enumerate() {
            if i == self.writer() || !standby.is_running().await {
                continue;
            }
            while standby.wal_position().await? < target {
                if Instant::now() > deadline {
                    bail!(
                        "{} did not catch up in {REPLICATION_TIMEOUT:?}:\n{}",
                        standby.names.id,
                        standby.log_tail(20).await
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    /// Crashes the writer, promotes the running standby furthest ahead, re-points the other
    /// standbys at it and updates the topology; the cluster endpoint's DNS follows only
    /// `stale_dns` after the crash. The old writer stays down, or with `rejoin_old_writer`
    /// comes back as a reader.
    pub async fn failover(&self) -> Result<Failover> {
        let started = Instant::now();
        let old = self.writer();
        self.instances[old].crash().await?;
        let mut best: Option<(usize, i64)> = None;
        for (i, standby) in self.instances.iter().enumerate() {
            if i == old || !standby.is_running().await {
                continue;
            }
            let at = standby.wal_position().await?;
            if best.is_none_or(|(_, b)| at > b) {
                best = Some((i, at));
            }
        }
        let Some((new, _)) = best else {
            bail!("no standby to promote");
        };
        self.instances[new].promote().await?;
        let promoted_after = started.elapsed();
        self.writer.store(new, Ordering::SeqCst);
        let databases = self.instances[new].every_database().await?;
        for db in &databases {
            db.execute(
                "DELETE FROM aurora_standin.replicas WHERE server_id = $1",
                &[&self.instances[old].names.id],
            )
            .await?;
            db.execute(
                "UPDATE aurora_standin.replicas SET session_id = CASE WHEN server_id = $1 \
                 THEN 'MASTER_SESSION_ID' ELSE md5(random()::text) END",
                &[&self.instances[new].names.id],
            )
            .await?;
        }
        for (i, standby) in self.instances.iter().enumerate() {
            if i != old && i != new && standby.is_running().await {
                standby.follow(&self.instances[new]).await?;
            }
        }
        if self.opts.rejoin_old_writer {
            self.instances[old].rejoin(&self.instances[new]).await?;
            for db in &databases {
                db.execute(
                    "INSERT INTO aurora_standin.replicas (server_id, session_id, replica_lag_in_msec) \
                     VALUES ($1, md5(random()::text), 0)",
                    &[&self.instances[old].names.id],
                )
                .await?;
            }
        }
        let new_addr = self.instances[new].addr();
        self.cluster_dns.point_at_after(
            new_addr,
            self.opts.stale_dns.saturating_sub(started.elapsed()),
        );
        if self.reader_dns.target() == new_addr {
            if let Some(reader) = (0..self.instances.len()).find(|&i| i != old && i != new) {
                self.reader_dns
                    .point_at_after(self.instances[reader].addr(), Duration::ZERO);
            }
        }
        Ok(Failover {
            old_writer: old,
            new_writer: new,
            promoted_after,
        })
    }

    /// Crashes every instance (a whole-cluster outage).
    pub async fn crash_all(&self) -> Result<()> {
        for i in &self.instances {
            i.crash().await?;
        }
        Ok(())
    }

    /// Starts every instance that is down, as it was (the writer stays the writer).
    pub async fn start_all(&self) -> Result<()> {
        for i in &self.instances {
            i.start_again().await?;
        }
        Ok(())
    }
}

fn cluster_host(opts: &AuroraOptions, ro: &str) -> String {
    format!(
        "{}.cluster{ro}-{}.{}.rds.amazonaws.com",
        opts.name, opts.dns_id, opts.region
    )
}
