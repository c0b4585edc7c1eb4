//! The download against a loopback HTTPS server with a test CA: never the real host.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.0.der().clone()).unwrap();
        Arc::new(roots)
    }

    fn acceptor(&self) -> TlsAcceptor {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Serves one request with `response`; returns the URL and the request it received.
async fn serve_once(ca: &Ca, response: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = ca.acceptor();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return String::new();
        };
        let mut request = Vec::new();
        while find(&request, b"\r\n\r\n").is_none() {
            let mut buf = [0u8; 1024];
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before sending its request");
            request.extend_from_slice(&buf[..n]);
        }
        tls.write_all(&response).await.unwrap();
        tls.shutdown().await.unwrap();
        String::from_utf8(request).unwrap()
    });
    (
        format!("https://localhost:{port}/global/global-bundle.pem"),
        task,
    )
}

fn bundle(ca: &Ca) -> String {
    ca.0.pem()
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn downloads_into_the_cache_path_atomically() {
    let ca = Ca::new();
    let body = bundle(&ca);
    let (url, server) = serve_once(&ca, ok_response(&body)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("cache/rds-iam-proxy/global-bundle.pem");
    download(&url, ca.roots(), &dest, TIMEOUT).await.unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), body);
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /global/global-bundle.pem HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\nHost: localhost\r\n"), "{request}");
    let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("global-bundle.pem")]);
}

#[tokio::test]
async fn chunked_bodies_are_reassembled() {
    let ca = Ca::new();
    let body = bundle(&ca);
    let (a, b) = body.split_at(100);
    let response = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let (url, _server) = serve_once(&ca, response.into_bytes()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("global-bundle.pem");
    download(&url, ca.roots(), &dest, TIMEOUT).await.unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), body);
}

#[tokio::test]
async fn error_pages_truncated_bodies_and_untrusted_servers_leave_no_file() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("global-bundle.pem");

    let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec();
    let (url, _s) = serve_once(&ca, not_found).await;
    let e = download(&url, ca.roots(), &dest, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(e, DownloadError::Status(ref s) if s.contains("404")),
        "{e}"
    );

    let (url, _s) = serve_once(&ca, ok_response("<html>captive portal</html>")).await;
    let e = download(&url, ca.roots(), &dest, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::NotABundle), "{e}");

    let body = bundle(&ca);
    let mut short = ok_response(&body);
    short.truncate(short.len() - 10);
    let (url, _s) = serve_once(&ca, short).await;
    let e = download(&url, ca.roots(), &dest, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::Malformed(_)), "{e}");

    let other = Ca::new();
    let (url, _s) = serve_once(&ca, ok_response(&body)).await;
    let e = download(&url, other.roots(), &dest, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, DownloadError::Tls { .. }), "{e}");

    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn only_https_urls_are_accepted() {
    assert_eq!(
        parse_url("https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem").unwrap(),
        (
            "truststore.pki.rds.amazonaws.com".to_owned(),
            443,
            "/global/global-bundle.pem".to_owned()
        )
    );
    assert_eq!(
        parse_url("https://localhost:8443").unwrap(),
        ("localhost".to_owned(), 8443, "/".to_owned())
    );
    for bad in ["http://example.com/x", "https://:443/x", "https://h:port/x"] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
}
