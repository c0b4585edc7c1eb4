//! Targets: the upstream databases, and how their listen addresses are assigned.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::error::{ConfigError, Origin};
use crate::file::RawTarget;
use crate::topology::{parse_topology, Topology};
use crate::value::{Field, Val};

/// Default upstream port.
pub const DEFAULT_PORT: u16 = 5432;

/// One upstream database and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// From `name`, else derived from the host (first DNS label, or the IP address), made
    /// unique with `-2`, `-3`, ... .
    pub name: String,
    /// Endpoint the token is signed for and the name the TLS certificate is verified against.
    pub host: String,
    /// Default 5432.
    pub port: u16,
    /// `None`: the proxy derives it from the host, else from the AWS config.
    pub region: Option<String>,
    /// Database used when the client sends none.
    pub database: Option<String>,
    /// Upstream user forced whatever the client sends.
    pub user: Option<String>,
    /// Resolved addresses: the first target without its own `listen` gets the global `listen`
    /// (default 127.0.0.1:5432), each further one the next free port; plus the unix socket.
    pub listen: Vec<ListenAddr>,
    /// Address actually dialled; `None` dials `host:port`.
    pub connect_to: Option<(String, u16)>,
    /// CA bundle for verifying the server.
    pub ca_file: CaFile,
    /// Role assumed on top of the default credentials.
    pub role_arn: Option<String>,
    /// AWS profile.
    pub profile: Option<String>,
    /// Whether server connections outlive their clients. Default none.
    pub pool_mode: PoolMode,
    /// Whether the target follows its Aurora cluster's instances. Default auto.
    pub topology: Topology,
}

/// Server connection reuse (spec §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// Every client gets a new server connection, closed when it leaves.
    #[default]
    None,
    /// A server connection whose session ended clean is reset and kept for the next client
    /// with the same pool key.
    Session,
}

impl PoolMode {
    pub fn label(self) -> &'static str {
        match self {
            PoolMode::None => "none",
            PoolMode::Session => "session",
        }
    }
}

pub(crate) fn parse_pool_mode(f: &Field<'_>) -> Result<PoolMode, ConfigError> {
    match f.string()?.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(PoolMode::None),
        "session" => Ok(PoolMode::Session),
        _ => Err(f.invalid("none or session")),
    }
}

impl Target {
    /// The `(host, port)` dialled for this target.
    pub fn dial_addr(&self) -> (&str, u16) {
        match &self.connect_to {
            Some((h, p)) => (h, *p),
            None => (&self.host, self.port),
        }
    }
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// `unix:DIR` in config, or `--unix-socket DIR`: the socket is `DIR/.s.PGSQL.<port>` as
    /// libpq expects for `psql -h DIR -p PORT`.
    Unix {
        dir: PathBuf,
        port: u16,
    },
}

impl ListenAddr {
    /// The socket file `DIR/.s.PGSQL.<port>` of a unix listener. A TCP address has no socket
    /// file and gives an empty path: match on `Unix` first.
    pub fn socket_path(&self) -> PathBuf {
        match self {
            Self::Tcp(_) => PathBuf::new(),
            Self::Unix { dir, port } => dir.join(format!(".s.PGSQL.{port}")),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix { .. } => write!(f, "unix:{}", self.socket_path().display()),
        }
    }
}

/// Where the server's CA bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CaFile {
    /// The first of `/etc/rds-iam-proxy/global-bundle.pem` and the user cache, else download.
    #[default]
    Auto,
    Path(PathBuf),
}

/// Settings that act as defaults for targets that do not set their own.
#[derive(Debug, Clone)]
pub(crate) struct Globals {
    pub region: Option<String>,
    pub user: Option<String>,
    pub connect_to: Option<((String, u16), String, Origin)>,
    pub ca_file: CaFile,
    pub role_arn: Option<String>,
    pub profile: Option<String>,
    pub pool_mode: PoolMode,
    pub topology: Topology,
    pub listen: (SocketAddr, Origin),
    pub unix_socket: Option<PathBuf>,
}

/// A listen entry as written, before ports are assigned.
enum ListenSpec {
    Tcp(SocketAddr),
    UnixDir(PathBuf),
}

/// A target with its own settings parsed and the globals not yet applied.
struct Parsed {
    name: Option<String>,
    host: String,
    port: u16,
    region: Option<String>,
    database: Option<String>,
    user: Option<String>,
    listen: Option<Vec<ListenSpec>>,
    connect_to: Option<(String, u16)>,
    ca_file: Option<CaFile>,
    role_arn: Option<String>,
    profile: Option<String>,
    pool_mode: Option<PoolMode>,
    topology: Option<Topology>,
}

