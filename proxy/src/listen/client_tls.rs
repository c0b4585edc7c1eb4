//! Local TLS towards clients (`client_tls_cert`/`client_tls_key`, or `client_tls = "self-signed"`)
//! for applications hard-wired to `sslmode=require` or using direct TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rds_iam_config::ClientTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::end_point;
use crate::connection::{LocalTls, ALPN_POSTGRESQL};
use crate::targets::crypto_provider;

/// Names the generated certificate is valid for: what a local client dials.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientTlsError {
    #[error("client_tls_cert = {path}: cannot read a PEM certificate chain: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("client_tls_key = {path}: cannot read a PEM private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("client_tls = \"self-signed\": cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("client TLS: certificate and key do not form a usable pair: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for `setting`, or `None` when local TLS is off.
pub(crate) fn acceptor(setting: &ClientTls) -> Result<Option<LocalTls>, ClientTlsError> {
    let (chain, key) = match setting {
        ClientTls::Off => return Ok(None),
        ClientTls::SelfSigned => self_signed()?,
        ClientTls::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
    };
    let end_point = chain
        .first()
        .and_then(|leaf| end_point::of_certificate(leaf))
        .map(Arc::from);
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // A client that offers ALPN must offer `postgresql` (as PostgreSQL 17 requires); a client
    // that offers none is fine after SSLRequest and refused on direct TLS by the caller.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(LocalTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        end_point,
    }))
}

fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClientTlsError> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let generated = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok((vec![generated.cert.der().clone()], key.into()))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let err = |reason: String| ClientTlsError::Cert {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientTlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| ClientTlsError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_gives_no_acceptor_and_self_signed_one() {
        assert!(acceptor(&ClientTls::Off).unwrap().is_none());
        assert!(acceptor(&ClientTls::SelfSigned).unwrap().is_some());
    }

    #[test]
    fn unreadable_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let Err(e) = acceptor(&ClientTls::Files {
            cert: missing.clone(),
            key: missing.clone(),
        }) else {
            panic!("a missing certificate file was accepted")
        };
        assert!(e.to_string().starts_with("client_tls_cert = "), "{e}");

        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        let Err(e) = acceptor(&ClientTls::Files {
            cert: cert.clone(),
            key: junk,
        }) else {
            panic!("a junk key file was accepted")
        };
        assert!(e.to_string().starts_with("client_tls_key = "), "{e}");

        let key = dir.path().join("key.pem");
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        assert!(acceptor(&ClientTls::Files { cert, key }).unwrap().is_some());
    }
}
