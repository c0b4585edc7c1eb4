//! A server that echoes the password it was sent (finding 10): the token must reach neither
//! the client nor the log. The server is a TLS endpoint with a certificate the proxy trusts
//! that speaks just the startup phase; PostgreSQL itself never echoes, so this one must.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use standin::ProxyCommand;

use crate::common::{standin, PROXY_BIN};
use crate::raw_client::startup_packet;

const HOST: &str = "echo.cluster-abc123xyz.us-east-1.rds.amazonaws.com";

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(tag);
    out.put_u32(body.len() as u32 + 4);
    out.extend_from_slice(body);
    out.to_vec()
}

fn fields(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, text) in [(b'S', severity), (b'C', code), (b'M', message)] {
        body.push(tag);
        body.extend_from_slice(text.as_bytes());
        body.push(0);
    }
    body.push(0);
    body
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S, tagged: bool) -> std::io::Result<Vec<u8>> {
    if tagged {
        s.read_u8().await?;
    }
    let len = s.read_u32().await? as usize;
    let mut body = vec![0; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Serves connections: SSLRequest, TLS, StartupMessage, cleartext password; then, if
/// `accept`, a greeting that quotes the password in a notice and a parameter, else a notice
/// and a FATAL 28P01 that quote it. Returns the passwords it was sent.
async fn echo_server(
    acceptor: TlsAcceptor,
    listener: TcpListener,
    accept: bool,
    seen: Arc<Mutex<Vec<String>>>,
) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, seen) = (acceptor.clone(), seen.clone());
        tokio::spawn(async move {
            let _ssl_request = read_frame(&mut tcp, false).await?;
            tcp.write_all(b"S").await?;
            let mut tls = acceptor.accept(tcp).await?;
            let _startup = read_frame(&mut tls, false).await?;
            tls.write_all(&frame(b'R', &3u32.to_be_bytes())).await?;
            let password = read_frame(&mut tls, true).await?;
            let password = String::from_utf8_lossy(&password)
                .trim_end_matches('\0')
                .to_owned();
            seen.lock().unwrap().push(password.clone());
            let mut reply = frame(
                b'N',
                &fields("NOTICE", "00000", &format!("you sent {password}")),
            );
            if accept {
                reply.extend(frame(b'R', &0u32.to_be_bytes()));
                let mut param = b"server_version\0".to_vec();
                param.extend_from_slice(format!("16 {password}\0").as_bytes());
                reply.extend(frame(b'S', &param));
                reply.extend(frame(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
                reply.extend(frame(b'Z', b"I"));
            } else {
                let text = format!("password authentication failed: {password}");
                reply.extend(frame(b'E', &fields("FATAL", "28P01", &text)));
            }
            tls.write_all(&reply).await?;
            tls.flush().await?;
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest)).await;
            Ok::<_, std::io::Error>(())
        });
    }
}

/// Everything the proxy sends a raw client up to ReadyForQuery or the end.
async fn client_reads(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(&startup_packet(&[
        ("user", "iam_user"),
        ("database", "appdb"),
    ]))
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(20), sock.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(&frame(b'Z', b"I")) {
            break;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_echoes_the_token_gets_it_redacted_for_the_client_and_the_log() {
    let s = standin().await;
    let cert = s.ca().issue_server_cert(&[HOST]).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));

    for accept in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(echo_server(
            acceptor.clone(),
            listener,
            accept,
            seen.clone(),
        ));
        let proxy = ProxyCommand::new(PROXY_BIN)
            .args([
                format!("postgres://{HOST}:5432/appdb"),
                "--connect-to".into(),
                server_addr.to_string(),
                "--ca-file".into(),
                s.ca_file().display().to_string(),
            ])
            .standin_env(&s)
            .spawn()
            .unwrap();
        let got = client_reads(proxy.addr()).await;
        let got_text = String::from_utf8_lossy(&got);
        let passwords = seen.lock().unwrap().clone();
        assert!(
            !passwords.is_empty() && passwords.iter().all(|p| p.contains("X-Amz-Signature=")),
            "the server was sent IAM tokens: {passwords:?}"
        );
        assert!(
            !got_text.contains("X-Amz-Signature"),
            "the client saw a token: {got_text}"
        );
        assert!(got_text.contains("[redacted]"), "{got_text}");
        let logs = proxy.logs().join("\n");
        for p in &passwords {
            assert!(!logs.contains(p.as_str()), "a token in the log");
        }
        assert!(
            !logs.contains("X-Amz-Signature="),
            "a token in the log:\n{logs}"
        );
        if accept {
            assert!(got_text.contains("16 [redacted]"), "{got_text}");
        } else {
            // The proxy's own refusal, quoting the server's (redacted) text.
            assert!(
                got_text.contains("C28000\0")
                    && got_text.contains("the database rejected the IAM token"),
                "{got_text}"
            );
        }
        println!(
            "echoing server ({}): {} tokens sent to it, 0 reached the client ({} bytes) or the log",
            if accept { "accepts" } else { "refuses" },
            passwords.len(),
            got.len()
        );
    }
}
