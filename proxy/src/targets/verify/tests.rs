use super::*;
use rcgen::{date_time_ymd, CertificateParams, CertifiedIssuer, DnType, KeyPair};
use rustls::RootCertStore;

struct Pki {
    roots: Arc<RootCertStore>,
    leaf: CertificateDer<'static>,
}

/// A CA and a leaf for `names`, valid from 2027-01-01 until midnight UTC of January `last_day`.
fn pki(names: &[&str], last_day: u8) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.not_before = date_time_ymd(2026, 1, 1);
    ca.not_after = date_time_ymd(2028, 1, 1);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut leaf = CertificateParams::new(names).unwrap();
    leaf.not_before = date_time_ymd(2027, 1, 1);
    leaf.not_after = date_time_ymd(2027, 1, last_day);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(issuer.der().clone()).unwrap();
    Pki {
        roots: Arc::new(roots),
        leaf: leaf.der().clone(),
    }
}

fn verifier(roots: Arc<RootCertStore>) -> CachingVerifier {
    let inner = WebPkiServerVerifier::builder_with_provider(roots, super::super::crypto_provider())
        .build()
        .unwrap();
    CachingVerifier::new(inner)
}

fn name(s: &str) -> ServerName<'static> {
    ServerName::try_from(s.to_owned()).unwrap()
}

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// 2027-01-09 23:58:20 UTC: 100 s before a certificate ending on January 10 expires.
const NOW: u64 = 1_799_539_200 - 100;

#[test]
fn a_verified_chain_is_remembered_for_its_name_only() {
    let p = pki(&["db.example"], 20);
    let v = verifier(p.roots.clone());
    v.verify_server_cert(&p.leaf, &[], &name("db.example"), &[], at(NOW))
        .unwrap();
    assert_eq!(v.verdicts.lock().unwrap().len(), 1);
    // Another name is checked afresh, and fails.
    assert!(v
        .verify_server_cert(&p.leaf, &[], &name("other.example"), &[], at(NOW))
        .is_err());
    // Another chain for the same name is checked afresh: one from another CA fails.
    let stranger = pki(&["db.example"], 20);
    assert!(v
        .verify_server_cert(&stranger.leaf, &[], &name("db.example"), &[], at(NOW))
        .is_err());
    assert_eq!(
        v.verdicts.lock().unwrap().len(),
        1,
        "failures are never remembered"
    );
}

#[test]
fn a_verdict_lapses_and_a_chain_about_to_expire_is_not_remembered() {
    let p = pki(&["db.example"], 10);
    let v = verifier(p.roots.clone());
    v.verify_server_cert(&p.leaf, &[], &name("db.example"), &[], at(NOW))
        .unwrap();
    assert!(
        v.verdicts.lock().unwrap().is_empty(),
        "expires within the TTL"
    );
    // Past its expiry it fails, cache or not.
    assert!(v
        .verify_server_cert(&p.leaf, &[], &name("db.example"), &[], at(NOW + 200))
        .is_err());

    let p = pki(&["db.example"], 20);
    let v = verifier(p.roots.clone());
    v.verify_server_cert(&p.leaf, &[], &name("db.example"), &[], at(NOW))
        .unwrap();
    let until = *v.verdicts.lock().unwrap().values().next().unwrap();
    assert_eq!(until, NOW + VERDICT_TTL.as_secs());
    // After the TTL the chain is verified again (still valid here, so it passes).
    v.verify_server_cert(&p.leaf, &[], &name("db.example"), &[], at(until + 1))
        .unwrap();
}
