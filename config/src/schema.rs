//! The one table of top-level settings. Each row gives, for one key:
//!
//! - `doc`: the line shown by `--help` (and in the reference and the code docs);
//! - `flag`: `"VALUE_NAME"` for `--key-with-dashes VALUE`, `["VALUE_NAME"]` for a flag that may
//!   be given more than once (a list), `bool` for
//!   `--key-with-dashes[=BOOL]` (alone it means true), or `none` for a key that only a file or
//!   a variable may set;
//! - `default`: the default as documented; `(shown)` appends ` [default: ...]` to the `--help`
//!   line;
//! - `reload`: `live` if SIGHUP applies a change, `restart(field)` if the proxy reads
//!   `Settings::field` once at start-up, so a change only takes effect after a restart.
//!
//! The config file key is the row's name, the variable is `RDS_IAM_PROXY_<KEY>` and the flag is
//! the key with `-` for `_`. From the rows the macro in `generate.rs` emits [`RunArgs`] and its
//! overlay onto the file and environment, the file schema `RawSettings` (which rejects unknown
//! keys), the key list used in "expected one of" messages, [`restart_only_changes`] and
//! [`settings_reference`].
//!
//! # How to add a setting
//!
//! 1. Add a row below, where it should appear in `--help`.
//! 2. Add the typed field to [`Settings`] and parse it in `resolve` (`lib.rs`) with
//!    `setting!(layers, key, parser)`, which names the key in every error.
//!
//! Nothing else lists the keys; the tests in `schema/tests.rs` load every row from a file, a
//! variable and its flag, and change every `restart(..)` field.

mod generate;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::error::Origin;
use crate::file::{Layers, RawTarget, ENV_PREFIX};
use crate::settings::Settings;
use crate::value::Val;
use generate::settings;

/// How a setting is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--key VALUE` or `--key=VALUE`; the value name shown by `--help`.
    Value(&'static str),
    /// `--key` (true), `--key=true`, `--key=false`.
    Bool,
    /// No flag: a config file or the variable only (secrets stay out of `ps`).
    NoFlag,
}

/// Documentation of one top-level setting, for generated docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDoc {
    /// Config file key, such as `max_connections`.
    pub key: &'static str,
    pub flag: FlagKind,
    /// The default, as documented (`150`, `30s`, `none`, `off`, ...).
    pub default: &'static str,
    /// One line: the `--help` text without the default.
    pub doc: &'static str,
    /// A change applies only after a restart, not on SIGHUP.
    pub restart: bool,
}

impl SettingDoc {
    /// The environment variable, `RDS_IAM_PROXY_<KEY>`.
    pub fn env(&self) -> String {
        env_var(self.key)
    }

    /// `--key-with-dashes`, unless the setting has no flag.
    pub fn flag(&self) -> Option<String> {
        match self.flag {
            FlagKind::NoFlag => None,
            FlagKind::Value(_) | FlagKind::Bool => {
                Some(format!("--{}", self.key.replace('_', "-")))
            }
        }
    }
}

/// Every top-level setting, in `--help` order.
pub fn settings_reference() -> &'static [SettingDoc] {
    REFERENCE
}

/// The variable of a top-level key.
pub(crate) fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

