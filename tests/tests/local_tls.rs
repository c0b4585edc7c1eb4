//! End-to-end: local TLS towards clients. `sslmode=require` clients with a generated
//! certificate or PEM files, direct TLS (PostgreSQL 17 `sslnegotiation=direct`, ALPN
//! `postgresql`), and `--allow-remote` with a client password checked by SCRAM-SHA-256.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{one, proxy_for, standin};
use standin::StandIn;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};
use tokio_rustls::TlsConnector;

/// Writes a certificate for `localhost` issued by the stand-in's test CA, so clients can
/// verify the proxy the way they would verify a real server.
fn localhost_cert(s: &StandIn, dir: &std::path::Path) -> (String, String) {
    let cert = s.ca().issue_server_cert(&["localhost"]).unwrap();
    let (c, k) = (dir.join("client-tls.crt"), dir.join("client-tls.key"));
    std::fs::write(&c, cert.cert_pem).unwrap();
    std::fs::write(&k, cert.key_pem).unwrap();
    (c.display().to_string(), k.display().to_string())
}

/// A verified TLS session to the proxy as `localhost`, with a client password if given.
async fn connect_tls(
    s: &StandIn,
    addr: SocketAddr,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let password = password.map_or(String::new(), |p| format!("password={p}"));
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=localhost hostaddr={} port={} user={user} dbname=appdb sslmode=require {password}",
            addr.ip(),
            addr.port()
        ),
        s.ca().postgres_tls(),
    )
    .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_clients_work_with_a_self_signed_certificate() {
    let s = standin().await;
    let proxy = proxy_for(&s)
        .args(["--client-tls", "self-signed"])
        .spawn()
        .unwrap();
    let addr = proxy.addr();
    // psql with sslmode=require encrypts without verifying, as apps hard-wired to it do.
    let out = tokio::process::Command::new("psql")
        .arg(format!(
            "host={} port={} user=iam_user dbname=appdb sslmode=require",
            addr.ip(),
            addr.port()
        ))
        .args(["-w", "-X", "-c", "\\conninfo", "-c", "select 'ok'"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SSL connection"), "{stdout}");
    assert!(stdout.contains("ok"), "{stdout}");

    // Plain clients are still served when local TLS is on (loopback only).
    let plain = common::connect(addr, "iam_user")
        .await
        .expect("plain client");
    assert_eq!(one(&plain, "select current_user::text").await, "iam_user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_verify_and_direct_tls_needs_alpn_postgresql() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = localhost_cert(&s, dir.path());
    let mut proxy = proxy_for(&s)
        .args(["--client-tls-cert", &cert, "--client-tls-key", &key])
        .spawn()
        .unwrap();
    let addr = proxy.addr();

    // SSLRequest, then a verified handshake against the files' certificate.
    let client = connect_tls(&s, addr, "iam_user", None)
        .await
        .expect("TLS client");
    assert_eq!(one(&client, "select current_user::text").await, "iam_user");

    // Direct TLS: the ClientHello is the first thing on the wire.
    let direct = |alpn: bool| {
        let mut config = s.ca().client_config();
        if alpn {
            config.alpn_protocols = vec![b"postgresql".to_vec()];
        }
        TlsConnector::from(Arc::new(config))
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = direct(true)
        .connect(name.clone(), TcpStream::connect(addr).await.unwrap())
        .await
        .expect("direct TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    let mut config = tokio_postgres::Config::new();
    config.user("iam_user").dbname("appdb");
    let (client, conn) = config
        .connect_raw(tls, NoTls)
        .await
        .expect("startup over direct TLS");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    assert_eq!(
        one(&client, "select current_database()::text").await,
        "appdb"
    );

    // Without ALPN the handshake completes but the proxy refuses the session, as
    // PostgreSQL 17 does.
    let mut tls = direct(false)
        .connect(name, TcpStream::connect(addr).await.unwrap())
        .await
        .expect("handshake without ALPN");
    // The refusal comes right after the handshake, before any startup packet.
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    assert_eq!(
        reply.first(),
        Some(&b'E'),
        "expected an ErrorResponse, got {reply:?}"
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("08P01") && text.contains("ALPN"), "{text}");
    proxy
        .wait_for_logs(std::time::Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains("without ALPN"))
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_is_closed_when_local_tls_is_off() {
    let s = standin().await;
    let proxy = proxy_for(&s).spawn().unwrap();
    let mut config = s.ca().client_config();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let result = TlsConnector::from(Arc::new(config))
        .connect(name, TcpStream::connect(proxy.addr()).await.unwrap())
        .await;
    assert!(
        result.is_err(),
        "a direct TLS handshake succeeded with local TLS off"
    );
    // And the proxy carries on.
    let client = common::connect(proxy.addr(), "iam_user")
        .await
        .expect("plain client");
    assert_eq!(one(&client, "select 'ok'::text").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_remote_clients_must_know_the_client_password() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = localhost_cert(&s, dir.path());
    // Loopback here: tests use no other network. The settings are those a remote
    // listener needs, and the password check applies whenever client_password is set.
    let proxy = proxy_for(&s)
        .args([
            "--allow-remote",
            "--client-tls-cert",
            &cert,
            "--client-tls-key",
            &key,
        ])
        .env("RDS_IAM_PROXY_CLIENT_PASSWORD", "correct horse")
        .spawn()
        .unwrap();
    let addr = proxy.addr();

    let client = connect_tls(&s, addr, "iam_user", Some("'correct horse'"))
        .await
        .expect("right password");
    assert_eq!(one(&client, "select current_user::text").await, "iam_user");

    let Err(e) = connect_tls(&s, addr, "iam_user", Some("wrong")).await else {
        panic!("wrong password was accepted");
    };
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("no ErrorResponse: {e:?}"));
    assert_eq!(db.code().code(), "28P01");
    assert!(
        db.message().starts_with("rds-iam-proxy: "),
        "{}",
        db.message()
    );

    let Err(e) = connect_tls(&s, addr, "iam_user", None).await else {
        panic!("no password was accepted");
    };
    // The client is asked for one (AuthenticationSASL) and has none to give.
    assert!(format!("{e:?}").contains("password missing"), "{e:?}");

    // The session opened with the right password is unaffected.
    assert_eq!(
        one(&client, "select 'still here'::text").await,
        "still here"
    );
}
