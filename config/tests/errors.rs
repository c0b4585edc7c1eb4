//! Every validation error: one row each, asserting the key it names and the message.

mod common;

use common::{cli, env, Dir};
use rds_iam_config::load;

const T: &str = "postgres://db.example.com";
const T2: &str = "postgres://db2.example.com";

struct Case {
    argv: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// Written to a temp file and passed as `--config FILE` (placeholder `{file}` not needed).
    file: Option<(&'static str, &'static str)>,
    key: &'static str,
    contains: &'static [&'static str],
}

const fn case(
    argv: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    key: &'static str,
    contains: &'static [&'static str],
) -> Case {
    Case {
        argv,
        env,
        file: None,
        key,
        contains,
    }
}

const fn file_case(
    name: &'static str,
    text: &'static str,
    argv: &'static [&'static str],
    key: &'static str,
    contains: &'static [&'static str],
) -> Case {
    Case {
        argv,
        env: &[],
        file: Some((name, text)),
        key,
        contains,
    }
}

const CASES: &[Case] = &[
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
    // Unknown keys.
    file_case(
        "c.toml",
        "foo = 1",
        &[T],
        "foo",
        &["unknown key \"foo\"", "c.toml", "max_connections"],
    ),
    file_case(
        "c.toml",
        "config = \"x.toml\"",
        &[T],
        "config",
        &["unknown key \"config\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nsslmode = \"require\"",
        &[],
        "sslmode",
        &["unknown key \"sslmode\"", "target[0]", "role_arn"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_FOO", "1")],
        "RDS_IAM_PROXY_FOO",
        &["RDS_IAM_PROXY_MAX_CONNECTIONS"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_TARGET", "x")],
        "RDS_IAM_PROXY_TARGET",
        &["RDS_IAM_PROXY_TARGETS"],
    ),
    case(
        &[T],
        &[("RDS_IAM_PROXY_max_connections", "1")],
        "RDS_IAM_PROXY_max_connections",
        &["unknown"],
    ),
    case(
        &["postgres://h.example.com?sslmode=require"],
        &[],
        "sslmode",
        &["unknown key \"sslmode\"", "ca_file"],
    ),
    // TARGET URLs.
    case(
        &["postgres://u:hunter2@h.example.com"],
        &[],
        "TARGET",
        &["must not contain a password"],
    ),
    case(
        &["mysql://h.example.com"],
        &[],
        "TARGET",
        &["\"mysql://h.example.com\"", "postgres://"],
    ),
    case(&["postgres:///db"], &[], "TARGET", &["no host"]),
    case(
        &["postgres://h.example.com:99999"],
        &[],
        "TARGET",
        &["\"postgres://h.example.com:99999\""],
    ),
    case(&["postgres://h.example.com:0"], &[], "port", &["\"0\""]),
    case(
        &["postgres://h.example.com/a/b"],
        &[],
        "TARGET",
        &["single database name"],
    ),
    case(
        &["postgres://u@h.example.com?user=v"],
        &[],
        "user",
        &["more than once"],
    ),
    case(
        &["postgres://h.example.com?listen=nope"],
        &[],
        "listen",
        &["\"nope\"", "unix:DIR", "in TARGET"],
    ),
    case(
        &["postgres://h.example.com?listen=unix:"],
        &[],
        "listen",
        &["\"unix:\""],
    ),
    case(
        &["orders"],
        &[],
        "TARGET",
        &["\"orders\"", "no config file given"],
    ),
    case(
        &[],
        &[],
        "target",
        &["missing target", "at least one TARGET"],
    ),
    // Files.
    file_case(
        "c.toml",
        "[[target]]\nname = \"a\"",
        &[],
        "host",
        &["missing host", "[[target]] \"a\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nport = 70000",
        &[],
        "port",
        &["\"70000\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nhost = \"h\"\nlisten = []",
        &[],
        "listen",
        &["\"[]\""],
    ),
    file_case(
        "c.toml",
        "[[target]]\nname = \"a\"\nhost = \"h\"",
        &["b"],
        "TARGET",
        &["\"b\"", "known: a"],
    ),
    file_case(
        "c.yaml",
        "target:\n  host: h\n",
        &[],
        "target",
        &["list of [[target]] tables"],
    ),
    file_case(
        "c.toml",
        "client_password = \"\"",
        &[T],
        "client_password",
        &["<redacted>"],
    ),
    file_case(
        "c.toml",
        "max_connections = [",
        &[T],
        "config",
        &["cannot read config file"],
    ),
    file_case(
        "c.json",
        "{\"max_connections\": }",
        &[T],
        "config",
        &["cannot read config file"],
    ),
    file_case(
        "c.ini",
        "max_connections = 1",
        &[T],
        "config",
        &["c.ini\"", ".toml, .yaml, .yml or .json"],
    ),
    case(
        &["--config=/nonexistent/c.toml", T],
        &[],
        "config",
        &["/nonexistent/c.toml"],
    ),
];

#[test]
fn every_error_names_its_key() {
    for c in CASES {
        let dir = Dir::new();
        let mut argv: Vec<String> = Vec::new();
        if let Some((name, text)) = c.file {
            argv.push("--config".into());
            argv.push(dir.write(name, text).to_str().unwrap().to_owned());
        }
        argv.extend(c.argv.iter().map(|s| (*s).to_owned()));
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let err = match load(&cli(&argv_ref), &env(c.env)) {
            Ok(s) => panic!("{argv:?} {:?}: expected an error, got {s:#?}", c.env),
            Err(e) => e,
        };
        let msg = err.to_string();
        println!("{msg}");
        assert_eq!(err.key(), c.key, "{argv:?} {:?}: {msg}", c.env);
        assert!(msg.contains(c.key), "message must name the key: {msg}");
        for want in c.contains {
            assert!(msg.contains(want), "{argv:?}: {msg:?} lacks {want:?}");
        }
        assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    }
}

/// Regression: an unparsable `log_level` was accepted here and the proxy's logging quietly fell
/// back to `info`; it must fail like any other invalid setting, whichever layer sets it.
#[test]
fn log_level_must_be_a_filter_the_logger_accepts() {
    for bad in ["info,foo=notalevel", "foo=bogus", "==", "=info", "foo=6"] {
        let flag = format!("--log-level={bad}");
        for (argv, vars, origin) in [
            (
                vec![flag.as_str(), T],
                vec![],
                "from --log-level".to_owned(),
            ),
            (
                vec![T],
                vec![("RDS_IAM_PROXY_LOG_LEVEL", bad)],
                "from environment variable RDS_IAM_PROXY_LOG_LEVEL".to_owned(),
            ),
        ] {
            let err = match load(&cli(&argv), &env(&vars)) {
                Ok(s) => panic!("{bad:?}: accepted as {:?}", s.log_level),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert_eq!(err.key(), "log_level", "{msg}");
            let want = format!("invalid value {bad:?} for log_level: expected a RUST_LOG-style");
            assert!(msg.contains(&want), "{msg}");
            assert!(msg.contains(&origin), "{msg}");
        }
    }
    for good in [
        "info",
        "debug",
        "off",
        "rds_iam_proxy=trace,warn",
        "WARN",
        "3",
    ] {
        let flag = format!("--log-level={good}");
        let s = load(&cli(&[&flag, T]), &env(&[])).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        assert_eq!(s.log_level, good);
    }
}
