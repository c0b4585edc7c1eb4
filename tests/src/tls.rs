//! A throwaway CA and server certificates shaped like RDS's (cluster endpoint in the SAN).

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Default endpoint of the stand-in: an instance-style RDS name, so `topology = auto` leaves
/// it alone (a PostgreSQL reached by IAM, as an RDS instance is). The Aurora cluster stand-in
/// (`aurora/`) has the cluster and reader endpoints.
pub const DEFAULT_HOST: &str = "standin.c0ffee123abc.us-east-1.rds.amazonaws.com";

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// PEM certificate and PKCS#8 key for the database server.
#[derive(Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA; `name` goes in its subject (e.g. "rds-iam-standin CA").
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "rds-iam-proxy tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn write_pem(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.cert_pem())
    }

    /// A server certificate valid for exactly these DNS names.
    pub fn issue_server_cert(&self, hostnames: &[&str]) -> Result<ServerCert, rcgen::Error> {
        let names: Vec<String> = hostnames.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        if let Some(first) = hostnames.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// rustls client config trusting only this CA (ring provider, TLS 1.2+).
    pub fn client_config(&self) -> rustls::ClientConfig {
        client_config_for_der(std::iter::once(self.cert_der()))
    }

    /// tokio-postgres TLS connector trusting only this CA; verifies the `host` it is given.
    pub fn postgres_tls(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new(self.client_config())
    }
}

/// Client config trusting the certificates of a PEM bundle (e.g. a `--ca-file`).
pub fn client_config_from_pem_file(path: &Path) -> std::io::Result<rustls::ClientConfig> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(std::io::Error::other)?;
    Ok(client_config_for_der(certs.into_iter()))
}

fn client_config_for_der(
    certs: impl Iterator<Item = CertificateDer<'static>>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).expect("valid CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}