/// A resolved target and where its listen addresses came from (for validation messages).
pub(crate) struct Resolved {
    pub target: Target,
    pub listen_origin: Origin,
}

pub(crate) fn parse_ca_file(f: &Field<'_>) -> Result<CaFile, ConfigError> {
    let s = f.string()?;
    if s.eq_ignore_ascii_case("auto") {
        Ok(CaFile::Auto)
    } else {
        Ok(CaFile::Path(f.path()?))
    }
}

fn parse_listen(f: &Field<'_>) -> Result<ListenSpec, ConfigError> {
    const EXPECTED: &str = "IP:PORT such as \"127.0.0.1:5432\", or unix:DIR";
    if let Val::Str(s) = f.val {
        if let Some(dir) = s.trim().strip_prefix("unix:") {
            if dir.is_empty() {
                return Err(f.invalid(EXPECTED));
            }
            return Ok(ListenSpec::UnixDir(PathBuf::from(dir)));
        }
    }
    f.socket_addr()
        .map(ListenSpec::Tcp)
        .map_err(|_| f.invalid(EXPECTED))
}

fn opt<'a, T>(
    key: &'a str,
    val: &'a Option<Val>,
    origin: &Origin,
    parse: impl Fn(&Field<'a>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    val.as_ref()
        .map(|val| {
            parse(&Field {
                key,
                val,
                origin: origin.clone(),
            })
        })
        .transpose()
}

fn parse_target(raw: &RawTarget, origin: &Origin) -> Result<Parsed, ConfigError> {
    let host = opt("host", &raw.host, origin, Field::string)?.ok_or_else(|| {
        ConfigError::missing("host", "the database endpoint of each [[target]]", origin)
    })?;
    // A URL or `user:password@host` here would be logged and shown as the host: refuse it
    // without echoing what came before an `@`.
    if host.contains(['/', '@', '?', '#', ' ']) {
        let shown = match host.rsplit_once('@') {
            Some((_, after)) => format!("…@{after}"),
            None => host.clone(),
        };
        return Err(ConfigError::invalid(
            "host",
            shown,
            "a DNS name or IP address only (put a URL in TARGET, not in host)",
            origin,
        ));
    }
    let port = opt("port", &raw.port, origin, |f| {
        f.int(1, 65535, "a port number 1-65535")
    })?
    .map_or(DEFAULT_PORT, |p| p as u16);
    let listen = opt("listen", &raw.listen, origin, |f| {
        let items = f.list(parse_listen)?;
        if items.is_empty() {
            return Err(f.invalid("at least one IP:PORT or unix:DIR"));
        }
        Ok(items)
    })?;
    Ok(Parsed {
        name: opt("name", &raw.name, origin, Field::string)?,
        host,
        port,
        region: opt("region", &raw.region, origin, Field::string)?,
        database: opt("database", &raw.database, origin, Field::string)?,
        user: opt("user", &raw.user, origin, Field::string)?,
        listen,
        connect_to: opt("connect_to", &raw.connect_to, origin, Field::host_port)?,
        ca_file: opt("ca_file", &raw.ca_file, origin, parse_ca_file)?,
        role_arn: opt("role_arn", &raw.role_arn, origin, Field::string)?,
        profile: opt("profile", &raw.profile, origin, Field::string)?,
        pool_mode: opt("pool_mode", &raw.pool_mode, origin, parse_pool_mode)?,
        topology: opt("topology", &raw.topology, origin, parse_topology)?,
    })
}

/// Parses the targets, applies the globals and assigns listen addresses.
pub(crate) fn resolve(
    raws: &[(RawTarget, Origin)],
    g: &Globals,
) -> Result<Vec<Resolved>, ConfigError> {
    let parsed = raws
        .iter()
        .map(|(raw, origin)| parse_target(raw, origin))
        .collect::<Result<Vec<_>, _>>()?;

    if let Some((_, text, origin)) = &g.connect_to {
        let users = parsed.iter().filter(|p| p.connect_to.is_none()).count();
        if users > 1 {
            return Err(ConfigError::conflict(
                "connect_to",
                text,
                format!(
                    "a global connect_to applies to one target, but {users} targets would dial \
                     it; set connect_to per target (?connect_to=HOST:PORT or in [[target]])"
                ),
                origin,
            ));
        }
    }

    let names = assign_names(&parsed, raws)?;

    let mut auto = AutoPorts::new(&parsed, &g.listen);
    let mut out = Vec::with_capacity(parsed.len());
    for ((p, (_, origin)), name) in parsed.into_iter().zip(raws).zip(names) {
        let (specs, listen_origin) = match p.listen {
            Some(specs) => (specs, origin.clone()),
            None => (vec![ListenSpec::Tcp(auto.next()?)], g.listen.1.clone()),
        };
        let listen = listen_addrs(specs, p.port, g.unix_socket.as_ref());
        out.push(Resolved {
            target: Target {
                name,
                host: p.host,
                port: p.port,
                region: p.region.or_else(|| g.region.clone()),
                database: p.database,
                user: p.user.or_else(|| g.user.clone()),
                listen,
                connect_to: p
                    .connect_to
                    .or_else(|| g.connect_to.as_ref().map(|(hp, _, _)| hp.clone())),
                ca_file: p.ca_file.unwrap_or_else(|| g.ca_file.clone()),
                role_arn: p.role_arn.or_else(|| g.role_arn.clone()),
                profile: p.profile.or_else(|| g.profile.clone()),
                pool_mode: p.pool_mode.unwrap_or(g.pool_mode),
                topology: p.topology.unwrap_or(g.topology),
            },
            listen_origin,
        });
    }
    Ok(out)
}

