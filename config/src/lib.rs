//! Settings of rds-iam-proxy, layered flag > environment (`RDS_IAM_PROXY_<KEY>`) > config file
//! (TOML, YAML or JSON) > default, then validated. Every error names the key to fix.
#![forbid(unsafe_code)]

mod error;
mod file;
mod redact;
mod schema;
mod settings;
mod target;
mod topology;
mod url;
mod validate;
mod value;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Origin};
pub use file::ENV_PREFIX;
pub use schema::{restart_only_changes, settings_reference, FlagKind, RunArgs, SettingDoc};
pub use settings::{defaults, ClientTls, LogFormat, Resolve, Secret, ServerPool, Settings};
pub use target::{CaFile, ListenAddr, PoolMode, Target, DEFAULT_PORT};
pub use topology::{Topology, TopologySettings};

use file::{Layers, RawTarget, ENV_CONFIG, ENV_TARGETS};
use target::Globals;
use value::{Field, Val};

/// Loads the settings of `run` (and `check`, `policy`). `env` is the process environment
/// (`std::env::vars().collect()`), passed in so tests never touch the real one.
///
/// No error shows a password: not the value of `client_password`, not a URL's, not text of a
/// file that does not parse.
pub fn load(args: &RunArgs, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    load_unredacted(args, env).map_err(redact::error)
}

