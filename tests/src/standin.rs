//! Everything together: a PostgreSQL that authenticates like Aurora with IAM auth on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::aws_env;
pub use crate::aws_env::AWS_ENV_TO_REMOVE;
use crate::checker::{sign_for_test, CheckRecord, TokenChecker, TokenStats};
use crate::cluster::{ClusterConfig, PgCluster, SUPERUSER};
use crate::fake_aws::{ContainerEndpoint, FakeAws};
use crate::ldap::LdapServer;
use crate::tls::{TestCa, DEFAULT_HOST};

#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// The endpoint: the token's host and the certificate's SAN.
    pub host: String,
    /// Port tokens are signed for; the real server listens elsewhere.
    pub advertised_port: u16,
    pub region: String,
    /// Lifetime of credentials from the container endpoint.
    pub session_lifetime: Duration,
    /// `Authorization` header the container endpoint requires, if any.
    pub container_authorization: Option<String>,
    pub max_connections: u32,
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST.to_owned(),
            advertised_port: 5432,
            region: "us-east-1".to_owned(),
            session_lifetime: Duration::from_secs(3600),
            container_authorization: None,
            max_connections: 300,
        }
    }
}

pub struct StandIn {
    host: String,
    advertised_port: u16,
    region: String,
    addr: SocketAddr,
    ca_file: PathBuf,
    ca: TestCa,
    aws: FakeAws,
    checker: Arc<TokenChecker>,
    // Field order is drop order: the database goes before the LDAP server it calls.
    cluster: tokio::sync::Mutex<PgCluster>,
    _ldap: LdapServer,
    container: ContainerEndpoint,
    files: TempDir,
}

impl StandIn {
    /// Starts PostgreSQL (TLS, IAM via LDAP, SCRAM otherwise), the LDAP server and the
    /// container credential endpoint, and creates the `rds_iam` role.
    pub async fn start(opts: StandInOptions) -> Result<StandIn> {
        let files = tempfile::Builder::new().prefix("standin-").tempdir()?;
        let ca = TestCa::new("rds-iam-standin CA")?;
        let ca_file = files.path().join("ca.pem");
        ca.write_pem(&ca_file)?;
        // Empty AWS config files keep a developer's ~/.aws out of the proxy's credential chain.
        std::fs::write(files.path().join("aws-config"), "")?;
        std::fs::write(files.path().join("aws-credentials"), "")?;

        let aws = FakeAws::new();
        aws.set_session_lifetime(opts.session_lifetime);
        aws.set_container_authorization(opts.container_authorization.clone());
        let container = aws.start_container_endpoint()?;
        let checker = Arc::new(TokenChecker::new(
            &opts.host,
            opts.advertised_port,
            &opts.region,
            aws.clone(),
        ));
        let ldap = LdapServer::start(checker.clone())?;

        let config = ClusterConfig {
            hba: hba_conf(&ldap.hba_options()),
            server_cert: Some(ca.issue_server_cert(&[&opts.host])?),
            settings: vec![("max_connections".into(), opts.max_connections.to_string())],
        };
        let cluster = PgCluster::create(config).await?;
        let client = cluster.superuser_client().await?;
        client
            .batch_execute("CREATE ROLE rds_iam NOLOGIN")
            .await
            .context("creating rds_iam")?;

        Ok(StandIn {
            host: opts.host,
            advertised_port: opts.advertised_port,
            region: opts.region,
            addr: cluster.addr(),
            ca_file,
            ca,
            aws,
            checker,
            cluster: tokio::sync::Mutex::new(cluster),
            _ldap: ldap,
            container,
            files,
        })
    }

    /// Cluster endpoint hostname (what tokens are signed for and TLS verifies).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port tokens are signed for (5432 by default).
    pub fn advertised_port(&self) -> u16 {
        self.advertised_port
    }

