//! TARGET URLs, global defaults for targets, listen port assignment and unix sockets.

mod common;

use std::path::PathBuf;

use common::{ok, Dir};
use rds_iam_config::{CaFile, ListenAddr, PoolMode, Target, Topology};

fn tcp(s: &str) -> ListenAddr {
    ListenAddr::Tcp(s.parse().unwrap())
}

fn unix(dir: &str, port: u16) -> ListenAddr {
    ListenAddr::Unix {
        dir: PathBuf::from(dir),
        port,
    }
}

fn one(url: &str) -> Target {
    let s = ok(&[url], &[]);
    assert_eq!(s.targets.len(), 1);
    s.targets.into_iter().next().unwrap()
}

#[test]
fn url_cases() {
    // (url, name, host, port, user, database)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        u16,
        Option<&'static str>,
        Option<&'static str>,
    );
    let rows: &[Row] = &[
        ("postgres://db.example.com", "db", "db.example.com", 5432, None, None),
        ("postgresql://db.example.com", "db", "db.example.com", 5432, None, None),
        ("postgres://u@db.example.com:6432/app", "db", "db.example.com", 6432, Some("u"), Some("app")),
        ("postgres://db.example.com/", "db", "db.example.com", 5432, None, None),
        ("postgres://me%40corp.com@db.example.com/my%20db", "db", "db.example.com", 5432, Some("me@corp.com"), Some("my db")),
        ("postgres://[::1]:5433/app", "::1", "::1", 5433, None, Some("app")),
        ("postgres://u@[::1]", "::1", "::1", 5432, Some("u"), None),
        ("postgres://127.0.0.1:15432", "127.0.0.1", "127.0.0.1", 15432, None, None),
        (
            "postgres://iam_user@aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com/orders",
            "aurorapgsqlv1",
            "aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com",
            5432,
            Some("iam_user"),
            Some("orders"),
        ),
    ];
    for &(url, name, host, port, user, db) in rows {
        let t = one(url);
        assert_eq!(
            (
                t.name.as_str(),
                t.host.as_str(),
                t.port,
                t.user.as_deref(),
                t.database.as_deref()
            ),
            (name, host, port, user, db),
            "{url}"
        );
    }
}