fn load_unredacted(args: &RunArgs, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let config_file = args.config.clone().or_else(|| {
        env.get(ENV_CONFIG)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let mut layers = file::read(config_file.as_deref(), env)?;
    args.overlay(&mut layers);

    let specs: Vec<(String, Origin)> = if args.targets.is_empty() {
        env.get(ENV_TARGETS)
            .map(|v| {
                v.split_whitespace()
                    .map(|t| (t.to_owned(), Origin::env(ENV_TARGETS)))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        args.targets
            .iter()
            .map(|t| (t.clone(), Origin::none()))
            .collect()
    };
    resolve(&layers, &specs, config_file)
}

/// Re-reads everything with the same flags and environment, for SIGHUP.
pub fn reload(
    previous_args: &RunArgs,
    env: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    load(previous_args, env)
}

/// The settings a file gives on its own (no flags, no environment), all its targets.
pub fn load_file_only(path: &Path) -> Result<Settings, ConfigError> {
    let args = RunArgs {
        config: Some(path.to_owned()),
        ..RunArgs::default()
    };
    load(&args, &HashMap::new())
}

/// Parses one top-level value, if any layer set it.
fn get<'a, T>(
    layers: &Layers,
    key: &'static str,
    val: &'a Option<Val>,
    parse: impl Fn(&Field<'a>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    let Some(val) = val else { return Ok(None) };
    let origin = file::origin_of(layers, key);
    parse(&Field { key, val, origin }).map(Some)
}

/// `setting!(layers, key, parse)`: [`get`] with the key written once, so the name in messages
/// and the field read cannot drift apart.
macro_rules! setting {
    ($layers:expr, $key:ident, $parse:expr) => {
        get($layers, stringify!($key), &$layers.raw.$key, $parse)
    };
}

fn positive_duration(f: &Field<'_>) -> Result<Duration, ConfigError> {
    let d = f.duration()?;
    if d.is_zero() {
        return Err(f.invalid("a duration above zero such as \"30s\""));
    }
    Ok(d)
}

/// The reset query runs as one simple Query: it must be a non-empty statement.
fn reset_query(f: &Field<'_>) -> Result<String, ConfigError> {
    let sql = f.string()?;
    if sql.trim().is_empty() || sql.contains('\0') {
        return Err(f.invalid("an SQL statement such as \"DISCARD ALL\""));
    }
    Ok(sql)
}

fn admin_listen(f: &Field<'_>) -> Result<Option<SocketAddr>, ConfigError> {
    // `off` lets a flag or variable switch off an address set in the file.
    if matches!(f.val, Val::Str(s) if s.trim().eq_ignore_ascii_case("off")) {
        return Ok(None);
    }
    f.socket_addr().map(Some)
}

fn max_connections(f: &Field<'_>) -> Result<Option<NonZeroUsize>, ConfigError> {
    let n = f.int(
        0,
        usize::MAX as i128,
        "a non-negative integer, 0 for no limit",
    )?;
    Ok(NonZeroUsize::new(n as usize))
}

fn max_connect_rate(f: &Field<'_>) -> Result<u32, ConfigError> {
    let n = f.int(
        1,
        u32::MAX.into(),
        "a positive integer of connections per second",
    )?;
    Ok(n as u32)
}

fn log_format(f: &Field<'_>) -> Result<LogFormat, ConfigError> {
    match f.string()?.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(f.invalid("text or json")),
    }
}

/// A filter the proxy's logger accepts: checked here because the logger, set up later, can
/// only fall back to a default, which would hide the typo.
fn log_level(f: &Field<'_>) -> Result<String, ConfigError> {
    let filter = f.string()?;
    match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(_) => Ok(filter),
        Err(e) => Err(f.invalid(&format!(
            "a RUST_LOG-style filter such as info or rds_iam_proxy=debug,warn ({e})"
        ))),
    }
}

fn client_password(f: &Field<'_>) -> Result<Secret, ConfigError> {
    match f.val {
        Val::Str(s) if !s.is_empty() => Ok(Secret::new(s.clone())),
        Val::Int(i) => Ok(Secret::new(i.to_string())),
        // Never echo a password, even a malformed one.
        _ => Err(ConfigError::invalid(
            f.key,
            "<redacted>",
            "a non-empty string",
            &f.origin,
        )),
    }
}

/// The settings that are defaults for targets.
fn globals(layers: &Layers) -> Result<Globals, ConfigError> {
    Ok(Globals {
        region: setting!(layers, region, Field::string)?,
        user: setting!(layers, user, Field::string)?,
        connect_to: setting!(layers, connect_to, |f| {
            Ok((f.host_port()?, f.val.to_string(), f.origin.clone()))
        })?,
        ca_file: setting!(layers, ca_file, target::parse_ca_file)?.unwrap_or_default(),
        role_arn: setting!(layers, role_arn, Field::string)?,
        profile: setting!(layers, profile, Field::string)?,
        pool_mode: setting!(layers, pool_mode, target::parse_pool_mode)?.unwrap_or_default(),
        topology: setting!(layers, topology, topology::parse_topology)?.unwrap_or_default(),
        listen: (
            setting!(layers, listen, Field::socket_addr)?.unwrap_or(defaults::LISTEN),
            file::origin_of(layers, "listen"),
        ),
        unix_socket: setting!(layers, unix_socket, Field::path)?,
    })
}

/// Client TLS from its three keys, each with the origin its errors point at.
fn client_tls(layers: &Layers) -> Result<ClientTls, ConfigError> {
    let origin = |key| file::origin_of(layers, key);
    validate::client_tls(
        setting!(layers, client_tls, Field::string)?.map(|m| (m, origin("client_tls"))),
        setting!(layers, client_tls_cert, Field::path)?.map(|p| (p, origin("client_tls_cert"))),
        setting!(layers, client_tls_key, Field::path)?.map(|p| (p, origin("client_tls_key"))),
    )
}

/// Parses every setting (in this order, which decides which error is reported first), then
/// checks the ones that depend on each other.
fn resolve(
    layers: &Layers,
    specs: &[(String, Origin)],
    config_file: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let origin = |key| file::origin_of(layers, key);
    let globals = globals(layers)?;
    let targets = target::resolve(&select_targets(layers, specs)?, &globals)?;

    let admin_listen = setting!(layers, admin_listen, admin_listen)?.flatten();
    let max_connections = setting!(layers, max_connections, max_connections)?.flatten();
    let max_connect_rate =
        setting!(layers, max_connect_rate, max_connect_rate)?.unwrap_or(defaults::MAX_CONNECT_RATE);
    let connect_timeout =
        setting!(layers, connect_timeout, positive_duration)?.unwrap_or(defaults::CONNECT_TIMEOUT);
    let pool = ServerPool {
        max_idle: setting!(layers, pool_max_idle, |f| {
            Ok(f.int(0, 100_000, "an integer 0-100000 of idle connections")? as usize)
        })?
        .unwrap_or(defaults::POOL_MAX_IDLE),
        idle_timeout: setting!(layers, server_idle_timeout, positive_duration)?
            .unwrap_or(defaults::SERVER_IDLE_TIMEOUT),
        lifetime: setting!(layers, server_lifetime, positive_duration)?
            .unwrap_or(defaults::SERVER_LIFETIME),
        reset_query: setting!(layers, server_reset_query, reset_query)?
            .unwrap_or_else(|| defaults::SERVER_RESET_QUERY.to_owned()),
    };
    let topology = TopologySettings {
        refresh: setting!(layers, topology_refresh, positive_duration)?
            .unwrap_or(defaults::TOPOLOGY_REFRESH),
        max_replica_lag: setting!(layers, max_replica_lag, positive_duration)?
            .unwrap_or(defaults::MAX_REPLICA_LAG),
        user: setting!(layers, topology_user, Field::string)?,
    };
    let resolve = setting!(layers, resolve, value::parse_resolve)?.unwrap_or_default();
    let startup_timeout =
        setting!(layers, startup_timeout, positive_duration)?.unwrap_or(defaults::STARTUP_TIMEOUT);
    let min_sigterm_delay = setting!(layers, min_sigterm_delay, Field::duration)?
        .unwrap_or(defaults::MIN_SIGTERM_DELAY);
    let max_sigterm_delay = setting!(layers, max_sigterm_delay, Field::duration)?
        .unwrap_or(defaults::MAX_SIGTERM_DELAY);
    let exit_zero_on_sigterm =
        setting!(layers, exit_zero_on_sigterm, Field::bool)?.unwrap_or(false);
    let quitquitquit = setting!(layers, quitquitquit, Field::bool)?.unwrap_or(false);
    let allow_core_dumps = setting!(layers, allow_core_dumps, Field::bool)?.unwrap_or(false);
    let allow_remote = setting!(layers, allow_remote, Field::bool)?.unwrap_or(false);
    let log_format = setting!(layers, log_format, log_format)?.unwrap_or_default();
    let log_level =
        setting!(layers, log_level, log_level)?.unwrap_or_else(|| defaults::LOG_LEVEL.to_owned());
    let unix_socket_mode =
        setting!(layers, unix_socket_mode, Field::mode)?.unwrap_or(defaults::UNIX_SOCKET_MODE);
    let client_password = setting!(layers, client_password, client_password)?;
    let client_tls = client_tls(layers)?;

    validate::allow_remote(
        allow_remote,
        &origin("allow_remote"),
        &client_tls,
        client_password.as_ref(),
    )?;
    validate::listen(
        &targets,
        allow_remote,
        admin_listen.map(|a| (a, origin("admin_listen"))),
    )?;

    Ok(Settings {
        targets: targets.into_iter().map(|r| r.target).collect(),
        admin_listen,
        quitquitquit,
        max_connections,
        max_connect_rate,
        connect_timeout,
        pool,
        topology,
        resolve,
        startup_timeout,
        min_sigterm_delay,
        max_sigterm_delay,
        allow_core_dumps,
        exit_zero_on_sigterm,
        log_format,
        log_level,
        allow_remote,
        unix_socket_mode,
        client_tls,
        client_password,
        config_file,
    })
}

/// The targets to run: those named or given as URLs, else every `[[target]]` of the file.
fn select_targets(
    layers: &Layers,
    specs: &[(String, Origin)],
) -> Result<Vec<(RawTarget, Origin)>, ConfigError> {
    let file_targets = layers.raw.target.as_deref().unwrap_or_default();
    let file = layers.file_origin.as_str();
    let table_origin = |i: usize, t: &RawTarget| {
        let which = match &t.name {
            Some(name) => format!("{:?}", name.to_string()),
            None => format!("#{}", i + 1),
        };
        Origin::text(format!("[[target]] {which} {file}").trim_end().to_owned())
    };

    if specs.is_empty() {
        if file_targets.is_empty() {
            return Err(ConfigError::missing(
                "target",
                "at least one TARGET (postgres://USER@HOST:PORT/DATABASE) or a [[target]] table \
                 in the config file",
                &Origin::none(),
            ));
        }
        return Ok(file_targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), table_origin(i, t)))
            .collect());
    }

    specs
        .iter()
        .map(|(spec, origin)| {
            if url::is_url(spec) {
                return Ok((url::parse(spec, origin)?, url::origin_for(spec, origin)));
            }
            file_targets
                .iter()
                .enumerate()
                .find(|(_, t)| matches!(&t.name, Some(Val::Str(n)) if n.trim() == spec))
                .map(|(i, t)| (t.clone(), table_origin(i, t)))
                .ok_or_else(|| {
                    let names: Vec<String> = file_targets
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                        .collect();
                    let known = if layers.file_origin.as_str().is_empty() {
                        "no config file given".to_owned()
                    } else if names.is_empty() {
                        "the config file names none".to_owned()
                    } else {
                        format!("known: {}", names.join(", "))
                    };
                    // `USER:PASSWORD@HOST` without a scheme is taken for a name: mask it all
                    // the same.
                    ConfigError::invalid(
                        "TARGET",
                        redact::url(spec),
                        format!(
                            "a postgres:// URL or the name of a [[target]] in the config file ({known})"
                        ),
                        origin,
                    )
                })
        })
        .collect()
}
