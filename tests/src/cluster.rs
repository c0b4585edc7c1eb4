//! A throwaway PostgreSQL cluster: initdb in a temp dir, postmaster on a free loopback port,
//! run as an unprivileged user when we are root (PostgreSQL refuses root), removed on drop.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

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
        let mut cluster = PgCluster {
            bin_dir,
            run_as,
            port: 0,
            postmaster: None,
            root,
        };
        cluster.initdb(&config).await?;
        // Another process may grab the free port before the postmaster binds it: retry.
        for attempt in 1..=3 {
            cluster.port = free_port()?;
            match cluster.start().await {
                Ok(()) => return Ok(cluster),
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
        let Some(mut child) = self.postmaster.take() else {
            return Ok(());
        };
        // If pg_ctl fails the postmaster is probably gone already; the wait below tells.
        let _ = run(self.pg_ctl_stop("fast")).await;
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
        let (client, connection) = self
            .superuser_config("postgres")
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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `$STANDIN_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
pub fn find_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STANDIN_PG_BIN") {
        return Ok(dir.into());
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    if let Some(output) = output.ok().filter(|o| o.status.success()) {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries found (install the `postgresql` package or set STANDIN_PG_BIN)")
}

/// `None` when not root; else the uid/gid of `postgres`, or `nobody` if there is no such user.
fn run_as_user() -> Result<Option<(u32, u32)>> {
    // Owner of /proc/self is our effective uid; avoids libc and unsafe.
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    match lookup("postgres").or_else(|| lookup("nobody")) {
        Some(ids) => Ok(Some(ids)),
        None => bail!("running as root and neither `postgres` nor `nobody` exists"),
    }
}
