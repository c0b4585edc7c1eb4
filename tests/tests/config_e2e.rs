//! End-to-end: settings from a config file through the real binary. Several targets on their
//! own ports and a unix socket, psql over the socket, the forced user, SIGHUP reloads (added,
//! removed and changed targets; a broken file keeps the running config) and the loopback rule.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{config_proxy, connect_default_db, one, standin, target_toml, PROXY_BIN};
use standin::cluster::free_port;
use standin::{ProxyCommand, ProxyProcess, StandIn};

const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// One `[[target]]` table in front of the stand-in.
fn target(s: &StandIn, name: &str, listen: &[String], extra: &str) -> String {
    let extra = format!("connect_to = \"{}\"\n{extra}", s.addr());
    target_toml(name, s.host(), listen, s.ca_file(), &extra)
}

fn tcp(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Where the proxy listens on `port` of loopback.
fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits for the `n`th failed reload and returns its error.
fn reload_error(proxy: &mut ProxyProcess, n: usize) -> String {
    let failed = proxy
        .wait_for_message(
            "configuration reload failed; keeping the running configuration",
            n,
            RELOAD_TIMEOUT,
        )
        .unwrap();
    standin::proxy::field(&failed[n - 1], "error").unwrap_or_default()
}

/// The permission bits of a unix socket file.
fn socket_mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

fn count_messages(proxy: &ProxyProcess, msg: &str) -> usize {
    proxy.log_messages(msg).len()
}

/// `psql -h DIR -p PORT -w`: the path libpq users take to a unix socket.
async fn psql_over_socket(dir: &Path, port: u16, user: &str, sql: &str) -> String {
    let out = tokio::process::Command::new("psql")
        .args([
            "-h",
            dir.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "appdb",
            "-w",
            "-X",
            "-A",
            "-t",
            "-c",
            sql,
        ])
        .env_remove("PGPASSWORD")
        .output()
        .await
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_targets_from_one_file_then_sighup_adds_removes_and_changes_targets() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sockets");
    std::fs::create_dir(&sockets).unwrap();
    let (p_orders, p_reports, p_added) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let unix = format!("unix:{}", sockets.display());
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        [
            target(
                &s,
                "orders",
                &[tcp(p_orders), unix.clone()],
                "database = \"appdb\"",
            ),
            target(
                &s,
                "reports",
                &[tcp(p_reports)],
                "database = \"appdb\"\nuser = \"iam_user\"",
            ),
        ]
        .concat(),
    )
    .unwrap();
    let mut proxy = config_proxy(&s, &path, 3).spawn().expect("proxy starts");
    let mut listening = proxy.listening().to_vec();
    listening.sort();
    let socket = sockets.join(format!(".s.PGSQL.{p_orders}"));
    let mut expected = vec![
        tcp(p_orders),
        tcp(p_reports),
        format!("unix:{}", socket.display()),
    ];
    expected.sort();
    assert_eq!(listening, expected);

    // Each target on its own port; the unix socket is private to this user by default.
    let orders = connect_default_db(at(p_orders), "iam_user")
        .await
        .expect("orders");
    assert_eq!(
        one(&orders, "select current_database()::text").await,
        "appdb"
    );
    assert_eq!(socket_mode(&socket), 0o700);
    assert_eq!(
        psql_over_socket(&sockets, p_orders, "iam_user", "select current_user").await,
        "iam_user"
    );
    // reports forces its user whatever the client sends.
    let reports = connect_default_db(at(p_reports), "somebody_else")
        .await
        .expect("reports");
    assert_eq!(one(&reports, "select current_user::text").await, "iam_user");
    assert!(
        connect_default_db(at(p_orders), "somebody_else")
            .await
            .is_err(),
        "orders does not force a user"
    );

    // Reload: orders changes (forced user, default database), reports goes, added comes.
    std::fs::write(
        &path,
        [
            target(
                &s,
                "orders",
                &[tcp(p_orders), unix.clone()],
                "database = \"postgres\"\nuser = \"iam_user\"",
            ),
            target(&s, "added", &[tcp(p_added)], "database = \"appdb\""),
        ]
        .concat(),
    )
    .unwrap();
    let listening_before = count_messages(&proxy, "listening");
    proxy.signal("HUP").unwrap();
    proxy
        .wait_for_message("listening", listening_before + 1, RELOAD_TIMEOUT)
        .unwrap();
    proxy
        .wait_for_message("stopped listening", 1, RELOAD_TIMEOUT)
        .unwrap();
    proxy
        .wait_for_message("configuration reloaded", 1, RELOAD_TIMEOUT)
        .unwrap();

    let added = connect_default_db(at(p_added), "iam_user")
        .await
        .expect("added target");
    assert_eq!(
        one(&added, "select current_database()::text").await,
        "appdb"
    );
    // The changed target applies to new connections...
    let changed = connect_default_db(at(p_orders), "somebody_else")
        .await
        .expect("orders after reload");
    assert_eq!(one(&changed, "select current_user::text").await, "iam_user");
    assert_eq!(
        one(&changed, "select current_database()::text").await,
        "postgres"
    );
    // ...while sessions opened before the reload go on as they were, removed target included.
    assert_eq!(
        one(&orders, "select current_database()::text").await,
        "appdb"
    );
    assert_eq!(one(&reports, "select current_user::text").await, "iam_user");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", p_reports)).await;
    assert!(refused.is_err(), "the removed target's port still accepts");
    assert_eq!(
        psql_over_socket(&sockets, p_orders, "anyone", "select current_user").await,
        "iam_user"
    );

    // Shutdown stops every listener, the one the reload added included.
    drop((orders, reports, added, changed));
    proxy.signal("TERM").unwrap();
    let status = proxy.wait_exit(RELOAD_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(143));
    let stopped: Vec<String> = proxy
        .log_messages("stopped listening")
        .iter()
        .filter_map(|l| standin::proxy::field(l, "listen"))
        .collect();
    for addr in [tcp(p_orders), tcp(p_reports), tcp(p_added)] {
        assert!(stopped.contains(&addr), "{addr} not in {stopped:?}");
    }
    assert!(
        !socket.exists(),
        "the unix socket file is removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_on_sighup_is_logged_and_the_running_one_keeps_serving() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, other) = (free_port().unwrap(), free_port().unwrap());
    let path = dir.path().join("proxy.toml");
    let good = target(&s, "orders", &[tcp(port)], "database = \"appdb\"");
    std::fs::write(&path, &good).unwrap();
    let mut proxy = config_proxy(&s, &path, 1).spawn().expect("proxy starts");
    let session = connect_default_db(at(port), "iam_user")
        .await
        .expect("connects");

    // An unknown key, and then a second target that cannot bind: both keep the running config.
    let broken = format!("{good}\nno_such_key = 1\n");
    std::fs::write(&path, broken).unwrap();
    proxy.signal("HUP").unwrap();
    let error = reload_error(&mut proxy, 1);
    assert!(error.contains("no_such_key"), "{error}");

    let squatter = std::net::TcpListener::bind(("127.0.0.1", other)).unwrap();
    let taken = [
        good.clone(),
        target(&s, "second", &[tcp(other)], "database = \"appdb\""),
    ]
    .concat();
    std::fs::write(&path, taken).unwrap();
    proxy.signal("HUP").unwrap();
    let error = reload_error(&mut proxy, 2);
    assert!(error.contains(&tcp(other)), "{error}");
    drop(squatter);

    assert_eq!(one(&session, "select current_user::text").await, "iam_user");
    let fresh = connect_default_db(at(port), "iam_user")
        .await
        .expect("still serving");
    assert_eq!(
        one(&fresh, "select current_database()::text").await,
        "appdb"
    );
    assert_eq!(count_messages(&proxy, "configuration reloaded"), 0);
}

/// Static fake credentials, and no instance metadata or AWS files (a missing path beside
/// `ca`), keep the AWS chain off the network.
fn offline_aws(cmd: ProxyCommand, ca: &Path) -> ProxyCommand {
    cmd.static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        .isolated_aws(&ca.with_file_name("none"))
}

/// Settings needing no database: start-up never dials it.
fn offline(args: &[&str], ca: &Path) -> ProxyCommand {
    let cmd = ProxyCommand::new(PROXY_BIN)
        .arg("postgres://iam_user@offline.cluster-c0ffee123abc.us-east-1.rds.amazonaws.com/appdb")
        .args(["--ca-file", ca.to_str().unwrap()])
        .args(args.iter().copied());
    offline_aws(cmd, ca)
}

fn test_ca_file(dir: &Path) -> std::path::PathBuf {
    let ca = standin::TestCa::new("offline CA").unwrap();
    let path = dir.join("ca.pem");
    ca.write_pem(&path).unwrap();
    path
}

#[test]
fn non_loopback_listen_is_refused_without_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca_file(dir.path());
    let (status, _, stderr) = offline(&["--listen", "0.0.0.0:6432"], &ca)
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("listen") && stderr.contains("0.0.0.0:6432"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_remote"), "{stderr}");

    // allow_remote alone is not enough: it needs client TLS and a client password.
    let (status, _, stderr) = offline(&["--listen", "0.0.0.0:6432", "--allow-remote"], &ca)
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("allow_remote"), "{stderr}");
    assert!(stderr.contains("client_password"), "{stderr}");

    // From a file, the message names the key there too.
    let path = dir.path().join("remote.toml");
    std::fs::write(
        &path,
        format!(
            "[[target]]\nhost = \"db.cluster-c0ffee123abc.us-east-1.rds.amazonaws.com\"\n\
             listen = [\"0.0.0.0:6432\"]\nca_file = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let (status, _, stderr) = ProxyCommand::new(PROXY_BIN)
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("listen") && stderr.contains("0.0.0.0:6432"),
        "{stderr}"
    );
}

#[test]
fn unix_sockets_are_private_by_default_stale_ones_replaced_live_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca_file(dir.path());
    let sockets = dir.path().join("run");
    std::fs::create_dir(&sockets).unwrap();
    let port = free_port().unwrap();
    let socket = sockets.join(format!(".s.PGSQL.{port}"));
    let listen = tcp(port);
    let unix = sockets.to_str().unwrap();

    // A socket file left by a crashed run: nothing accepts on it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let first = offline(&["--listen", &listen, "--unix-socket", unix], &ca)
        .expect_listeners(2)
        .spawn()
        .expect("a stale socket file is replaced");
    assert_eq!(socket_mode(&socket), 0o700);
    std::os::unix::net::UnixStream::connect(&socket).expect("the new socket accepts");

    // A live one belongs to another process: refuse rather than steal it. A target that
    // listens on a unix socket only names the socket by its port.
    let clash = dir.path().join("clash.toml");
    std::fs::write(
        &clash,
        format!(
            "[[target]]\nhost = \"offline.cluster-c0ffee123abc.us-east-1.rds.amazonaws.com\"\n\
             port = {port}\nlisten = [\"unix:{unix}\"]\nca_file = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let clash_cmd = ProxyCommand::new(PROXY_BIN).args(["--config", clash.to_str().unwrap()]);
    let (status, _, stderr) = offline_aws(clash_cmd, &ca).output().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    std::os::unix::net::UnixStream::connect(&socket).expect("the first proxy still has it");
    // Killed, it leaves its socket file behind for the next run to replace.
    drop(first);
    assert!(socket.exists());

    let wide = offline(
        &[
            "--listen",
            &listen,
            "--unix-socket",
            unix,
            "--unix-socket-mode",
            "0770",
        ],
        &ca,
    )
    .expect_listeners(2)
    .spawn()
    .unwrap();
    assert_eq!(socket_mode(&socket), 0o770);
    drop(wide);
}

// SIGHUP kept an unchanged target's rustls config, so a CA bundle rotated in place (same path,
// new certificates) only applied after a restart, while client TLS files were re-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_ca_bundle_rotated_in_place() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("bundle.pem");
    std::fs::copy(s.write_wrong_ca_file().unwrap(), &ca).unwrap();
    let port = free_port().unwrap();
    let toml = target(&s, "rotating", &[tcp(port)], "database = \"appdb\"").replace(
        &s.ca_file().display().to_string(),
        &ca.display().to_string(),
    );
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let mut proxy = config_proxy(&s, &path, 1).spawn().expect("proxy starts");

    let Err(refused) = connect_default_db(at(port), "iam_user").await else {
        panic!("a server certificate the CA bundle did not sign was accepted");
    };
    let code = refused.as_db_error().map(|e| e.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("08001"), "{refused}");

    std::fs::copy(s.ca_file(), &ca).unwrap();
    proxy.signal("HUP").unwrap();
    let reloaded = proxy
        .wait_for_message("configuration reloaded", 1, RELOAD_TIMEOUT)
        .unwrap();
    assert_eq!(
        standin::proxy::field(&reloaded[0], "changed_targets").as_deref(),
        Some("rotating"),
        "{reloaded:?}"
    );
    let client = connect_default_db(at(port), "iam_user")
        .await
        .expect("the rotated CA bundle verifies the server after SIGHUP");
    assert_eq!(one(&client, "SELECT current_user::text").await, "iam_user");
}

// An invalid --log-level silently became `info`; now the process refuses it like any other
// invalid setting.
#[test]
fn an_invalid_log_level_exits_2_naming_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca_file(dir.path());
    let (status, _, stderr) = offline(&["--log-level", "rds_iam_proxy=loud"], &ca)
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("log_level") && stderr.contains("rds_iam_proxy=loud"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_dials_another_address_for_a_name_from_a_flag_or_a_file_table() {
    let s = standin().await;
    let by_flag = ProxyCommand::new(PROXY_BIN)
        .args([
            format!("postgres://{}/appdb", s.endpoint()),
            "--resolve".into(),
            format!("{}={}", s.endpoint(), s.addr()),
            "--ca-file".into(),
            s.ca_file().display().to_string(),
        ])
        .standin_env(&s)
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    std::fs::write(
        &path,
        format!(
            "[resolve]\n\"{}\" = \"{}\"\n\n{}",
            s.host(),
            s.addr(),
            target_toml(
                "db",
                s.host(),
                &[listen],
                s.ca_file(),
                "database = \"appdb\""
            )
        ),
    )
    .unwrap();
    let by_file = config_proxy(&s, &path, 1).spawn().unwrap();
    s.reset_token_stats();
    for proxy in [&by_flag, &by_file] {
        let client = connect_default_db(proxy.addr(), "iam_user").await.unwrap();
        assert_eq!(one(&client, "select 'resolved'::text").await, "resolved");
    }
    // The name was never looked up in DNS (it has no address), and the tokens were signed for
    // it: the stand-in accepts no other.
    let stats = s.token_stats();
    assert_eq!((stats.accepted, stats.refused), (2, 0), "{stats:?}");
    let lines = by_flag.log_messages("target ready");
    assert!(lines[0].contains(&s.addr().to_string()), "{lines:?}");
}
