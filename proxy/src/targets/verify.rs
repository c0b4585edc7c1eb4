//! The server certificate check, with the chain's verdict remembered for a while.
//!
//! Path building and the CA's signature over the server certificate cost about a tenth of a
//! new upstream connection's CPU, and the server sends the same chain every time. This wraps
//! rustls's WebPKI verifier and remembers a successful verdict for exactly those certificate
//! bytes and that server name for [`VERDICT_TTL`], and only when the chain is still valid at
//! the end of that time, so a certificate never outlives its validity through the cache. What
//! proves the server holds the key (the TLS 1.3 CertificateVerify signature) is checked on
//! every handshake, never remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

/// How long a verified chain is taken as verified.
pub(crate) const VERDICT_TTL: Duration = Duration::from_secs(300);

/// Distinct chains remembered; a server rotating through more than this is just verified.
const MAX_VERDICTS: usize = 32;

#[derive(Debug)]
pub(crate) struct CachingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// Server name and chain bytes → until when (Unix seconds) the verdict stands.
    verdicts: Mutex<HashMap<Vec<u8>, u64>>,
}

impl CachingVerifier {
    pub fn new(inner: Arc<WebPkiServerVerifier>) -> Self {
        CachingVerifier {
            inner,
            verdicts: Mutex::new(HashMap::new()),
        }
    }
}

/// The exact bytes a verdict is about: the name, then each certificate with its length.
fn verdict_key(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    server_name: &ServerName<'_>,
) -> Vec<u8> {
    let name = server_name.to_str();
    let certs = std::iter::once(end_entity).chain(intermediates);
    let mut key = Vec::with_capacity(name.len() + 2048);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    for cert in certs {
        key.extend_from_slice(&(cert.len() as u32).to_be_bytes());
        key.extend_from_slice(cert);
    }
    key
}

impl ServerCertVerifier for CachingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let key = verdict_key(end_entity, intermediates, server_name);
        let lock = || self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        if lock().get(&key).is_some_and(|until| now.as_secs() < *until) {
            return Ok(ServerCertVerified::assertion());
        }
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        // Remembered only if the chain will still be valid when the verdict lapses.
        let until = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs()) + VERDICT_TTL);
        let lasts = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, until)
            .is_ok();
        if lasts {
            let mut verdicts = lock();
            if verdicts.len() >= MAX_VERDICTS {
                verdicts.clear();
            }
            verdicts.insert(key, until.as_secs());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
