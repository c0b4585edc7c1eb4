//! A throwaway PostgreSQL cluster: initdb in a temp dir, postmaster on a free loopback port,
//! run as an unprivileged user when we are root (PostgreSQL refuses root), removed on drop.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

mod host;
use host::run_as_user;
pub use host::{find_bin_dir, free_port};

/// Bootstrap superuser; reachable only over the unix socket (`trust`).
pub const SUPERUSER: &str = "postgres";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(10);

/// What to put in the new cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// Full pg_hba.conf; empty keeps initdb's (trust for everything local).
    pub hba: String,
    /// `ssl = on` with this certificate when set.
    pub server_cert: Option<crate::tls::ServerCert>,
    /// Extra postgresql.conf settings, e.g. `("max_connections", "300")`.
    pub settings: Vec<(String, String)>,
}

pub struct PgCluster {
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
    postmaster: Option<Child>,
    root: TempDir,
}

impl PgCluster {
    /// initdb, configure, start; returns once the server accepts connections.
    pub async fn create(config: ClusterConfig) -> Result<Self> {
        let cluster = Self::empty()?;
        cluster.initdb(&config).await?;
        cluster.start_on_a_free_port().await
    }

    /// A cluster whose data directory is a base backup of `primary`, streaming from it (a hot
    /// standby), configured with `config` and started.
    pub async fn create_standby(primary: &PgCluster, config: ClusterConfig) -> Result<Self> {
        let cluster = Self::empty()?;
        cluster.base_backup(primary).await?;
        cluster.configure(&config)?;
        cluster.start_on_a_free_port().await
    }

    /// A stopped cluster starts over as a hot standby of `primary` (a fresh base backup
    /// configured with `config`), on its old port: Aurora's old writer rebooted as a reader.
    pub async fn rejoin_as_standby(
        &mut self,
        primary: &PgCluster,
        config: &ClusterConfig,
    ) -> Result<()> {
        self.stop().await?;
        std::fs::remove_dir_all(self.data_dir()).context("removing the old data directory")?;
        self.base_backup(primary).await?;
        self.configure(config)?;
        self.start().await
    }

    async fn base_backup(&self, primary: &PgCluster) -> Result<()> {
        let mut backup = self.command("pg_basebackup");
        backup
            .arg("-D")
            .arg(self.data_dir())
            .arg("-h")
            .arg(primary.socket_dir())
            .args(["-p", &primary.port.to_string(), "-U", SUPERUSER])
            .args(["-R", "-X", "stream", "--no-sync", "-c", "fast"]);
        run(backup).await.context("pg_basebackup")
    }

