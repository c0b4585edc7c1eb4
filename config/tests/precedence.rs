//! flag > environment > file > default, key by key.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use common::{cli, env, ok, Dir};
use rds_iam_config::{load, CaFile, ClientTls, ListenAddr, LogFormat, Settings};

const T: &str = "postgres://db.example.com";

struct Row {
    key: &'static str,
    file: &'static str,
    env: &'static str,
    flag: &'static str,
    /// What the setting reads as with: nothing, the file, file + env, file + env + flag.
    expect: [&'static str; 4],
    get: fn(&Settings) -> String,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            key: "max_connections",
            file: "500",
            env: "600",
            flag: "700",
            expect: ["None", "Some(500)", "Some(600)", "Some(700)"],
            get: |s| format!("{:?}", s.max_connections.map(NonZeroUsize::get)),
        },
        Row {
            key: "max_connect_rate",
            file: "10",
            env: "20",
            flag: "30",
            expect: ["150", "10", "20", "30"],
            get: |s| s.max_connect_rate.to_string(),
        },
        Row {
            key: "connect_timeout",
            file: "\"5s\"",
            env: "1m",
            flag: "1m 30s",
            expect: ["30s", "5s", "60s", "90s"],
            get: |s| format!("{:?}", s.connect_timeout),
        },
        Row {
            key: "pool_mode",
            file: "\"session\"",
            env: "none",
            flag: "Session",
            expect: ["None", "Session", "None", "Session"],
            get: |s| format!("{:?}", s.targets[0].pool_mode),
        },
        Row {
            key: "topology",
            file: "\"off\"",
            env: "aurora",
            flag: "AUTO",
            expect: ["Auto", "Off", "Aurora", "Auto"],
            get: |s| format!("{:?}", s.targets[0].topology),
        },
        Row {
            key: "topology_refresh",
            file: "\"5s\"",
            env: "1m",
            flag: "2s",
            expect: ["30s", "5s", "60s", "2s"],
            get: |s| format!("{:?}", s.topology.refresh),
        },
        Row {
            key: "max_replica_lag",
            file: "\"1s\"",
            env: "500ms",
            flag: "20s",
            expect: ["10s", "1s", "500ms", "20s"],
            get: |s| format!("{:?}", s.topology.max_replica_lag),
        },
        Row {
            key: "topology_user",
            file: "\"monitor\"",
            env: "m2",
            flag: "m3",
            expect: ["None", "Some(\"monitor\")", "Some(\"m2\")", "Some(\"m3\")"],
            get: |s| format!("{:?}", s.topology.user),
        },
        Row {
            key: "pool_max_idle",
            file: "2",
            env: "0",
            flag: "16",
            expect: ["8", "2", "0", "16"],
            get: |s| s.pool.max_idle.to_string(),
        },
        Row {
            key: "server_idle_timeout",
            file: "\"30s\"",
            env: "1m",
            flag: "2m",
            expect: ["300s", "30s", "60s", "120s"],
            get: |s| format!("{:?}", s.pool.idle_timeout),
        },
        Row {
            key: "server_lifetime",
            file: "\"10m\"",
            env: "20m",
            flag: "2h",
            expect: ["3600s", "600s", "1200s", "7200s"],
            get: |s| format!("{:?}", s.pool.lifetime),
        },
        Row {
            key: "server_reset_query",
            file: "\"RESET ALL\"",
            env: "DISCARD TEMP",
            flag: "SELECT 1",
            expect: ["DISCARD ALL", "RESET ALL", "DISCARD TEMP", "SELECT 1"],
            get: |s| s.pool.reset_query.clone(),
        },
        Row {
            key: "startup_timeout",
            file: "\"1s\"",
            env: "2s",
            flag: "3s",
            expect: ["10s", "1s", "2s", "3s"],
            get: |s| format!("{:?}", s.startup_timeout),
        },
        Row {
            key: "min_sigterm_delay",
            file: "\"1s\"",
            env: "2s",
            flag: "0",
            expect: ["0ns", "1s", "2s", "0ns"],
            get: |s| format!("{:?}", s.min_sigterm_delay),
        },
        Row {
            key: "max_sigterm_delay",
            file: "\"1m\"",
            env: "2m",
            flag: "3m",
            expect: ["30s", "60s", "120s", "180s"],
            get: |s| format!("{:?}", s.max_sigterm_delay),
        },
        Row {
            key: "log_format",
            file: "\"json\"",
            env: "text",
            flag: "JSON",
            expect: ["Text", "Json", "Text", "Json"],
            get: |s| format!("{:?}", s.log_format),
        },
        Row {
            key: "log_level",
            file: "\"debug\"",
            env: "warn",
            flag: "rds_iam_proxy=trace",
            expect: ["info", "debug", "warn", "rds_iam_proxy=trace"],
            get: |s| s.log_level.clone(),
        },
        Row {
            key: "exit_zero_on_sigterm",
            file: "true",
            env: "false",
            flag: "",
            expect: ["false", "true", "false", "true"],
            get: |s| s.exit_zero_on_sigterm.to_string(),
        },
        Row {
            key: "region",
            file: "\"eu-west-1\"",
            env: "us-east-1",
            flag: "ap-northeast-1",
            expect: [
                "None",
                "Some(\"eu-west-1\")",
                "Some(\"us-east-1\")",
                "Some(\"ap-northeast-1\")",
            ],
            get: |s| format!("{:?}", s.targets[0].region),
        },
        Row {
            key: "user",
            file: "\"a\"",
            env: "b",
            flag: "c",
            expect: ["None", "Some(\"a\")", "Some(\"b\")", "Some(\"c\")"],
            get: |s| format!("{:?}", s.targets[0].user),
        },
        Row {
            key: "listen",
            file: "\"127.0.0.1:6000\"",
            env: "127.0.0.2:6001",
            flag: "[::1]:6002",
            expect: [
                "127.0.0.1:5432",
                "127.0.0.1:6000",
                "127.0.0.2:6001",
                "[::1]:6002",
            ],
            get: |s| s.targets[0].listen[0].to_string(),
        },
        Row {
            key: "admin_listen",
            file: "\"127.0.0.1:9801\"",
            env: "127.0.0.1:9802",
            flag: "off",
            expect: [
                "None",
                "Some(127.0.0.1:9801)",
                "Some(127.0.0.1:9802)",
                "None",
            ],
            get: |s| format!("{:?}", s.admin_listen),
        },
        Row {
            key: "ca_file",
            file: "\"/etc/a.pem\"",
            env: "/etc/b.pem",
            flag: "auto",
            expect: [
                "Auto",
                "Path(\"/etc/a.pem\")",
                "Path(\"/etc/b.pem\")",
                "Auto",
            ],
            get: |s| format!("{:?}", s.targets[0].ca_file),
        },
        Row {
            key: "connect_to",
            file: "\"127.0.0.1:1\"",
            env: "127.0.0.1:2",
            flag: "localhost:3",
            expect: [
                "None",
                "Some((\"127.0.0.1\", 1))",
                "Some((\"127.0.0.1\", 2))",
                "Some((\"localhost\", 3))",
            ],
            get: |s| format!("{:?}", s.targets[0].connect_to),
        },
        Row {
            key: "role_arn",
            file: "\"arn:a\"",
            env: "arn:b",
            flag: "arn:c",
            expect: [
                "None",
                "Some(\"arn:a\")",
                "Some(\"arn:b\")",
                "Some(\"arn:c\")",
            ],
            get: |s| format!("{:?}", s.targets[0].role_arn),
        },
        Row {
            key: "profile",
            file: "\"p1\"",
            env: "p2",
            flag: "p3",
            expect: ["None", "Some(\"p1\")", "Some(\"p2\")", "Some(\"p3\")"],
            get: |s| format!("{:?}", s.targets[0].profile),
        },
        Row {
            key: "unix_socket_mode",
            file: "0o770",
            env: "0777",
            flag: "600",
            expect: ["0o700", "0o770", "0o777", "0o600"],
            get: |s| format!("{:#o}", s.unix_socket_mode),
        },
        Row {
            key: "unix_socket",
            file: "\"/run/a\"",
            env: "/run/b",
            flag: "/run/c",
            expect: [
                "None",
                "Some(\"/run/a/.s.PGSQL.5432\")",
                "Some(\"/run/b/.s.PGSQL.5432\")",
                "Some(\"/run/c/.s.PGSQL.5432\")",
            ],
            get: |s| {
                format!(
                    "{:?}",
                    s.targets[0].listen.get(1).map(ListenAddr::socket_path)
                )
            },
        },
        Row {
            key: "client_tls",
            file: "\"self-signed\"",
            env: "off",
            flag: "self-signed",
            expect: ["Off", "SelfSigned", "Off", "SelfSigned"],
            get: |s| format!("{:?}", s.client_tls),
        },
    ]
}

