//! Upstream TLS: rustls with the CA bundle the target names, verifying the endpoint host name.
//! There is deliberately no way to turn verification off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read CA bundle {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA bundle {path} holds no usable PEM certificate")]
    Empty { path: PathBuf },
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used for every TLS session: aws-lc-rs is the fastest for bulk AES-GCM.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the client config for one CA bundle (TLS 1.2 and 1.3).
pub fn client_config(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let pem = std::fs::read(ca_file).map_err(|source| TlsConfigError::Read {
        path: ca_file.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsConfigError::Empty {
            path: ca_file.to_owned(),
        });
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name sent as SNI and checked against the certificate: always the endpoint host, even
/// when `connect_to` dials a tunnel.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsConfigError::ServerName {
        host: host.to_owned(),
    })
}