    fn empty() -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_user()?;
        // As root, the unprivileged server user must be able to reach the dir: use /tmp.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let root = tempfile::Builder::new()
            .prefix("standin-pg-")
            .tempdir_in(parent)?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid))?;
        }
        Ok(PgCluster {
            bin_dir,
            run_as,
            port: 0,
            postmaster: None,
            root,
        })
    }

    async fn start_on_a_free_port(mut self) -> Result<Self> {
        // Another process may grab the free port before the postmaster binds it: retry.
        for attempt in 1..=3 {
            self.port = free_port()?;
            match self.start().await {
                Ok(()) => return Ok(self),
                Err(e) if attempt < 3 && format!("{e:#}").contains("could not bind") => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn initdb(&self, config: &ClusterConfig) -> Result<()> {
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"]);
        run(initdb).await.context("initdb")?;

        self.configure(config)
    }

    /// Appends the stand-in's settings to postgresql.conf and writes pg_hba.conf and the TLS
    /// files (a standby's copies from its base backup are replaced).
    pub(crate) fn configure(&self, config: &ClusterConfig) -> Result<()> {
        let mut conf = format!(
            "\n# rds-iam-tests stand-in\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\npassword_encryption = 'scram-sha-256'\n\
             shared_buffers = '32MB'\n",
            self.socket_dir().display()
        );
        if let Some(cert) = &config.server_cert {
            self.write_server_cert(cert)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for (key, value) in &config.settings {
            conf.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))?;
        std::io::Write::write_all(&mut file, conf.as_bytes())?;
        if !config.hba.is_empty() {
            self.write_data_file("pg_hba.conf", &config.hba)?;
        }
        Ok(())
    }

    /// Starts the postmaster (if stopped) and waits for its "ready" status in postmaster.pid.
    pub async fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning postgres")?;
        let pid = child.id().to_string();
        self.postmaster = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.postmaster.as_mut().and_then(|c| c.try_wait().ok()?) {
                self.postmaster = None;
                bail!("postgres exited ({status}):\n{}", self.log_tail(20));
            }
            let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid"));
            if let Ok(pid_file) = pid_file {
                let lines: Vec<&str> = pid_file.lines().collect();
                if lines.len() >= 8 && lines[0] == pid && lines[7].trim() == "ready" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres not ready in {READY_TIMEOUT:?}:\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fast shutdown (open sessions are terminated), waiting until the postmaster has exited.
    pub async fn stop(&mut self) -> Result<()> {
        self.stop_in("fast").await
    }

    /// Immediate shutdown, as a crash: no checkpoint, clients cut without a goodbye.
    pub async fn crash(&mut self) -> Result<()> {
        self.stop_in("immediate").await
    }

    async fn stop_in(&mut self, mode: &str) -> Result<()> {
        let Some(mut child) = self.postmaster.take() else {
            return Ok(());
        };
        // If pg_ctl fails the postmaster is probably gone already; the wait below tells.
        let _ = run(self.pg_ctl_stop(mode)).await;
        let deadline = Instant::now() + READY_TIMEOUT;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("postgres did not stop in {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Immediate shutdown without an async runtime (used by Drop).
    pub fn stop_blocking(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        let stopped = self
            .pg_ctl_stop("immediate")
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Stops and starts again on the same port; open connections are cut.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.start().await
    }

    /// Ends recovery: a standby becomes a primary (`pg_ctl promote`, waiting until it is).
    pub async fn promote(&self) -> Result<()> {
        let mut promote = self.command("pg_ctl");
        promote
            .arg("promote")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-w");
        run(promote).await.context("pg_ctl promote")
    }

    /// Streams from `primary` from now on (a standby re-pointed after a failover; the new
    /// timeline is followed, `recovery_target_timeline` being `latest`).
    pub async fn follow(&self, primary: &PgCluster) -> Result<()> {
        let conninfo = format!(
            "host={} port={} user={SUPERUSER}",
            primary.socket_dir().display(),
            primary.port
        );
        let client = self.superuser_client().await?;
        // Two statements: ALTER SYSTEM may not run in the implicit transaction of a batch.
        client
            .batch_execute(&format!(
                "ALTER SYSTEM SET primary_conninfo = '{}'",
                conninfo.replace('\'', "''")
            ))
            .await
            .context("re-pointing the standby")?;
        client.batch_execute("SELECT pg_reload_conf()").await?;
        Ok(())
    }

    /// Re-reads pg_hba.conf, postgresql.conf and the TLS files.
    pub async fn reload(&self) -> Result<()> {
        let mut reload = self.command("pg_ctl");
        reload.arg("reload").arg("-D").arg(self.data_dir());
        run(reload).await.context("pg_ctl reload")
    }

    /// Replaces server.crt/server.key; call [`reload`](Self::reload) to apply.
    pub fn write_server_cert(&self, cert: &crate::tls::ServerCert) -> Result<()> {
        self.write_data_file("server.crt", &cert.cert_pem)?;
        self.write_data_file("server.key", &cert.key_pem)?;
        Ok(())
    }

    /// Writes a file into the data dir, mode 0600, owned by the server user.
    pub fn write_data_file(&self, name: &str, contents: &str) -> Result<()> {
        let path = self.data_dir().join(name);
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.postmaster {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Directory holding `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    /// Last `lines` lines of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Superuser over the unix socket (no TLS, no password).
    pub fn superuser_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .port(self.port)
            .user(SUPERUSER)
            .dbname(dbname);
        config
    }

    /// Connects as superuser; the connection task runs on the caller's runtime.
    pub async fn superuser_client(&self) -> Result<tokio_postgres::Client> {
        self.superuser_client_to("postgres").await
    }

    /// [`superuser_client`](Self::superuser_client) to database `dbname`.
    pub async fn superuser_client_to(&self, dbname: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) = self
            .superuser_config(dbname)
            .connect(tokio_postgres::NoTls)
            .await
            .context("superuser connection over the unix socket")?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A command for one of the server binaries, run as the server user.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(self.root.path())
            .env("LC_ALL", "C")
            // libldap must not read ~/.ldaprc or /etc/ldap/ldap.conf.
            .env("LDAPNOINIT", "1");
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn pg_ctl_stop(&self, mode: &str) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

async fn run(cmd: Command) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = tokio::process::Command::from(cmd).output().await?;
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