/// Hands the next free port above `listen` to each target that names no address of its own.
struct AutoPorts<'a> {
    base: SocketAddr,
    origin: &'a Origin,
    next: u32,
    /// Ports named explicitly are never handed out automatically.
    taken: HashSet<SocketAddr>,
}

impl<'a> AutoPorts<'a> {
    fn new(parsed: &[Parsed], (base, origin): &'a (SocketAddr, Origin)) -> Self {
        let taken = parsed
            .iter()
            .filter_map(|p| p.listen.as_ref())
            .flatten()
            .filter_map(|l| match l {
                ListenSpec::Tcp(a) => Some(*a),
                ListenSpec::UnixDir(_) => None,
            })
            .collect();
        AutoPorts {
            base: *base,
            origin,
            next: u32::from(base.port()),
            taken,
        }
    }

    fn next(&mut self) -> Result<SocketAddr, ConfigError> {
        loop {
            let port = u16::try_from(self.next).map_err(|_| {
                ConfigError::invalid(
                    "listen",
                    self.base.to_string(),
                    "an address with enough free ports above it for every target",
                    self.origin,
                )
            })?;
            self.next += 1;
            let candidate = SocketAddr::new(self.base.ip(), port);
            if !self.taken.contains(&candidate) {
                return Ok(candidate);
            }
        }
    }
}

/// A target's listen addresses, with the global `unix_socket` added unless it has its own.
fn listen_addrs(
    specs: Vec<ListenSpec>,
    target_port: u16,
    unix_socket: Option<&PathBuf>,
) -> Vec<ListenAddr> {
    let tcp_port = specs.iter().find_map(|l| match l {
        ListenSpec::Tcp(a) => Some(a.port()),
        ListenSpec::UnixDir(_) => None,
    });
    // A unix socket takes the TCP port so `psql -h DIR -p PORT` matches the TCP address.
    let socket_port = tcp_port.unwrap_or(target_port);
    let mut listen: Vec<ListenAddr> = specs
        .into_iter()
        .map(|l| match l {
            ListenSpec::Tcp(a) => ListenAddr::Tcp(a),
            ListenSpec::UnixDir(dir) => ListenAddr::Unix {
                dir,
                port: socket_port,
            },
        })
        .collect();
    let has_unix = listen.iter().any(|l| matches!(l, ListenAddr::Unix { .. }));
    if let (Some(dir), false) = (unix_socket, has_unix) {
        listen.push(ListenAddr::Unix {
            dir: dir.clone(),
            port: socket_port,
        });
    }
    listen
}

/// Explicit names must be unique; derived ones are made unique.
fn assign_names(
    parsed: &[Parsed],
    raws: &[(RawTarget, Origin)],
) -> Result<Vec<String>, ConfigError> {
    let mut used: HashSet<String> = HashSet::new();
    for (p, (_, origin)) in parsed.iter().zip(raws) {
        if let Some(name) = &p.name {
            if !used.insert(name.clone()) {
                return Err(ConfigError::conflict(
                    "name",
                    name,
                    "two targets have this name: expected unique target names",
                    origin,
                ));
            }
        }
    }
    Ok(parsed
        .iter()
        .map(|p| {
            if let Some(name) = &p.name {
                return name.clone();
            }
            let base = derive_name(&p.host);
            let mut name = base.clone();
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect())
}

/// `mydb.cluster-xyz.eu-west-1.rds.amazonaws.com` → `mydb`; IP addresses stay whole.
fn derive_name(host: &str) -> String {
    if host.parse::<IpAddr>().is_ok() {
        return host.to_owned();
    }
    host.split('.').next().unwrap_or(host).to_owned()
}
