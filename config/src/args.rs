//! Flags of the default `run` command. Every value is optional and kept as text: "not given"
//! falls through to the environment, the file and the default, and parsing happens in one
//! place with one style of error message.

use std::path::PathBuf;

use crate::error::Origin;
use crate::file::Layers;
use crate::value::Val;

/// Options of `rds-iam-proxy [OPTIONS] [TARGET]...` (also used by `check` and `policy`).
/// Each has a config file key (`-` → `_`) and a variable `RDS_IAM_PROXY_<KEY>`.
#[derive(clap::Args, Debug, Default, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// postgres://[USER@]HOST[:PORT][/DATABASE][?KEY=VALUE&...] (postgresql:// too), or the name
    /// of a [[target]] in the config file [env: RDS_IAM_PROXY_TARGETS, space-separated]
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Config file: TOML, YAML or JSON by extension [env: RDS_IAM_PROXY_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the first target listens; further targets get the next ports [default: 127.0.0.1:5432]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Also listen on DIR/.s.PGSQL.<port> so `psql -h DIR` works
    #[arg(long, value_name = "DIR")]
    pub unix_socket: Option<String>,

    /// Signing region [default: parsed from HOST, else the AWS config's region]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Force this database user upstream, whatever the client sends
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// TCP address actually dialled (tunnel, port-forward); token and TLS still use HOST
    #[arg(long, value_name = "HOST:PORT")]
    pub connect_to: Option<String>,

    /// PEM bundle for verifying the server, or `auto` [default: auto]
    #[arg(long, value_name = "PATH|auto")]
    pub ca_file: Option<String>,

    /// Admin HTTP address (/startup, /liveness, /readiness, /metrics) [default: off]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,

    /// Client connections beyond this are refused; 0 = no limit [default: 0]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,

    /// New upstream connections per second per target [default: 150]
    #[arg(long, value_name = "N")]
    pub max_connect_rate: Option<String>,

    /// DNS + TCP + TLS + auth to upstream [default: 30s]
    #[arg(long, value_name = "DUR")]
    pub connect_timeout: Option<String>,

    /// Time a client has to send its startup packet [default: 10s]
    #[arg(long, value_name = "DUR")]
    pub startup_timeout: Option<String>,

    /// Keep accepting this long after SIGTERM [default: 0s]
    #[arg(long, value_name = "DUR")]
    pub min_sigterm_delay: Option<String>,

    /// Then drain open connections for up to this long [default: 30s]
    #[arg(long, value_name = "DUR")]
    pub max_sigterm_delay: Option<String>,

    /// Exit 0 instead of 143 on SIGTERM
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub exit_zero_on_sigterm: Option<String>,

    /// Assume this role (STS) on top of the default credentials
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,

    /// AWS profile
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// text or json [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// RUST_LOG-style filter [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Allow non-loopback listen addresses (requires client TLS and client_password)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_remote: Option<String>,

    /// Local TLS towards clients: off or self-signed [default: off]
    #[arg(long, value_name = "off|self-signed")]
    pub client_tls: Option<String>,

    /// PEM certificate chain for local TLS (with --client-tls-key)
    #[arg(long, value_name = "PATH")]
    pub client_tls_cert: Option<String>,

    /// PEM private key for local TLS (with --client-tls-cert)
    #[arg(long, value_name = "PATH")]
    pub client_tls_key: Option<String>,

    /// Mode of the unix sockets, octal [default: 0700]
    #[arg(long, value_name = "MODE")]
    pub unix_socket_mode: Option<String>,
}

impl RunArgs {
    /// Puts every given flag on top of the file and environment layers.
    pub(crate) fn overlay(&self, layers: &mut Layers) {
        let raw = &mut layers.raw;
        let mut set = |key: &str, flag: &Option<String>, slot: &mut Option<Val>| {
            if let Some(v) = flag {
                *slot = Some(Val::Str(v.clone()));
                layers.origins.insert(key.to_owned(), Origin::flag(key));
            }
        };
        set("listen", &self.listen, &mut raw.listen);
        set("unix_socket", &self.unix_socket, &mut raw.unix_socket);
        set("region", &self.region, &mut raw.region);
        set("user", &self.user, &mut raw.user);
        set("connect_to", &self.connect_to, &mut raw.connect_to);
        set("ca_file", &self.ca_file, &mut raw.ca_file);
        set("admin_listen", &self.admin_listen, &mut raw.admin_listen);
        set(
            "max_connections",
            &self.max_connections,
            &mut raw.max_connections,
        );
        set(
            "max_connect_rate",
            &self.max_connect_rate,
            &mut raw.max_connect_rate,
        );
        set(
            "connect_timeout",
            &self.connect_timeout,
            &mut raw.connect_timeout,
        );
        set(
            "startup_timeout",
            &self.startup_timeout,
            &mut raw.startup_timeout,
        );
        set(
            "min_sigterm_delay",
            &self.min_sigterm_delay,
            &mut raw.min_sigterm_delay,
        );
        set(
            "max_sigterm_delay",
            &self.max_sigterm_delay,
            &mut raw.max_sigterm_delay,
        );
        set(
            "exit_zero_on_sigterm",
            &self.exit_zero_on_sigterm,
            &mut raw.exit_zero_on_sigterm,
        );
        set("role_arn", &self.role_arn, &mut raw.role_arn);
        set("profile", &self.profile, &mut raw.profile);
        set("log_format", &self.log_format, &mut raw.log_format);
        set("log_level", &self.log_level, &mut raw.log_level);
        set("allow_remote", &self.allow_remote, &mut raw.allow_remote);
        set("client_tls", &self.client_tls, &mut raw.client_tls);
        set(
            "client_tls_cert",
            &self.client_tls_cert,
            &mut raw.client_tls_cert,
        );
        set(
            "client_tls_key",
            &self.client_tls_key,
            &mut raw.client_tls_key,
        );
        set(
            "unix_socket_mode",
            &self.unix_socket_mode,
            &mut raw.unix_socket_mode,
        );
    }
}
