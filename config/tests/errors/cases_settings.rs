//! Validation errors of top-level settings: scalars from each layer, and settings that do not
//! combine.

use super::{case, file_case, Case, T, T2};

pub const CASES: &[Case] = &[
    // Scalars, from each layer.
    case(
        &[T],
        &[("RDS_IAM_PROXY_MAX_CONNECTIONS", "abc")],
        "max_connections",
        &[
            "invalid value \"abc\" for max_connections: expected a non-negative integer",
            "RDS_IAM_PROXY_MAX_CONNECTIONS",
        ],
    ),
    case(
        &["--max-connections=-1", T],
        &[],
        "max_connections",
        &["\"-1\"", "from --max-connections"],
    ),
    case(
        &["--max-connect-rate=0", T],
        &[],
        "max_connect_rate",
        &["\"0\"", "positive integer"],
    ),
    case(
        &["--max-connect-rate=5000000000", T],
        &[],
        "max_connect_rate",
        &["\"5000000000\""],
    ),
    case(
        &["--connect-timeout=soon", T],
        &[],
        "connect_timeout",
        &["\"soon\"", "duration"],
    ),
    case(
        &["--connect-timeout=0s", T],
        &[],
        "connect_timeout",
        &["above zero"],
    ),
    case(
        &["--pool-mode=transaction", T],
        &[],
        "pool_mode",
        &["\"transaction\"", "none or session"],
    ),
    case(
        &["--topology=rds", T],
        &[],
        "topology",
        &["\"rds\"", "auto, aurora or off"],
    ),
    case(
        &["--topology-refresh=0s", T],
        &[],
        "topology_refresh",
        &["above zero"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_MAX_REPLICA_LAG", "soon")],
        "max_replica_lag",
        &["\"soon\""],
    ),
    case(
        &["--pool-max-idle=-1", T],
        &[],
        "pool_max_idle",
        &["\"-1\"", "0-100000"],
    ),
    case(
        &["--server-lifetime=0s", T],
        &[],
        "server_lifetime",
        &["above zero"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_SERVER_RESET_QUERY", "  ")],
        "server_reset_query",
        &["\"  \"", "non-empty string"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_STARTUP_TIMEOUT", "0")],
        "startup_timeout",
        &["\"0\"", "above zero"],
    ),
    file_case(
        "c.toml",
        "min_sigterm_delay = \"x\"",
        &[T],
        "min_sigterm_delay",
        &["\"x\"", "c.toml"],
    ),
    file_case(
        "c.toml",
        "max_sigterm_delay = 5",
        &[T],
        "max_sigterm_delay",
        &["\"5\"", "\"30s\""],
    ),
    case(
        &["--exit-zero-on-sigterm=maybe", T],
        &[],
        "exit_zero_on_sigterm",
        &["\"maybe\"", "true or false"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_ALLOW_REMOTE", "perhaps")],
        "allow_remote",
        &["\"perhaps\""],
    ),
    case(
        &["--log-format=xml", T],
        &[],
        "log_format",
        &["\"xml\"", "text or json"],
    ),
    case(&["--log-level=", T], &[], "log_level", &["non-empty"]),
    // Used to be accepted and silently replaced by `info` when the proxy set up logging.
    case(
        &["--log-level=info,foo=notalevel", T],
        &[],
        "log_level",
        &[
            "invalid value \"info,foo=notalevel\" for log_level",
            "RUST_LOG-style filter",
            "from --log-level",
        ],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_LOG_LEVEL", "rds_iam_proxy=loud")],
        "log_level",
        &["\"rds_iam_proxy=loud\"", "RDS_IAM_PROXY_LOG_LEVEL"],
    ),
    file_case(
        "c.toml",
        "log_level = \"[{\"",
        &[T],
        "log_level",
        &["\"[{\"", "c.toml"],
    ),
    case(
        &["--unix-socket-mode=0800", T],
        &[],
        "unix_socket_mode",
        &["\"0800\"", "octal"],
    ),
    file_case(
        "c.yaml",
        "unix_socket_mode: 700",
        &[T],
        "unix_socket_mode",
        &["\"700\"", "0700"],
    ),
    case(
        &["--listen=nope", T],
        &[],
        "listen",
        &["\"nope\"", "IP:PORT"],
    ),
    case(
        &["--listen=db.example.com:5432", T],
        &[],
        "listen",
        &["\"db.example.com:5432\""],
    ),
    case(
        &["--listen=unix:/tmp", T],
        &[],
        "listen",
        &["\"unix:/tmp\""],
    ),
    case(
        &["--listen=127.0.0.1:65535", T, T2],
        &[],
        "listen",
        &["enough free ports"],
    ),
    case(&["--admin-listen=x", T], &[], "admin_listen", &["\"x\""]),
    case(&["--unix-socket=", T], &[], "unix_socket", &["path"]),
    case(&["--ca-file=", T], &[], "ca_file", &["\"\""]),
    case(
        &["--connect-to=noport", T],
        &[],
        "connect_to",
        &["\"noport\"", "HOST:PORT"],
    ),
    case(
        &["--connect-to=::1:5432", T],
        &[],
        "connect_to",
        &["\"::1:5432\""],
    ),
    case(&["--connect-to=h:0", T], &[], "connect_to", &["\"h:0\""]),
    case(&["--region=", T], &[], "region", &["non-empty"]),
    // Settings that do not combine.
    case(
        &["--connect-to=127.0.0.1:1", T, T2],
        &[],
        "connect_to",
        &["2 targets", "per target"],
    ),
    case(
        &["--client-tls=on", T],
        &[],
        "client_tls",
        &["\"on\"", "off or self-signed"],
    ),
    case(
        &["--client-tls-cert=/c.pem", T],
        &[],
        "client_tls_key",
        &["missing client_tls_key", "--client-tls-cert"],
    ),
    case(
        &["--client-tls-key=/k.pem", T],
        &[],
        "client_tls_cert",
        &["missing client_tls_cert"],
    ),
    case(
        &[
            "--client-tls=self-signed",
            "--client-tls-cert=/c",
            "--client-tls-key=/k",
            T,
        ],
        &[],
        "client_tls",
        &["cannot be combined"],
    ),
    case(
        &["--allow-remote", T],
        &[],
        "allow_remote",
        &["requires client TLS", "client_password"],
    ),
    case(
        &["--allow-remote", "--client-tls=self-signed", T],
        &[],
        "allow_remote",
        &["client_password", "from --allow-remote"],
    ),
    case(
        &["--listen=0.0.0.0:5432", T],
        &[],
        "listen",
        &["\"0.0.0.0:5432\"", "loopback", "allow_remote"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_LISTEN", "[2001:db8::1]:5432")],
        "listen",
        &["loopback", "RDS_IAM_PROXY_LISTEN"],
    ),
    case(
        &["postgres://a.example.com?listen=10.1.2.3:5432"],
        &[],
        "listen",
        &["\"10.1.2.3:5432\"", "target \"a\""],
    ),
    case(
        &[
            T,
            "postgres://b.example.com?listen=127.0.0.1:5432&listen=127.0.0.1:5432",
        ],
        &[],
        "listen",
        &["\"127.0.0.1:5432\"", "listed twice for target \"b\""],
    ),
    case(
        &[
            "postgres://a.example.com?listen=unix:/run",
            "postgres://b.example.com?listen=unix:/run",
        ],
        &[],
        "listen",
        &[
            "unix:/run/.s.PGSQL.5432",
            "used by both target \"a\" and target \"b\"",
        ],
    ),
    case(
        &["--admin-listen=127.0.0.1:5432", T],
        &[],
        "admin_listen",
        &["already listens"],
    ),
    case(
        &[
            "postgres://a.example.com?name=x",
            "postgres://b.example.com?name=x",
        ],
        &[],
        "name",
        &["\"x\"", "unique"],
    ),
];