#[test]
fn url_query_keys() {
    let t = one(
        "postgres://h.example.com/db?region=eu-west-1&listen=127.0.0.1:7000&listen=unix:/tmp/s\
         &connect_to=localhost:15432&ca_file=/etc/ca.pem&user=alice&role_arn=arn:aws:iam::1:role/r\
         &profile=dev&name=main",
    );
    assert_eq!(t.name, "main");
    assert_eq!(t.region.as_deref(), Some("eu-west-1"));
    assert_eq!(t.listen, vec![tcp("127.0.0.1:7000"), unix("/tmp/s", 7000)]);
    assert_eq!(t.connect_to, Some(("localhost".into(), 15432)));
    assert_eq!(t.ca_file, CaFile::Path("/etc/ca.pem".into()));
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!(t.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
    assert_eq!(t.profile.as_deref(), Some("dev"));
    assert_eq!(t.database.as_deref(), Some("db"));

    // Percent-encoded query values are decoded; `database` may come from the query too.
    let t = one("postgres://h.example.com?database=a%2Fb&user=x%40y");
    assert_eq!(
        (t.database.as_deref(), t.user.as_deref()),
        (Some("a/b"), Some("x@y"))
    );
}

#[test]
fn pool_mode_is_global_default_and_per_target() {
    let s = ok(
        &[
            "--pool-mode=session",
            "postgres://a.example.com",
            "postgres://b.example.com?pool_mode=none",
        ],
        &[],
    );
    assert_eq!(
        (s.targets[0].pool_mode, s.targets[1].pool_mode),
        (PoolMode::Session, PoolMode::None)
    );
    let dir = Dir::new();
    let path = dir.write(
        "p.toml",
        "[[target]]\nhost = \"a.example.com\"\n\n[[target]]\nhost = \"b.example.com\"\npool_mode = \"session\"\n",
    );
    let s = ok(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(
        (s.targets[0].pool_mode, s.targets[1].pool_mode),
        (PoolMode::None, PoolMode::Session)
    );
}

#[test]
fn topology_is_global_default_and_per_target() {
    let s = ok(
        &[
            "--topology=off",
            "postgres://a.cluster-x.us-east-1.rds.amazonaws.com",
            "postgres://b.cluster-x.us-east-1.rds.amazonaws.com?topology=aurora",
        ],
        &[],
    );
    assert_eq!(
        (s.targets[0].topology, s.targets[1].topology),
        (Topology::Off, Topology::Aurora)
    );
    let dir = Dir::new();
    let path = dir.write(
        "t.toml",
        "[[target]]\nhost = \"a.example.com\"\n\n[[target]]\nhost = \"b.example.com\"\ntopology = \"off\"\n",
    );
    let s = ok(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(
        (s.targets[0].topology, s.targets[1].topology),
        (Topology::Auto, Topology::Off)
    );
}

#[test]
fn globals_are_defaults_for_targets() {
    let s = ok(
        &[
            "--region=us-east-1",
            "--user=svc",
            "--ca-file=/ca.pem",
            "--role-arn=arn:g",
            "--profile=g",
            "postgres://a.example.com",
            "postgres://own@b.example.com?region=eu-west-1&ca_file=auto&role_arn=arn:b&profile=b",
        ],
        &[],
    );
    let [a, b] = &s.targets[..] else { panic!() };
    assert_eq!(
        (
            a.region.as_deref(),
            a.user.as_deref(),
            &a.ca_file,
            a.role_arn.as_deref(),
            a.profile.as_deref()
        ),
        (
            Some("us-east-1"),
            Some("svc"),
            &CaFile::Path("/ca.pem".into()),
            Some("arn:g"),
            Some("g")
        )
    );
    assert_eq!(
        (
            b.region.as_deref(),
            b.user.as_deref(),
            &b.ca_file,
            b.role_arn.as_deref(),
            b.profile.as_deref()
        ),
        (
            Some("eu-west-1"),
            Some("own"),
            &CaFile::Auto,
            Some("arn:b"),
            Some("b")
        )
    );
}

#[test]
fn global_connect_to_with_one_target_or_others_set_their_own() {
    let s = ok(
        &["--connect-to=127.0.0.1:15432", "postgres://a.example.com"],
        &[],
    );
    assert_eq!(s.targets[0].connect_to, Some(("127.0.0.1".into(), 15432)));
    let s = ok(
        &[
            "--connect-to=[::1]:1",
            "postgres://a.example.com",
            "postgres://b.example.com?connect_to=127.0.0.1:2",
        ],
        &[],
    );
    assert_eq!(s.targets[0].connect_to, Some(("::1".into(), 1)));
    assert_eq!(s.targets[1].connect_to, Some(("127.0.0.1".into(), 2)));
}

#[test]
fn ports_auto_increment_across_three_targets() {
    let urls = [
        "postgres://a.example.com",
        "postgres://b.example.com",
        "postgres://c.example.com",
    ];
    let listens = |argv: &[&str]| -> Vec<Vec<ListenAddr>> {
        ok(argv, &[])
            .targets
            .into_iter()
            .map(|t| t.listen)
            .collect()
    };
    assert_eq!(
        listens(&urls),
        [
            vec![tcp("127.0.0.1:5432")],
            vec![tcp("127.0.0.1:5433")],
            vec![tcp("127.0.0.1:5434")]
        ]
    );
    let mut argv = vec!["--listen=[::1]:7000"];
    argv.extend(urls);
    assert_eq!(
        listens(&argv),
        [
            vec![tcp("[::1]:7000")],
            vec![tcp("[::1]:7001")],
            vec![tcp("[::1]:7002")]
        ]
    );
    // A target with its own listen keeps it; the others skip the port it took.
    let argv = [
        "postgres://a.example.com",
        "postgres://b.example.com?listen=127.0.0.1:5433",
        "postgres://c.example.com",
    ];
    assert_eq!(
        listens(&argv),
        [
            vec![tcp("127.0.0.1:5432")],
            vec![tcp("127.0.0.1:5433")],
            vec![tcp("127.0.0.1:5434")]
        ]
    );
    let argv = [
        "postgres://a.example.com?listen=127.0.0.1:5432",
        "postgres://b.example.com",
        "postgres://c.example.com",
    ];
    assert_eq!(
        listens(&argv),
        [
            vec![tcp("127.0.0.1:5432")],
            vec![tcp("127.0.0.1:5433")],
            vec![tcp("127.0.0.1:5434")]
        ]
    );
    // Bare ports and localhost mean loopback.
    assert_eq!(
        listens(&["--listen=6000", urls[0]]),
        [vec![tcp("127.0.0.1:6000")]]
    );
    assert_eq!(
        listens(&["--listen=localhost:6001", urls[0]]),
        [vec![tcp("127.0.0.1:6001")]]
    );
}

#[test]
fn unix_sockets() {
    // --unix-socket adds DIR/.s.PGSQL.<TCP port> to every target.
    let s = ok(
        &[
            "--unix-socket=/run/pg",
            "postgres://a.example.com",
            "postgres://b.example.com",
        ],
        &[],
    );
    assert_eq!(
        s.targets[0].listen,
        [tcp("127.0.0.1:5432"), unix("/run/pg", 5432)]
    );
    assert_eq!(
        s.targets[1].listen,
        [tcp("127.0.0.1:5433"), unix("/run/pg", 5433)]
    );
    assert_eq!(
        s.targets[1].listen[1].socket_path(),
        PathBuf::from("/run/pg/.s.PGSQL.5433")
    );
    assert_eq!(s.targets[1].listen[0].socket_path(), PathBuf::new());
    assert_eq!(
        s.targets[1].listen[1].to_string(),
        "unix:/run/pg/.s.PGSQL.5433"
    );

    // A target that listens only on a unix socket uses its upstream port for the file name,
    // and keeps its own directory rather than the global one.
    let s = ok(
        &[
            "--unix-socket=/run/pg",
            "postgres://a.example.com:6543?listen=unix:/tmp/a",
        ],
        &[],
    );
    assert_eq!(s.targets[0].listen, [unix("/tmp/a", 6543)]);

    // In a file.
    let dir = Dir::new();
    let path = dir.write(
        "c.toml",
        "unix_socket = \"/run/pg\"\n[[target]]\nhost = \"a.example.com\"\nlisten = \"127.0.0.1:7777\"\n",
    );
    let s = ok(&["--config", path.to_str().unwrap()], &[]);
    assert_eq!(
        s.targets[0].listen,
        [tcp("127.0.0.1:7777"), unix("/run/pg", 7777)]
    );
}

#[test]
fn derived_names_are_unique() {
    let s = ok(
        &[
            "postgres://db.example.com/a",
            "postgres://db.example.com/b",
            "postgres://db.other.com",
        ],
        &[],
    );
    let names: Vec<_> = s.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["db", "db-2", "db-3"]);
    assert_eq!(s.target("db-2").unwrap().database.as_deref(), Some("b"));
}

#[test]
fn allow_remote_with_tls_and_password() {
    let dir = Dir::new();
    let path = dir.write("c.toml", "client_password = \"s3cret\"\n");
    let s = ok(
        &[
            "--config",
            path.to_str().unwrap(),
            "--allow-remote",
            "--client-tls=self-signed",
            "--listen=0.0.0.0:5432",
            "postgres://a.example.com",
        ],
        &[],
    );
    assert!(s.allow_remote);
    let pw = s.client_password.as_ref().unwrap();
    assert_eq!(pw.expose(), "s3cret");
    assert!(pw.matches(b"s3cret"));
    assert!(!pw.matches(b"s3cre"));
    assert!(!pw.matches(b"s3cretx"));
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "Debug must redact the password"
    );

    let s = ok(
        &[
            "--allow-remote=true",
            "--client-tls-cert=/c.pem",
            "--client-tls-key=/k.pem",
            "postgres://a.example.com?listen=10.0.0.1:5432",
        ],
        &[("RDS_IAM_PROXY_CLIENT_PASSWORD", "pw")],
    );
    assert_eq!(
        s.client_tls,
        rds_iam_config::ClientTls::Files {
            cert: "/c.pem".into(),
            key: "/k.pem".into()
        }
    );
}
