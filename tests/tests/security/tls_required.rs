//! `--allow-remote` (finding 1): a client that does not start TLS is refused with 28000 "TLS
//! required" before any password exchange, and SCRAM-SHA-256-PLUS is offered over TLS so
//! libpq's `channel_binding=require` works.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{proxy_for, standin};
use crate::raw_client::{read_message, startup_packet};

const PASSWORD: &str = "correct horse";

async fn psql(conninfo: &str) -> std::process::Output {
    tokio::process::Command::new("psql")
        .arg(conninfo)
        .args(["-w", "-X", "-A", "-t", "-c", "select current_user"])
        .env("PGPASSWORD", PASSWORD)
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_remote_refuses_plaintext_before_the_password_and_binds_scram_to_tls() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = s.ca().issue_server_cert(&["localhost"]).unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pem).unwrap();
    let ca_path = dir.path().join("ca.pem");
    s.ca().write_pem(&ca_path).unwrap();
    let files = proxy_for(&s)
        .args(["--allow-remote", "--client-tls-cert"])
        .arg(cert_path.display().to_string())
        .arg("--client-tls-key")
        .arg(key_path.display().to_string())
        .env("RDS_IAM_PROXY_CLIENT_PASSWORD", PASSWORD)
        .spawn()
        .unwrap();
    let generated = proxy_for(&s)
        .args(["--allow-remote", "--client-tls", "self-signed"])
        .env("RDS_IAM_PROXY_CLIENT_PASSWORD", PASSWORD)
        .spawn()
        .unwrap();

    for proxy in [&files, &generated] {
        let addr = proxy.addr();
        // A plaintext StartupMessage: the first reply is the refusal, not AuthenticationSASL.
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(&startup_packet(&[
            ("user", "iam_user"),
            ("database", "appdb"),
        ]))
        .await
        .unwrap();
        let (tag, body) = tokio::time::timeout(Duration::from_secs(10), read_message(&mut sock))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(tag, b'E', "{}: {text}", tag as char);
        assert!(text.contains("C28000\0"), "{text}");
        assert!(text.contains("TLS required"), "{text}");

        // libpq with sslmode=disable: the same refusal, with its text.
        let out = psql(&format!(
            "host=127.0.0.1 port={} user=iam_user dbname=appdb sslmode=disable",
            addr.port()
        ))
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("TLS required"),
            "{stderr}"
        );
    }

    // channel_binding=require: libpq insists on SCRAM-SHA-256-PLUS bound to the certificate.
    let verified = psql(&format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=iam_user dbname=appdb \
         sslmode=verify-full sslrootcert={} channel_binding=require",
        files.addr().port(),
        ca_path.display()
    ))
    .await;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), "iam_user");
    let unverified = psql(&format!(
        "host=127.0.0.1 port={} user=iam_user dbname=appdb sslmode=require channel_binding=require",
        generated.addr().port()
    ))
    .await;
    assert!(
        unverified.status.success(),
        "{}",
        String::from_utf8_lossy(&unverified.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&unverified.stdout).trim(),
        "iam_user"
    );
}

/// A unix socket never leaves the host and libpq never offers TLS on one: with
/// `--allow-remote` its clients still get in (with the client password), while TCP clients
/// must use TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_remote_still_serves_unix_socket_clients_without_tls() {
    let s = standin().await;
    let sockets = tempfile::tempdir().unwrap();
    let port = standin::cluster::free_port().unwrap();
    let proxy = proxy_for(&s)
        .args([
            "--allow-remote",
            "--client-tls",
            "self-signed",
            "--unix-socket",
        ])
        .arg(sockets.path().display().to_string())
        .args(["--listen".to_owned(), format!("127.0.0.1:{port}")])
        .env("RDS_IAM_PROXY_CLIENT_PASSWORD", PASSWORD)
        .expect_listeners(2)
        .spawn()
        .unwrap();
    // `unix:DIR/.s.PGSQL.N`: libpq finds it as host=DIR port=N.
    let socket = proxy
        .listening()
        .iter()
        .find_map(|l| l.strip_prefix("unix:"))
        .expect("a unix listener")
        .to_owned();
    let unix_port = socket.rsplit('.').next().unwrap();
    let unix = psql(&format!(
        "host={} port={unix_port} user=iam_user dbname=appdb",
        sockets.path().display()
    ))
    .await;
    assert!(
        unix.status.success(),
        "{}",
        String::from_utf8_lossy(&unix.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&unix.stdout).trim(), "iam_user");
    let tcp = psql(&format!(
        "host=127.0.0.1 port={port} user=iam_user dbname=appdb sslmode=disable"
    ))
    .await;
    assert!(
        String::from_utf8_lossy(&tcp.stderr).contains("TLS required"),
        "{}",
        String::from_utf8_lossy(&tcp.stderr)
    );
}
