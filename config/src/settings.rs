//! The resolved, typed settings the proxy runs with.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use crate::target::Target;
use crate::topology::TopologySettings;

/// Default values, named once; the field docs below and the `--help` text repeat them.
pub mod defaults {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5432);
    pub const MAX_CONNECT_RATE: u32 = 150;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MIN_SIGTERM_DELAY: Duration = Duration::ZERO;
    pub const MAX_SIGTERM_DELAY: Duration = Duration::from_secs(30);
    pub const LOG_LEVEL: &str = "info";
    pub const POOL_MAX_IDLE: usize = 8;
    pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub const SERVER_LIFETIME: Duration = Duration::from_secs(60 * 60);
    pub const SERVER_RESET_QUERY: &str = "DISCARD ALL";
    pub const UNIX_SOCKET_MODE: u32 = 0o700;
    pub const TOPOLOGY_REFRESH: Duration = Duration::from_secs(30);
    pub const MAX_REPLICA_LAG: Duration = Duration::from_secs(10);
}

/// Everything `run`, `check` and `policy` need, after layering and validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// At least one.
    pub targets: Vec<Target>,
    /// Admin HTTP endpoint. Default off. Loopback unless `allow_remote` (kubelet probes reach
    /// a pod on its pod IP, so a pod that serves probes over HTTP sets both).
    pub admin_listen: Option<SocketAddr>,
    /// Serve `POST /quitquitquit`, to loopback peers only. Default false.
    pub quitquitquit: bool,
    /// `None` = no limit (`0`, the default).
    pub max_connections: Option<NonZeroUsize>,
    /// New upstream connections per second per target. Default 150.
    pub max_connect_rate: u32,
    /// DNS + TCP + TLS + auth to upstream. Default 30s.
    pub connect_timeout: Duration,
    /// Server connection reuse, for targets with `pool_mode = "session"`.
    pub pool: ServerPool,
    /// How Aurora topologies are read (spec §9).
    pub topology: TopologySettings,
    /// Addresses dialled for names (`resolve`), in the order given. Default none.
    pub resolve: Vec<Resolve>,
    /// Time a client has to finish its startup. Default 10s.
    pub startup_timeout: Duration,
    /// Keep accepting this long after SIGTERM. Default 0s.
    pub min_sigterm_delay: Duration,
    /// Then drain for up to this long. Default 30s.
    pub max_sigterm_delay: Duration,
    /// Leave core dumps on (`RLIMIT_CORE` and the dumpable flag untouched). Default false.
    pub allow_core_dumps: bool,
    /// Exit 0 rather than 143 on SIGTERM. Default false.
    pub exit_zero_on_sigterm: bool,
    /// Default text.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter, known to parse as a `tracing_subscriber::EnvFilter`. Default
    /// `info`.
    pub log_level: String,
    /// Non-loopback listen addresses allowed. Default false.
    pub allow_remote: bool,
    /// Mode of unix sockets. Default 0o700.
    pub unix_socket_mode: u32,
    /// Local TLS towards clients. Default off.
    pub client_tls: ClientTls,
    /// Password clients must present. Default none.
    pub client_password: Option<Secret>,
    /// The file the settings were read from, for SIGHUP.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// The target with this name.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// One `resolve` entry: connections to `name` (at `port`, or any port) dial `to` instead;
/// the token and TLS still use `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// Lower case.
    pub name: String,
    pub port: Option<u16>,
    pub to: (String, u16),
}

impl Resolve {
    /// Where `host:port` is dialled according to `table` (an entry with the port first).
    pub fn lookup(table: &[Resolve], host: &str, port: u16) -> Option<(String, u16)> {
        let host = host.to_ascii_lowercase();
        let matching = |p: Option<u16>| {
            table
                .iter()
                .find(|r| r.name == host && r.port == p)
                .map(|r| r.to.clone())
        };
        matching(Some(port)).or_else(|| matching(None))
    }
}

/// How pooled server connections are kept (spec §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPool {
    /// Idle server connections kept per pool key. Default 8.
    pub max_idle: usize,
    /// An idle server connection idle this long is closed. Default 5m.
    pub idle_timeout: Duration,
    /// A server connection is not reused past this age, minus up to 10% jitter. Default 1h.
    pub lifetime: Duration,
    /// Run before a connection goes back to the pool. Default `DISCARD ALL`.
    pub reset_query: String,
}

impl Default for ServerPool {
    fn default() -> Self {
        ServerPool {
            max_idle: defaults::POOL_MAX_IDLE,
            idle_timeout: defaults::SERVER_IDLE_TIMEOUT,
            lifetime: defaults::SERVER_LIFETIME,
            reset_query: defaults::SERVER_RESET_QUERY.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// TLS between clients and the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientTls {
    #[default]
    Off,
    /// A certificate generated at start-up, for apps hard-wired to `sslmode=require`.
    SelfSigned,
    /// PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

impl ClientTls {
    pub fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }
}

/// A credential: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a candidate in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        let mut diff = u8::from(ours.len() != candidate.len());
        for (i, a) in ours.iter().enumerate() {
            diff |= a ^ candidate.get(i).copied().unwrap_or(!a);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
