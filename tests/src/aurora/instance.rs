//! One instance of the stand-in Aurora cluster: a real PostgreSQL (the writer, or a hot
//! standby streaming from it) that requires TLS with a certificate naming its own instance
//! endpoint and the cluster's two endpoints, and checks IAM tokens signed for any of them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::checker::TokenChecker;
use crate::cluster::{ClusterConfig, PgCluster};
use crate::fake_aws::FakeAws;
use crate::ldap::LdapServer;
use crate::standin::hba_conf;
use crate::tls::TestCa;

/// The names an instance answers to.
#[derive(Debug, Clone)]
pub struct Names {
    /// `instance-1`: `aurora_replica_status().server_id`.
    pub id: String,
    /// `instance-1.DNSID.REGION.rds.amazonaws.com`.
    pub host: String,
    pub cluster_host: String,
    pub reader_host: String,
    pub region: String,
}

/// Prefix for SQL whose commit must be flushed before [`Instance::wal_position`] is read.
pub(super) const SYNC: &str = "SET synchronous_commit = on; ";

pub struct Instance {
    pub names: Names,
    pg: tokio::sync::Mutex<PgCluster>,
    config: ClusterConfig,
    addr: SocketAddr,
    checker: Arc<TokenChecker>,
    _ldap: LdapServer,
}

impl Instance {
    /// The writer, from initdb; or, with `primary`, a hot standby of it.
    pub async fn start(
        names: Names,
        ca: &TestCa,
        aws: &FakeAws,
        primary: Option<&Instance>,
    ) -> Result<Instance> {
        let checker = Arc::new(TokenChecker::for_hosts(
            &[&names.host, &names.cluster_host, &names.reader_host],
            5432,
            &names.region,
            aws.clone(),
        ));
        let ldap = LdapServer::start(checker.clone())?;
        let config = ClusterConfig {
            hba: hba_conf(&ldap.hba_options()),
            server_cert: Some(ca.issue_server_cert(&[
                &names.host,
                &names.cluster_host,
                &names.reader_host,
            ])?),
            settings: vec![
                ("max_connections".into(), "100".into()),
                ("aurora_standin.instance_id".into(), names.id.clone()),
                // A standby re-pointed after a failover must still find the WAL it needs.
                ("wal_keep_size".into(), "128MB".into()),
                // A re-pointed standby retries its new primary soon, not after 5 s.
                ("wal_retrieve_retry_interval".into(), "100ms".into()),
            ],
        };
        let pg = match primary {
            None => PgCluster::create(config.clone()).await,
            Some(p) => PgCluster::create_standby(&*p.pg.lock().await, config.clone()).await,
        }
        .with_context(|| format!("starting {}", names.id))?;
        Ok(Instance {
            addr: pg.addr(),
            names,
            pg: tokio::sync::Mutex::new(pg),
            config,
            checker,
            _ldap: ldap,
        })
    }

    /// Where it listens (127.0.0.1:random): what `--resolve HOST:5432=ADDR` points at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every token check this instance made.
    pub fn checker(&self) -> &TokenChecker {
        &self.checker
    }

    /// A superuser session; its connection task runs on the caller's runtime.
    pub async fn superuser_client(&self) -> Result<tokio_postgres::Client> {
        self.pg.lock().await.superuser_client().await
    }

    /// Superuser sessions to every database that takes connections (`template1` included, so
    /// databases created later start with what it holds), each with `SYNC` applied.
    pub(super) async fn every_database(&self) -> Result<Vec<tokio_postgres::Client>> {
        let pg = self.pg.lock().await;
        let names: Vec<String> = pg
            .superuser_client()
            .await?
            .query(
                "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut clients = Vec::new();
        for name in names {
            let client = pg.superuser_client_to(&name).await?;
            client.batch_execute(SYNC).await?;
            clients.push(client);
        }
        Ok(clients)
    }

    pub async fn is_running(&self) -> bool {
        self.pg.lock().await.is_running()
    }

    pub(super) async fn crash(&self) -> Result<()> {
        self.pg.lock().await.crash().await
    }

    pub(super) async fn start_again(&self) -> Result<()> {
        self.pg.lock().await.start().await
    }

    pub(super) async fn promote(&self) -> Result<()> {
        self.pg.lock().await.promote().await
    }

    /// Back as a hot standby of `primary`, at the same address (see
    /// [`PgCluster::rejoin_as_standby`]).
    pub(super) async fn rejoin(&self, primary: &Instance) -> Result<()> {
        let primary = primary.pg.lock().await;
        self.pg
            .lock()
            .await
            .rejoin_as_standby(&primary, &self.config)
            .await
    }

    pub(super) async fn follow(&self, primary: &Instance) -> Result<()> {
        let primary = primary.pg.lock().await;
        self.pg.lock().await.follow(&primary).await
    }

    /// WAL replayed (a standby) or flushed (the writer), in bytes from 0/0. The stand-in
    /// commits asynchronously: what must be on the standbys is committed with
    /// `synchronous_commit = on` ([`SYNC`]) so that it is flushed.
    pub(super) async fn wal_position(&self) -> Result<i64> {
        let client = self.superuser_client().await?;
        let row = client
            .query_one(
                "SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() \
                 THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END, '0/0')::bigint",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn log_tail(&self, lines: usize) -> String {
        self.pg.lock().await.log_tail(lines)
    }
}
