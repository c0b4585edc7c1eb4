//! The client compatibility matrix: the drivers people use, through the real proxy binary to
//! the Aurora stand-in. psql and pgbench run as processes, the Python, Node.js and Java
//! programs under tests/clients/ run with the proxy's address in PG* variables and print one
//! JSON line per feature, tokio-postgres and sqlx run in process. The result is written to
//! tests/clients/README.md; the test fails if any cell fails. A client whose runtime is
//! missing (scripts/setup installs them all) is a named gap, never a silent pass.

mod common;

#[path = "clients/cli.rs"]
mod cli;
#[path = "clients/matrix.rs"]
mod matrix;
#[path = "clients/rust_drivers.rs"]
mod rust_drivers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use matrix::{Matrix, Status};
use standin::{Aurora, AuroraOptions, ProxyCommand, ProxyProcess, StandIn};
use tokio::process::Command;

/// Bound of one client program's whole run.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(300);

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Version of a package in the workspace's Cargo.lock (what the test was built with).
fn lock_version(package: &str) -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let needle = format!("name = \"{package}\"\nversion = \"");
    text.find(&needle)
        .and_then(|i| text[i + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}

/// The Python venv scripts/setup makes (same path rule).
fn python_venv() -> PathBuf {
    if let Some(v) = std::env::var_os("RDS_IAM_CLIENTS_VENV") {
        return v.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    cache.join("rds-iam-proxy/clients-venv")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

enum TlsProxy {
    Up(ProxyProcess),
    /// The proxy build has no local TLS: a named gap.
    Missing(String),
    /// It has, but it did not start: a failure.
    Broken(String),
}

fn start_tls_proxy(backend: &Backend<'_>, mode: &Mode) -> TlsProxy {
    let help = std::process::Command::new(common::PROXY_BIN)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !help.contains("--client-tls") {
        return TlsProxy::Missing(
            "this proxy build has no --client-tls (local TLS towards clients), so \
             sslmode=require cannot be served"
                .into(),
        );
    }
    let proxy = match backend
        .proxy()
        .args(["--client-tls", "self-signed"])
        .args(mode.args.iter().copied())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            return TlsProxy::Broken(format!(
                "proxy --client-tls self-signed did not start: {e:#}"
            ))
        }
    };
    // The flag may be accepted before local TLS is wired: then SSLRequest still gets 'N'.
    match ssl_request(proxy.addr()) {
        Ok(b'S') => TlsProxy::Up(proxy),
        Ok(b'N') => TlsProxy::Missing(
            "this proxy build accepts --client-tls self-signed but answers SSLRequest with \
             'N' (local TLS towards clients not implemented yet), so sslmode=require cannot \
             be served"
                .into(),
        ),
        Ok(other) => TlsProxy::Broken(format!(
            "SSLRequest to --client-tls self-signed answered {:?}",
            other as char
        )),
        Err(e) => TlsProxy::Broken(format!("SSLRequest to --client-tls self-signed: {e}")),
    }
}

/// Sends an SSLRequest and returns the one-byte answer.
fn ssl_request(addr: SocketAddr) -> std::io::Result<u8> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)?;
    Ok(answer[0])
}

/// One external client program.
struct Program {
    /// Rows it reports.
    clients: &'static [&'static str],
    /// The command, or why it cannot run (a gap for all its rows).
    command: Result<Command, String>,
}