/// argv and environment of one precedence level.
type Layers<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[test]
fn flag_beats_env_beats_file_beats_default() {
    for row in rows() {
        let dir = Dir::new();
        let file = dir.write("c.toml", &format!("{} = {}\n", row.key, row.file));
        let file = file.to_str().unwrap();
        let var = format!("RDS_IAM_PROXY_{}", row.key.to_uppercase());
        let flag = format!("--{}", row.key.replace('_', "-"));
        let flag_arg = if row.flag.is_empty() {
            flag.clone()
        } else {
            format!("{flag}={}", row.flag)
        };
        let cases: [Layers<'_>; 4] = [
            (vec![T], vec![]),
            (vec!["--config", file, T], vec![]),
            (vec!["--config", file, T], vec![(var.as_str(), row.env)]),
            (
                vec!["--config", file, &flag_arg, T],
                vec![(var.as_str(), row.env)],
            ),
        ];
        for (level, ((argv, vars), want)) in cases.iter().zip(row.expect).enumerate() {
            let got = (row.get)(&ok(argv, vars));
            assert_eq!(got, want, "key {} level {level}", row.key);
        }
    }
}

#[test]
fn defaults() {
    let s = ok(&[T], &[]);
    assert_eq!(s.targets.len(), 1);
    let t = &s.targets[0];
    assert_eq!(t.name, "db");
    assert_eq!(t.host, "db.example.com");
    assert_eq!(t.port, 5432);
    assert_eq!(
        t.listen,
        vec![ListenAddr::Tcp("127.0.0.1:5432".parse().unwrap())]
    );
    assert_eq!(t.ca_file, CaFile::Auto);
    assert_eq!(t.connect_to, None);
    assert_eq!(t.dial_addr(), ("db.example.com", 5432));
    assert_eq!(s.admin_listen, None);
    assert_eq!(s.max_connections, None);
    assert_eq!(s.max_connect_rate, 150);
    assert_eq!(s.connect_timeout, Duration::from_secs(30));
    assert_eq!(s.startup_timeout, Duration::from_secs(10));
    assert_eq!(s.min_sigterm_delay, Duration::ZERO);
    assert_eq!(s.max_sigterm_delay, Duration::from_secs(30));
    assert!(!s.exit_zero_on_sigterm);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.log_level, "info");
    assert!(!s.allow_remote);
    assert_eq!(s.unix_socket_mode, 0o700);
    assert_eq!(s.client_tls, ClientTls::Off);
    assert_eq!(s.client_password, None);
    assert_eq!(s.config_file, None);
}