settings! {
    listen {
        doc: "Where the first target listens; further targets get the next ports",
        flag: "ADDR",
        default: "127.0.0.1:5432" (shown),
        reload: live,
    }
    unix_socket {
        doc: "Also listen on DIR/.s.PGSQL.<port> so `psql -h DIR` works",
        flag: "DIR",
        default: "none",
        reload: live,
    }
    region {
        doc: "Signing region",
        flag: "REGION",
        default: "parsed from HOST, else the AWS config's region" (shown),
        reload: live,
    }
    user {
        doc: "Force this database user upstream, whatever the client sends",
        flag: "USER",
        default: "the user the client sends",
        reload: live,
    }
    connect_to {
        doc: "TCP address actually dialled (tunnel, port-forward); token and TLS still use HOST",
        flag: "HOST:PORT",
        default: "none",
        reload: live,
    }
    resolve {
        doc: "Dial HOST:PORT for NAME (repeatable; a table in a file); token and TLS still use NAME",
        flag: ["NAME[:PORT]=HOST:PORT"],
        default: "none",
        reload: live,
    }
    ca_file {
        doc: "PEM bundle for verifying the server, or `auto`",
        flag: "PATH|auto",
        default: "auto" (shown),
        reload: live,
    }
    admin_listen {
        doc: "Admin HTTP address (/startup, /liveness, /readiness, /metrics); loopback unless allow_remote",
        flag: "ADDR",
        default: "off" (shown),
        reload: restart(admin_listen),
    }
    quitquitquit {
        doc: "Serve POST /quitquitquit on the admin address, to peers on loopback only",
        flag: bool,
        default: "false",
        reload: restart(quitquitquit),
    }
    max_connections {
        doc: "Client connections beyond this are refused; 0 = no limit",
        flag: "N",
        default: "0" (shown),
        reload: restart(max_connections),
    }
    max_connect_rate {
        doc: "New upstream connections per second per target",
        flag: "N",
        default: "150" (shown),
        reload: live,
    }
    connect_timeout {
        doc: "DNS + TCP + TLS + auth to upstream",
        flag: "DUR",
        default: "30s" (shown),
        reload: live,
    }
    pool_mode {
        doc: "Keep server connections for the next client (session) or not (none); per target too",
        flag: "none|session",
        default: "none" (shown),
        reload: live,
    }
    topology {
        doc: "Follow an Aurora cluster's writer and readers (auto: for cluster endpoints by name); per target too",
        flag: "auto|aurora|off",
        default: "auto" (shown),
        reload: live,
    }
    topology_refresh {
        doc: "How often an Aurora cluster's topology is read while nothing is wrong",
        flag: "DUR",
        default: "30s" (shown),
        reload: live,
    }
    max_replica_lag {
        doc: "Aurora readers lagging more than this get no new reader sessions",
        flag: "DUR",
        default: "10s" (shown),
        reload: live,
    }
    topology_user {
        doc: "Database user of the topology monitor when the target forces none",
        flag: "USER",
        default: "the first client's user",
        reload: live,
    }
    pool_max_idle {
        doc: "Idle server connections kept per pool key (target, user, database, options)",
        flag: "N",
        default: "8" (shown),
        reload: live,
    }
    server_idle_timeout {
        doc: "An idle server connection older than this is closed",
        flag: "DUR",
        default: "5m" (shown),
        reload: live,
    }
    server_lifetime {
        doc: "A server connection is not reused past this age (minus up to 10% jitter)",
        flag: "DUR",
        default: "1h" (shown),
        reload: live,
    }
    server_reset_query {
        doc: "Run before a server connection goes back to the pool",
        flag: "SQL",
        default: "DISCARD ALL" (shown),
        reload: live,
    }
    startup_timeout {
        doc: "Time a client has to send its startup packet",
        flag: "DUR",
        default: "10s" (shown),
        reload: restart(startup_timeout),
    }
    min_sigterm_delay {
        doc: "Keep accepting this long after SIGTERM",
        flag: "DUR",
        default: "0s" (shown),
        reload: restart(min_sigterm_delay),
    }
    max_sigterm_delay {
        doc: "Then drain open connections for up to this long",
        flag: "DUR",
        default: "30s" (shown),
        reload: restart(max_sigterm_delay),
    }
    allow_core_dumps {
        doc: "Leave core dumps on (they would hold credentials and tokens)",
        flag: bool,
        default: "false",
        reload: restart(allow_core_dumps),
    }
    exit_zero_on_sigterm {
        doc: "Exit 0 instead of 143 on SIGTERM",
        flag: bool,
        default: "false",
        reload: restart(exit_zero_on_sigterm),
    }
    role_arn {
        doc: "Assume this role (STS) on top of the default credentials",
        flag: "ARN",
        default: "none",
        reload: live,
    }
    profile {
        doc: "AWS profile",
        flag: "NAME",
        default: "none",
        reload: live,
    }
    log_format {
        doc: "text or json",
        flag: "FORMAT",
        default: "text" (shown),
        reload: restart(log_format),
    }
    log_level {
        doc: "RUST_LOG-style filter",
        flag: "FILTER",
        default: "info" (shown),
        reload: restart(log_level),
    }
    allow_remote {
        doc: "Allow non-loopback listen addresses (requires client TLS and client_password)",
        flag: bool,
        default: "false",
        reload: live,
    }
    client_tls {
        doc: "Local TLS towards clients: off or self-signed",
        flag: "off|self-signed",
        default: "off" (shown),
        reload: live,
    }
    client_tls_cert {
        doc: "PEM certificate chain for local TLS (with --client-tls-key)",
        flag: "PATH",
        default: "none",
        reload: live,
    }
    client_tls_key {
        doc: "PEM private key for local TLS (with --client-tls-cert)",
        flag: "PATH",
        default: "none",
        reload: live,
    }
    client_password {
        doc: "Password clients must send; no flag, so it never shows in `ps`",
        flag: none,
        default: "none",
        reload: live,
    }
    unix_socket_mode {
        doc: "Mode of the unix sockets, octal",
        flag: "MODE",
        default: "0700" (shown),
        reload: live,
    }
}
