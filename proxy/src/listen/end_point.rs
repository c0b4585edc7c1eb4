//! `tls-server-end-point` channel binding data (RFC 5929 §4.1), what SCRAM-SHA-256-PLUS binds
//! the password exchange to: the hash of the proxy's own certificate, with the hash function
//! of the certificate's signature (SHA-256 for MD5 and SHA-1). A signature with no single
//! hash (Ed25519, RSA-PSS) gives none, and PLUS is then not offered, as PostgreSQL does.

use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The binding data of the DER certificate `der`, or `None`.
pub(super) fn of_certificate(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let hash = match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        // md5WithRSA, sha1WithRSA, sha256WithRSA, ecdsa-with-SHA1, ecdsa-with-SHA256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => Sha256::digest(der).to_vec(),
        // sha384WithRSA, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Sha384::digest(der).to_vec(),
        // sha512WithRSA, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Sha512::digest(der).to_vec(),
        _ => return None,
    };
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ecdsa_p256_certificate_binds_to_its_sha256() {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = generated.cert.der();
        assert_eq!(
            of_certificate(der).unwrap(),
            Sha256::digest(der.as_ref()).to_vec()
        );
    }

    #[test]
    fn a_p384_certificate_binds_to_its_sha384() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            of_certificate(cert.der()).unwrap(),
            Sha384::digest(cert.der().as_ref()).to_vec()
        );
    }

    #[test]
    fn ed25519_and_garbage_give_none() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(of_certificate(cert.der()), None);
        assert_eq!(of_certificate(b"not a certificate"), None);
    }
}