#[test]
fn bool_flags_take_optional_values_and_override_env() {
    let s = ok(
        &["--exit-zero-on-sigterm=false", T],
        &[("RDS_IAM_PROXY_EXIT_ZERO_ON_SIGTERM", "yes")],
    );
    assert!(!s.exit_zero_on_sigterm);
    let s = ok(&["--exit-zero-on-sigterm", T], &[]);
    assert!(s.exit_zero_on_sigterm);
}

#[test]
fn config_and_targets_from_env() {
    let dir = Dir::new();
    let file = dir.write(
        "c.toml",
        "[[target]]\nname = \"a\"\nhost = \"a.example.com\"\n[[target]]\nname = \"b\"\nhost = \"b.example.com\"\n",
    );
    let vars = [
        ("RDS_IAM_PROXY_CONFIG", file.to_str().unwrap()),
        ("RDS_IAM_PROXY_TARGETS", "b postgres://c.example.com"),
    ];
    let s = ok(&[], &vars);
    let names: Vec<_> = s.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(s.config_file.as_deref(), Some(file.as_path()));
    // Positional targets replace the variable; no targets run every [[target]].
    assert_eq!(ok(&["a"], &vars).targets.len(), 1);
    assert_eq!(ok(&[], &vars[..1]).targets.len(), 2);
}

#[test]
fn empty_env_values_count_as_unset() {
    let s = ok(
        &[T],
        &[
            ("RDS_IAM_PROXY_MAX_CONNECTIONS", ""),
            ("RDS_IAM_PROXY_CONFIG", ""),
        ],
    );
    assert_eq!(s.max_connections, None);
}

#[test]
fn unrelated_env_is_ignored() {
    let s = ok(
        &[T],
        &[("PATH", "/bin"), ("RUST_LOG", "trace"), ("PGHOST", "x")],
    );
    assert_eq!(s.log_level, "info");
}

#[test]
fn reload_and_file_only_reread_the_file() {
    let dir = Dir::new();
    let file = dir.write(
        "c.toml",
        "max_connections = 1\n[[target]]\nhost = \"a.example.com\"\n",
    );
    let args = cli(&["--config", file.to_str().unwrap()]);
    let vars = env(&[("RDS_IAM_PROXY_MAX_CONNECTIONS", "5")]);
    assert_eq!(
        load(&args, &vars).unwrap().max_connections,
        NonZeroUsize::new(5)
    );
    std::fs::write(
        &file,
        "max_connect_rate = 7\n[[target]]\nhost = \"b.example.com\"\n",
    )
    .unwrap();
    let s = rds_iam_config::reload(&args, &vars).unwrap();
    assert_eq!(
        (s.max_connect_rate, s.targets[0].host.as_str()),
        (7, "b.example.com")
    );
    let s = rds_iam_config::load_file_only(&file).unwrap();
    assert_eq!(s.max_connections, None);
    assert_eq!(
        s.targets[0].listen[0],
        ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 5432)))
    );
}

#[test]
fn clap_definition_is_valid() {
    use clap::CommandFactory;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: rds_iam_config::RunArgs,
    }
    Cli::command().debug_assert();
    let help = Cli::command().render_help().to_string();
    for flag in [
        "--listen <ADDR>",
        "--unix-socket <DIR>",
        "--allow-remote[=<BOOL>]",
        "[TARGET]...",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
