//! The same settings written as TOML, YAML and JSON resolve to the same `Settings`.

mod common;

use std::num::NonZeroUsize;
use std::path::PathBuf;

use common::{ok, Dir};
use rds_iam_config::{load_file_only, CaFile, ListenAddr, Settings};

const TOML: &str = r#"
admin_listen = "127.0.0.1:9801"
max_connections = 500
connect_timeout = "5m"
unix_socket_mode = "0770"

[[target]]
name = "orders"
host = "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com"
port = 5432
region = "ap-northeast-1"        # optional: parsed from host
database = "orders"
user = "iam_user"
listen = ["127.0.0.1:5432", "unix:/var/run/postgresql"]
connect_to = "127.0.0.1:15432"
ca_file = "/etc/rds-iam-proxy/global-bundle.pem"
role_arn = "arn:aws:iam::123456789012:role/orders-db"

[[target]]
host = "billing.cluster-xyz.eu-west-1.rds.amazonaws.com"
port = "6543"
"#;

const YAML: &str = r#"
admin_listen: "127.0.0.1:9801"
max_connections: 500
connect_timeout: 5m
unix_socket_mode: "0770"
target:
  - name: orders
    host: aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com
    port: 5432
    region: ap-northeast-1
    database: orders
    user: iam_user
    listen: ["127.0.0.1:5432", "unix:/var/run/postgresql"]
    connect_to: "127.0.0.1:15432"
    ca_file: /etc/rds-iam-proxy/global-bundle.pem
    role_arn: "arn:aws:iam::123456789012:role/orders-db"
  - host: billing.cluster-xyz.eu-west-1.rds.amazonaws.com
    port: "6543"
"#;

const JSON: &str = r#"{
  "admin_listen": "127.0.0.1:9801",
  "max_connections": 500,
  "connect_timeout": "5m",
  "unix_socket_mode": "0770",
  "target": [
    {
      "name": "orders",
      "host": "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com",
      "port": 5432,
      "region": "ap-northeast-1",
      "database": "orders",
      "user": "iam_user",
      "listen": ["127.0.0.1:5432", "unix:/var/run/postgresql"],
      "connect_to": "127.0.0.1:15432",
      "ca_file": "/etc/rds-iam-proxy/global-bundle.pem",
      "role_arn": "arn:aws:iam::123456789012:role/orders-db"
    },
    {"host": "billing.cluster-xyz.eu-west-1.rds.amazonaws.com", "port": "6543"}
  ]
}"#;

fn check(s: &Settings) {
    assert_eq!(s.admin_listen, Some("127.0.0.1:9801".parse().unwrap()));
    assert_eq!(s.max_connections, NonZeroUsize::new(500));
    assert_eq!(s.connect_timeout.as_secs(), 300);
    assert_eq!(s.unix_socket_mode, 0o770);
    assert_eq!(s.targets.len(), 2);
    let t = &s.targets[0];
    assert_eq!(t.name, "orders");
    assert_eq!(
        t.host,
        "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com"
    );
    assert_eq!(t.port, 5432);
    assert_eq!(t.region.as_deref(), Some("ap-northeast-1"));
    assert_eq!(t.database.as_deref(), Some("orders"));
    assert_eq!(t.user.as_deref(), Some("iam_user"));
    assert_eq!(
        t.listen,
        vec![
            ListenAddr::Tcp("127.0.0.1:5432".parse().unwrap()),
            ListenAddr::Unix {
                dir: PathBuf::from("/var/run/postgresql"),
                port: 5432
            },
        ]
    );
    assert_eq!(
        t.listen[1].socket_path(),
        PathBuf::from("/var/run/postgresql/.s.PGSQL.5432")
    );
    assert_eq!(t.connect_to, Some(("127.0.0.1".to_owned(), 15432)));
    assert_eq!(t.dial_addr(), ("127.0.0.1", 15432));
    assert_eq!(
        t.ca_file,
        CaFile::Path("/etc/rds-iam-proxy/global-bundle.pem".into())
    );
    assert_eq!(
        t.role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/orders-db")
    );
    assert_eq!(t.profile, None);
    // The second has no listen of its own: the next port after the global listen's 5432 is
    // taken by "orders" explicitly, so it gets 5433.
    let b = &s.targets[1];
    assert_eq!(b.name, "billing");
    assert_eq!(b.port, 6543);
    assert_eq!(
        b.listen,
        vec![ListenAddr::Tcp("127.0.0.1:5433".parse().unwrap())]
    );
}

#[test]
fn toml_yaml_json_agree() {
    let dir = Dir::new();
    let mut all = Vec::new();
    for (name, text) in [
        ("c.toml", TOML),
        ("c.yaml", YAML),
        ("c.yml", YAML),
        ("c.json", JSON),
    ] {
        let path = dir.write(name, text);
        let s = load_file_only(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&s);
        assert_eq!(s.config_file.as_deref(), Some(path.as_path()));
        all.push(Settings {
            config_file: None,
            ..s
        });
    }
    assert!(all.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn name_on_command_line_picks_a_file_target() {
    let dir = Dir::new();
    let path = dir.write("c.toml", TOML);
    let s = ok(&["--config", path.to_str().unwrap(), "orders"], &[]);
    assert_eq!(s.targets.len(), 1);
    assert_eq!(s.targets[0].name, "orders");
}

#[test]
fn empty_file_still_needs_a_target() {
    let dir = Dir::new();
    let path = dir.write("c.toml", "");
    let s = ok(
        &[
            "--config",
            path.to_str().unwrap(),
            "postgres://h.example.com",
        ],
        &[],
    );
    assert_eq!(s.targets[0].host, "h.example.com");
}

#[test]
fn empty_files_of_every_format() {
    let dir = Dir::new();
    for (name, text) in [
        ("e.toml", ""),
        ("e.yaml", ""),
        ("e.yml", "# nothing\n"),
        ("e.json", "{}"),
    ] {
        let path = dir.write(name, text);
        let s = ok(
            &[
                "--config",
                path.to_str().unwrap(),
                "postgres://h.example.com",
            ],
            &[],
        );
        assert_eq!(s.max_connect_rate, 150, "{name}");
    }
}
