//! CSR signing rules of SPEC §4, with the openssl CLI as the independent judge.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use openssl::dsa::Dsa;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage};
use openssl::x509::{X509, X509NameBuilder, X509Req, X509ReqBuilder};
use powernode_api::ca::{self, CsrError, OpenCa};
use powernode_api::crypto::MasterKey;
use powernode_tests::master_key_file;
use uuid::Uuid;

fn test_ca() -> OpenCa {
    let key = MasterKey::load(std::path::Path::new(&master_key_file())).unwrap();
    let instance = Uuid::new_v4();
    let (pem, sha, sealed) = ca::generate(instance, &key).unwrap();
    let identity = powernode_store::identity::InstanceIdentity {
        instance_id: instance,
        ca_cert_pem: pem,
        ca_sha256: sha,
        ca_key_sealed: sealed,
        created_at: time::OffsetDateTime::now_utc(),
    };
    OpenCa::open(&identity, &key).unwrap()
}

fn csr_for(key: &PKey<Private>, digest: Option<MessageDigest>, extras: bool) -> String {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "evil-admin")
        .unwrap();
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&name.build()).unwrap();
    req.set_pubkey(key).unwrap();
    if extras {
        let mut exts = Stack::new().unwrap();
        exts.push(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        exts.push(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        req.add_extensions(&exts).unwrap();
    }
    // Ed25519 signs without a separate digest.
    req.sign(key, digest.unwrap_or_else(MessageDigest::null))
        .unwrap();
    String::from_utf8(req.build().to_pem().unwrap()).unwrap()
}

fn ec(curve: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(curve).unwrap()).unwrap()).unwrap()
}

fn sign(ca: &OpenCa, csr: &str) -> Result<ca::Issued, CsrError> {
    ca.sign_client_csr(
        csr,
        Uuid::new_v4(),
        Uuid::new_v4(),
        time::OffsetDateTime::now_utc(),
        90,
    )
}

fn openssl_verify_sslclient(ca: &OpenCa, cert_pem: &str) -> String {
    let dir = std::env::temp_dir().join(format!("pn-csr-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert().to_pem().unwrap()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.pem",
            "cert.pem",
        ])
        .current_dir(&dir)
        .output()
        .expect("the openssl CLI");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn allowed_keys_get_client_certificates_that_openssl_verifies_for_sslclient() {
    let ca = test_ca();
    let keys = [
        (ec(Nid::X9_62_PRIME256V1), Some(MessageDigest::sha256())),
        (ec(Nid::SECP384R1), Some(MessageDigest::sha384())),
        (
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
            Some(MessageDigest::sha256()),
        ),
        (PKey::generate_ed25519().unwrap(), None),
    ];
    for (key, digest) in keys {
        let issued = sign(&ca, &csr_for(&key, digest, false)).unwrap();
        assert_eq!(
            openssl_verify_sslclient(&ca, &issued.pem).trim(),
            "cert.pem: OK"
        );
    }
}

#[test]
fn requested_subject_and_extensions_are_ignored() {
    let ca = test_ca();
    let peer = Uuid::new_v4();
    let instance = Uuid::new_v4();
    let csr = csr_for(
        &ec(Nid::X9_62_PRIME256V1),
        Some(MessageDigest::sha256()),
        true,
    );
    let now = time::OffsetDateTime::now_utc();
    let issued = ca.sign_client_csr(&csr, peer, instance, now, 90).unwrap();
    let cert = X509::from_pem(issued.pem.as_bytes()).unwrap();
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(text.contains(&format!("Subject: CN=fed:{peer}")), "{text}");
    assert!(
        text.contains(&format!("URI:powernode://instance/{instance}")),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert_eq!(issued.serial_hex.len(), 32);
    assert_eq!(issued.not_before, now - time::Duration::seconds(30));
    assert_eq!(issued.not_after, now + time::Duration::days(90));
    assert!(openssl_verify_sslclient(&ca, &issued.pem).contains("OK"));
}

#[test]
fn weak_or_forged_csrs_are_refused_with_the_spec_messages() {
    let ca = test_ca();
    let rsa1024 = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    assert_eq!(
        sign(
            &ca,
            &csr_for(&rsa1024, Some(MessageDigest::sha256()), false)
        )
        .unwrap_err()
        .to_string(),
        "CSR key type not allowed: RSA-1024"
    );
    let dsa = PKey::from_dsa(Dsa::generate(2048).unwrap()).unwrap();
    assert_eq!(
        sign(&ca, &csr_for(&dsa, Some(MessageDigest::sha256()), false))
            .unwrap_err()
            .to_string(),
        "CSR key type not allowed: DSA"
    );
    let k1 = ec(Nid::SECP256K1);
    assert_eq!(
        sign(&ca, &csr_for(&k1, Some(MessageDigest::sha256()), false))
            .unwrap_err()
            .to_string(),
        "CSR key type not allowed: EC secp256k1"
    );

    // A valid CSR whose signature bytes were altered.
    let good = csr_for(
        &ec(Nid::X9_62_PRIME256V1),
        Some(MessageDigest::sha256()),
        false,
    );
    let mut der = X509Req::from_pem(good.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = X509Req::from_der(&der).unwrap().to_pem().unwrap();
    assert_eq!(
        sign(&ca, std::str::from_utf8(&forged).unwrap()).unwrap_err(),
        CsrError::Signature
    );
    assert_eq!(CsrError::Signature.to_string(), "CSR signature invalid");

    let garbage = sign(
        &ca,
        "-----BEGIN CERTIFICATE REQUEST-----\nbm9wZQ==\n-----END CERTIFICATE REQUEST-----\n",
    );
    assert!(
        garbage
            .unwrap_err()
            .to_string()
            .starts_with("malformed CSR PEM: ")
    );
    // Two requests in one PEM: openssl would sign the first; we refuse the whole.
    let first = csr_for(
        &ec(Nid::X9_62_PRIME256V1),
        Some(MessageDigest::sha256()),
        false,
    );
    let second = csr_for(
        &ec(Nid::X9_62_PRIME256V1),
        Some(MessageDigest::sha256()),
        false,
    );
    assert_eq!(
        sign(&ca, &format!("{first}{second}"))
            .unwrap_err()
            .to_string(),
        "malformed CSR PEM: expected exactly one CERTIFICATE REQUEST block"
    );
    assert!(sign(&ca, &first).is_ok());
    let huge = "A".repeat(1024 * 1024);
    assert_eq!(
        sign(&ca, &huge).unwrap_err().to_string(),
        "malformed CSR PEM: larger than 16384 bytes"
    );
}
