//! A minimal HTTPS GET for one PEM file: HTTP/1.1, `Connection: close`, Content-Length or
//! chunked bodies, bounded in size and time, verified TLS. The file is written atomically and
//! only when it holds certificates, so a cache never holds half a bundle or an error page.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::targets::crypto_provider;

/// The global bundle is about 200 KB; anything far larger is not it.
const MAX_RESPONSE_LEN: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    #[error("{0:?} is not an https:// URL")]
    Url(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connecting to {host}: {source}")]
    Connect {
        host: String,
        source: std::io::Error,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("reading the response: {0}")]
    Read(std::io::Error),
    #[error("response larger than {MAX_RESPONSE_LEN} bytes")]
    TooLarge,
    #[error("server answered {0}")]
    Status(String),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("the downloaded file holds no PEM certificate")]
    NotABundle,
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Downloads `url` (trusting `roots`) into `dest`, creating its directory.
pub(crate) async fn download(
    url: &str,
    roots: Arc<RootCertStore>,
    dest: &Path,
    timeout: Duration,
) -> Result<(), DownloadError> {
    let (host, port, path) = parse_url(url)?;
    let body = tokio::time::timeout(timeout, get(&host, port, &path, roots))
        .await
        .map_err(|_| DownloadError::Timeout(timeout))??;
    let certs = CertificateDer::pem_slice_iter(&body)
        .filter_map(Result::ok)
        .count();
    if certs == 0 {
        return Err(DownloadError::NotABundle);
    }
    write_atomically(dest, &body).map_err(|source| DownloadError::Write {
        path: dest.to_owned(),
        source,
    })
}

/// `https://HOST[:PORT]/PATH` → parts. IPv6 literals are not needed for this one URL.
fn parse_url(url: &str) -> Result<(String, u16, String), DownloadError> {
    let bad = || DownloadError::Url(url.to_owned());
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None => (authority, 443),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

async fn get(
    host: &str,
    port: u16,
    path: &str,
    roots: Arc<RootCertStore>,
) -> Result<Vec<u8>, DownloadError> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| DownloadError::Url(host.into()))?;
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|source| DownloadError::Connect {
            host: host.to_owned(),
            source,
        })?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| DownloadError::Tls {
            host: host.to_owned(),
            source,
        })?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rds-iam-proxy/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(DownloadError::Read)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                if response.len() + n > MAX_RESPONSE_LEN {
                    return Err(DownloadError::TooLarge);
                }
                response.extend_from_slice(&chunk[..n]);
            }
            // Many servers close without close_notify; the body's framing says whether
            // everything arrived, and a truncated body is caught below.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(DownloadError::Read(e)),
        }
    }
    parse_response(&response)
}

/// Status 200 and the body, de-chunked; a body shorter than its framing says is an error.
fn parse_response(response: &[u8]) -> Result<Vec<u8>, DownloadError> {
    let malformed = DownloadError::Malformed;
    let head_end = find(response, b"\r\n\r\n").ok_or(malformed("no end of headers"))?;
    let head = std::str::from_utf8(&response[..head_end]).map_err(|_| malformed("headers"))?;
    let body = &response[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).ok_or(malformed("status line"))?;
    if code != "200" {
        return Err(DownloadError::Status(status.to_owned()));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body);
    }
    match header("content-length") {
        Some(len) => {
            let len: usize = len.parse().map_err(|_| malformed("content-length"))?;
            body.get(..len)
                .map(<[u8]>::to_vec)
                .ok_or(malformed("body shorter than its content-length"))
        }
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, DownloadError> {
    let malformed = DownloadError::Malformed;
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = find(body, b"\r\n").ok_or(malformed("chunk size line"))?;
        let size_text =
            std::str::from_utf8(&body[..line_end]).map_err(|_| malformed("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let data = body.get(..size).ok_or(malformed("truncated chunk"))?;
        out.extend_from_slice(data);
        body = body.get(size + 2..).ok_or(malformed("truncated chunk"))?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Write to a temporary file beside `dest`, sync, then rename over it.
fn write_atomically(dest: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bundle"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