fn program_env(cmd: &mut Command, addr: SocketAddr, tls: Option<SocketAddr>, tls_gap: &str) {
    cli::clean(cmd)
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .env("PGHOST", addr.ip().to_string())
        .env("PGPORT", addr.port().to_string())
        .env("PGUSER", rust_drivers::USER)
        .env("PGDATABASE", rust_drivers::DATABASE)
        .env("PYTHONUTF8", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CLIENTS_TLS_GAP", tls_gap);
    if let Some(t) = tls {
        cmd.env("CLIENTS_TLS_PORT", t.port().to_string());
    }
}

async fn programs(java_classes: &Path) -> Vec<Program> {
    let dir = suite_dir();
    let mut out = Vec::new();

    let python = python_venv().join("bin/python");
    const PYTHON_PROGRAMS: &[(&[&str], &str)] = &[
        (&["psycopg (sync)"], "psycopg_sync.py"),
        (&["psycopg (async)"], "psycopg_async.py"),
        (&["asyncpg"], "asyncpg_suite.py"),
        (&["pg8000"], "pg8000_suite.py"),
    ];
    for &(clients, script) in PYTHON_PROGRAMS {
        let command = if python.is_file() {
            let mut cmd = Command::new(&python);
            cmd.arg(dir.join("python").join(script))
                .current_dir(dir.join("python"));
            Ok(cmd)
        } else {
            Err(format!(
                "Python drivers not installed: no venv at {} (scripts/setup makes it)",
                python.display()
            ))
        };
        out.push(Program { clients, command });
    }

    let node_modules = dir.join("node/node_modules/pg");
    let command = if !on_path("node") {
        Err("Node.js is not installed (scripts/setup installs nodejs)".to_owned())
    } else if !node_modules.is_dir() {
        Err(
            "node-postgres not installed in tests/clients/node (scripts/setup runs npm ci)"
                .to_owned(),
        )
    } else {
        let mut cmd = Command::new("node");
        cmd.arg("--no-deprecation")
            .arg(dir.join("node/suite.js"))
            .current_dir(dir.join("node"));
        Ok(cmd)
    };
    out.push(Program {
        clients: &["node-postgres (pg)"],
        command,
    });

    let jar = Path::new("/usr/share/java/postgresql.jar");
    let command = if !on_path("javac") || !on_path("java") {
        Err("no JDK (scripts/setup installs default-jdk-headless)".to_owned())
    } else if !jar.is_file() {
        Err("no pgjdbc at /usr/share/java/postgresql.jar (scripts/setup installs libpostgresql-jdbc-java)".to_owned())
    } else {
        let compiled = Command::new("javac")
            .args(["-encoding", "UTF-8", "-d"])
            .arg(java_classes)
            .arg("-cp")
            .arg(jar)
            .arg(dir.join("java/PgJdbcSuite.java"))
            .output()
            .await;
        match compiled {
            Ok(o) if o.status.success() => {
                let mut cmd = Command::new("java");
                cmd.arg("-cp")
                    .arg(format!("{}:{}", java_classes.display(), jar.display()))
                    .arg("PgJdbcSuite");
                Ok(cmd)
            }
            // A compile error is the suite's own bug: report it as failures, not a gap.
            Ok(o) => Ok({
                let mut cmd = Command::new("sh");
                cmd.args(["-c", "printf '%s\\n' \"$0\" >&2; exit 1"])
                    .arg(format!(
                        "javac failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                cmd
            }),
            Err(e) => Err(format!("javac did not run: {e}")),
        }
    };
    out.push(Program {
        clients: &["pgjdbc"],
        command,
    });
    out
}

async fn run_program(
    m: &mut Matrix,
    p: Program,
    addr: SocketAddr,
    tls: Option<SocketAddr>,
    tls_gap: &str,
) {
    let mut cmd = match p.command {
        Ok(cmd) => cmd,
        Err(reason) => {
            // CI installs every runtime: there a missing one is a broken set-up, not a gap.
            assert!(
                std::env::var_os("RDS_IAM_CLIENTS_REQUIRE_ALL").is_none(),
                "{:?} cannot run: {reason}",
                p.clients
            );
            for c in p.clients {
                m.all_gaps(c, &reason);
            }
            return;
        }
    };
    program_env(&mut cmd, addr, tls, tls_gap);
    let t0 = Instant::now();
    let (stdout, context) = match cmd.spawn() {
        Err(e) => (String::new(), format!("could not start: {e}")),
        Ok(child) => match tokio::time::timeout(PROGRAM_TIMEOUT, child.wait_with_output()).await {
            Err(_) => (String::new(), format!("killed after {PROGRAM_TIMEOUT:?}")),
            Ok(Err(e)) => (String::new(), format!("wait failed: {e}")),
            Ok(Ok(out)) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                (
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    format!("{}; stderr: {}", out.status, tail.join(" / ")),
                )
            }
        },
    };
    eprintln!("{:?}: {:.1?} ({context})", p.clients, t0.elapsed());
    m.absorb_program(p.clients, &stdout, &context);
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// How the proxy runs for one pass of the matrix.
struct Mode {
    title: &'static str,
    args: &'static [&'static str],
    /// In front of the Aurora stand-in cluster's cluster endpoint, following its topology.
    aurora: bool,
}

/// What the proxy of one pass sits in front of.
#[derive(Clone, Copy)]
enum Backend<'a> {
    StandIn(&'a StandIn),
    Aurora(&'a Aurora),
}

impl Backend<'_> {
    /// The proxy for database `appdb`, the client choosing the user.
    fn proxy(&self) -> ProxyCommand {
        match self {
            Backend::StandIn(s) => common::proxy_for(s),
            Backend::Aurora(a) => ProxyCommand::new(common::PROXY_BIN)
                .arg(format!("postgres://{}/appdb", a.cluster_host()))
                .args(["--ca-file", a.ca_file().to_str().unwrap()])
                .args(a.resolve_args())
                .envs(a.credentials_env()),
        }
    }
}

/// The Aurora stand-in with `iam_user` owning `appdb`, as the plain stand-in has them.
async fn aurora() -> Aurora {
    let a = Aurora::start(AuroraOptions::default())
        .await
        .expect("the Aurora stand-in starts");
    a.create_iam_user("iam_user").await.expect("iam_user");
    a.on_writer("CREATE DATABASE appdb OWNER iam_user")
        .await
        .expect("appdb");
    a
}

/// Every client, every feature, with the raw splice, with pooled server connections (a pool
/// of one per key, so the features' sessions reuse one another's), and through the Aurora
/// stand-in's cluster endpoint with the topology followed (sessions sent to the writer
/// instance's own endpoint).
const MODES: &[Mode] = &[
    Mode {
        title: "`pool_mode = none` (default: a server connection per client, raw splice)",
        args: &[],
        aurora: false,
    },
    Mode {
        title: "`pool_mode = session` (server connections reset with `DISCARD ALL` and reused; `pool_max_idle = 1`)",
        args: &["--pool-mode", "session", "--pool-max-idle", "1"],
        aurora: false,
    },
    Mode {
        title: "`topology = auto` against an Aurora-like cluster (writer and two streaming standbys; sessions go to the writer instance's endpoint)",
        args: &[],
        aurora: true,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_matrix() {
    let started = Instant::now();
    let s = common::standin().await;
    let admin = s.superuser_client().await.expect("superuser client");
    let java_classes = tempfile::Builder::new()
        .prefix("clients-java-")
        .tempdir()
        .expect("temp dir");
    let cluster = aurora().await;
    let cluster_admin = cluster
        .instance(0)
        .superuser_client()
        .await
        .expect("writer superuser client");
    let mut sections = Vec::new();
    let mut failures = Vec::new();
    for mode in MODES {
        let (backend, admin) = if mode.aurora {
            (Backend::Aurora(&cluster), &cluster_admin)
        } else {
            (Backend::StandIn(&s), &admin)
        };
        let (m, reused) = run_mode(backend, admin, mode, java_classes.path()).await;
        if mode.aurora {
            // The topology pass must actually have gone to the instance endpoint.
            let writer = format!("{}:5432", cluster.instance(0).names.host);
            let to_instance = cluster
                .instance(0)
                .checker()
                .records()
                .into_iter()
                .filter(|r| r.result.as_ref().is_ok_and(|v| v.endpoint == writer))
                .count();
            assert!(to_instance > 0, "no token was signed for {writer}");
            eprintln!("topology pass: {to_instance} tokens signed for the writer instance");
        } else if !mode.args.is_empty() {
            // The pooled pass must actually have reused connections.
            assert!(reused > 0, "no session reused a pooled server connection");
            eprintln!("pooled pass: {reused} sessions got a reused server connection");
        }
        failures.extend(m.failures().into_iter().map(|c| {
            format!(
                "  [{}] {} / {}: {}",
                mode.title, c.client, c.feature, c.detail
            )
        }));
        sections.push((mode.title, m));
    }

    let server_version: String = admin
        .query_one("select version()", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or_default();
    let environment = vec![
        ("server (stand-in)".to_owned(), server_version),
        (
            "rds-iam-proxy".to_owned(),
            format!("{} (this workspace)", env!("CARGO_PKG_VERSION")),
        ),
        ("OS".to_owned(), os_name()),
    ];
    let generated = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut body = String::new();
    for (title, m) in &sections {
        body.push_str(&format!("## {title}\n\n"));
        body.push_str(&m.render(
            &format!(
                "{generated} in {:.0?} for all passes (2-core CI machine size)",
                started.elapsed()
            ),
            &environment,
        ));
        body.push('\n');
    }
    let readme = suite_dir().join("README.md");
    let existing = std::fs::read_to_string(&readme).ok();
    std::fs::write(&readme, matrix::splice_readme(existing.as_deref(), &body))
        .expect("writing tests/clients/README.md");
    eprintln!(
        "matrix written to {} in {:.1?}",
        readme.display(),
        started.elapsed()
    );

    let stats = s.token_stats();
    assert!(
        failures.is_empty(),
        "{} failing cell(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(stats.refused, 0, "tokens refused: {:?}", stats.refusals);
    let stats = cluster.instance(0).checker().stats();
    assert_eq!(
        stats.refused, 0,
        "writer refused tokens: {:?}",
        stats.refusals
    );
}

/// One pass of the matrix with the proxy in `mode`; also returns how many sessions got a
/// reused server connection.
async fn run_mode(
    backend: Backend<'_>,
    admin: &tokio_postgres::Client,
    mode: &Mode,
    java_classes: &Path,
) -> (Matrix, usize) {
    let proxy = backend
        .proxy()
        .args(mode.args.iter().copied())
        .spawn()
        .expect("proxy starts");
    let addr = proxy.addr();
    let mut m = Matrix::default();

    let tls_proxy = start_tls_proxy(&backend, mode);
    let (tls_addr, tls_gap) = match &tls_proxy {
        TlsProxy::Up(p) => (Some(p.addr()), String::new()),
        TlsProxy::Missing(reason) => (None, reason.clone()),
        TlsProxy::Broken(reason) => {
            m.push(
                "rds-iam-proxy",
                "--client-tls self-signed",
                Status::Fail,
                reason.clone(),
            );
            (None, reason.clone())
        }
    };

    let t = Instant::now();
    cli::psql_suite(&mut m, addr, tls_addr, admin).await;
    cli::pgbench_suite(&mut m, addr).await;
    eprintln!("psql + pgbench: {:.1?}", t.elapsed());

    for p in programs(java_classes).await {
        run_program(&mut m, p, addr, tls_addr, &tls_gap).await;
    }

    let t = Instant::now();
    rust_drivers::tokio_postgres(&mut m, addr).await;
    rust_drivers::sqlx(&mut m, addr).await;
    eprintln!("tokio-postgres + sqlx: {:.1?}", t.elapsed());

    // Only the pgjdbc program reports on a missing TLS listener; psql's row says so too.
    if tls_addr.is_none() && !tls_gap.is_empty() {
        m.push(
            "psql",
            "sslmode=require (local TLS)",
            Status::Gap,
            tls_gap.clone(),
        );
    }

    let reused = proxy
        .log_messages("connection closed")
        .iter()
        .chain(
            match &tls_proxy {
                TlsProxy::Up(p) => p.log_messages("connection closed"),
                _ => Vec::new(),
            }
            .iter(),
        )
        .filter(|l| l.contains("\"server_reused\":true"))
        .count();
    drop(tls_proxy);
    drop(proxy);
    (m, reused)
}
