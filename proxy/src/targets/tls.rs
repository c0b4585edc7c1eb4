//! Upstream TLS trust: rustls with the CA bundle the target names, verifying the endpoint host
//! name (WebPKI, its verdict on a chain remembered briefly: `verify.rs`). There is deliberately
//! no way to turn verification off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::verify::CachingVerifier;
use super::ServerTrust;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsConfigError {
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

/// aws-lc-rs, the fastest provider for bulk AES-GCM. Built once: building one allocates its
/// cipher-suite and key-exchange tables, and it is immutable, so every TLS session (and the
/// SCRAM nonces) share this one.
static PROVIDER: LazyLock<Arc<rustls::crypto::CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));

/// The crypto provider used for every TLS session and random value.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    PROVIDER.clone()
}

/// Reads the CA bundle and checks `host` is a usable server name.
pub(super) fn server_trust(ca_file: &Path, host: &str) -> Result<ServerTrust, TlsConfigError> {
    let ca_pem = std::fs::read(ca_file).map_err(|source| TlsConfigError::Read {
        path: ca_file.to_owned(),
        source,
    })?;
    let server_name =
        ServerName::try_from(host.to_owned()).map_err(|_| TlsConfigError::ServerName {
            host: host.to_owned(),
        })?;
    Ok(ServerTrust {
        config: client_config(&ca_pem, ca_file)?,
        server_name,
        host: host.to_owned(),
        ca_pem: ca_pem.into(),
    })
}

/// The client config for one CA bundle (TLS 1.2 and 1.3).
fn client_config(pem: &[u8], ca_file: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsConfigError::Empty {
            path: ca_file.to_owned(),
        });
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .build()
        .map_err(|e| TlsConfigError::Rustls(rustls::Error::General(e.to_string())))?;
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CachingVerifier::new(webpki)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A trust with no CA, for unit tests that never dial.
#[cfg(test)]
pub(crate) fn test_trust() -> ServerTrust {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    ServerTrust {
        config: Arc::new(config),
        server_name: ServerName::try_from("db.example.com").expect("a valid name"),
        host: "db.example.com".into(),
        ca_pem: Arc::from(&b""[..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A provider per call cost every client-password connection a fresh provider (its
    // allocation and tables); one is shared now.
    #[test]
    fn the_crypto_provider_is_built_once() {
        assert!(Arc::ptr_eq(&crypto_provider(), &crypto_provider()));
    }
}