    /// `host:advertised_port`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.advertised_port)
    }

    /// Where PostgreSQL really listens (127.0.0.1:random); the proxy's `--connect-to`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate; the proxy's `--ca-file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn aws(&self) -> &FakeAws {
        &self.aws
    }

    pub fn checker(&self) -> &TokenChecker {
        &self.checker
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` value.
    pub fn container_url(&self) -> String {
        self.container.url()
    }

    /// Env for a proxy process to take credentials from the stand-in. Also remove
    /// [`AWS_ENV_TO_REMOVE`] from its environment.
    pub fn credentials_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
                self.container_url(),
            ),
            ("AWS_REGION".to_owned(), self.region.clone()),
        ];
        env.extend(aws_env::isolated(
            &self.file("aws-config"),
            &self.file("aws-credentials"),
        ));
        if let Some(token) = self.aws.container_authorization() {
            env.push(("AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(), token));
        }
        env
    }

    /// Arguments for `rds-iam-proxy`: target, `--connect-to`, `--ca-file`.
    pub fn proxy_args(&self, user: &str, database: &str) -> Vec<String> {
        vec![
            format!("postgres://{user}@{}/{database}", self.endpoint()),
            "--connect-to".into(),
            self.addr.to_string(),
            "--ca-file".into(),
            self.ca_file.display().to_string(),
        ]
    }

    pub fn token_stats(&self) -> TokenStats {
        self.checker.stats()
    }

    pub fn token_checks(&self) -> Vec<CheckRecord> {
        self.checker.records()
    }

    pub fn reset_token_stats(&self) {
        self.checker.reset_records();
    }

    /// Superuser client over the unix socket; its connection task runs on the caller's runtime.
    pub async fn superuser_client(&self) -> Result<tokio_postgres::Client> {
        self.cluster.lock().await.superuser_client().await
    }

    /// `CREATE USER name LOGIN; GRANT rds_iam TO name`.
    pub async fn create_iam_user(&self, name: &str) -> Result<()> {
        let name = quote_ident(name);
        let sql = format!("CREATE USER {name} LOGIN; GRANT rds_iam TO {name}");
        self.superuser_client().await?.batch_execute(&sql).await?;
        Ok(())
    }

    /// A user that logs in with SCRAM-SHA-256.
    pub async fn create_password_user(&self, name: &str, password: &str) -> Result<()> {
        let sql = format!(
            "CREATE USER {} LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        );
        self.superuser_client().await?.batch_execute(&sql).await?;
        Ok(())
    }

    pub async fn create_database(&self, name: &str, owner: &str) -> Result<()> {
        let sql = format!(
            "CREATE DATABASE {} OWNER {}",
            quote_ident(name),
            quote_ident(owner)
        );
        self.superuser_client().await?.batch_execute(&sql).await?;
        Ok(())
    }

    /// A token for `user` signed now with a fresh long-term key of the fake account.
    pub fn sign_token(&self, user: &str) -> String {
        let creds = self.aws.create_access_key();
        sign_for_test(
            &self.host,
            self.advertised_port,
            &self.region,
            user,
            &creds,
            SystemTime::now(),
        )
    }

    /// Direct client config: TLS required, verified against `host()`, dialled at `addr()`.
    pub fn client_config(&self, user: &str, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .hostaddr(self.addr.ip())
            .port(self.addr.port())
            .user(user)
            .dbname(database)
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A session straight to the database (TLS, verified) as `user` with `password`: a token
    /// for an IAM user. Its connection task runs on the caller's runtime.
    pub async fn connect_direct(
        &self,
        user: &str,
        database: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self
            .client_config(user, database)
            .password(password)
            .connect(self.tls())
            .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// tokio-postgres TLS that trusts only the stand-in's CA.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.ca.postgres_tls()
    }

    /// A CA file that did not sign the server certificate (for wrong-CA tests).
    pub fn write_wrong_ca_file(&self) -> Result<PathBuf> {
        let path = self
            .files
            .path()
            .join(format!("wrong-ca-{}.pem", fastrand::u32(..)));
        TestCa::new("some other CA")?.write_pem(&path)?;
        Ok(path)
    }

    /// Serves a certificate (same CA) for these names instead, e.g. another host (mismatch tests).
    pub async fn use_server_cert_for(&self, hostnames: &[&str]) -> Result<()> {
        let cert = self.ca.issue_server_cert(hostnames)?;
        let cluster = self.cluster.lock().await;
        cluster.write_server_cert(&cert)?;
        cluster.reload().await
    }

    /// Restarts PostgreSQL on the same port; open sessions are cut.
    pub async fn restart(&self) -> Result<()> {
        self.cluster.lock().await.restart().await
    }

    pub async fn stop_database(&self) -> Result<()> {
        self.cluster.lock().await.stop().await
    }

    pub async fn start_database(&self) -> Result<()> {
        self.cluster.lock().await.start().await
    }

    /// Server log, for diagnosing a failed test.
    pub async fn server_log_tail(&self, lines: usize) -> String {
        self.cluster.lock().await.log_tail(lines)
    }

    /// Orderly shutdown; dropping does the same (faster, immediate mode).
    pub async fn stop(self) -> Result<()> {
        self.cluster.lock().await.stop().await
    }

    /// First message the server sends after a TLS StartupMessage for `user`: the
    /// authentication request code (3 = cleartext password, 10 = SASL).
    pub async fn auth_request_code(&self, user: &str) -> Result<u32> {
        let mut tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?; // SSLRequest
        if tcp.read_u8().await? != b'S' {
            bail!("server refused TLS");
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.ca.client_config()));
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
        let mut tls = connector.connect(name, tcp).await?;
        let mut body = vec![0, 3, 0, 0];
        for (k, v) in [("user", user), ("database", "postgres")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        tls.write_all(&(body.len() as u32 + 4).to_be_bytes())
            .await?;
        tls.write_all(&body).await?;
        let tag = tls.read_u8().await?;
        let _len = tls.read_u32().await?;
        if tag != b'R' {
            bail!(
                "expected an authentication request, got message {:?}",
                tag as char
            );
        }
        Ok(tls.read_u32().await?)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }
}

/// Aurora-like: TLS only; `rds_iam` members by token (LDAP bind), everyone else SCRAM. The
/// superuser may stream WAL over the unix socket (standbys of an [`crate::aurora::Aurora`]).
pub(crate) fn hba_conf(ldap_options: &str) -> String {
    format!(
        "# TYPE    DATABASE USER      ADDRESS METHOD\n\
         local     all      {SUPERUSER} trust\n\
         local     replication {SUPERUSER} trust\n\
         local     all      all       reject\n\
         hostnossl all      all       all     reject\n\
         hostssl   all      +rds_iam  all     ldap {ldap_options}\n\
         hostssl   all      all       all     scram-sha-256\n"
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
