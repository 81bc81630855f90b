//! The instance identity and its internal CA (SPEC §1, §4): EC P-256, ~10 years, created once
//! per instance and shared by every replica through PostgreSQL; the key is sealed at rest.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};
use powernode_store::identity::{self, InstanceIdentity};
use uuid::Uuid;

use crate::crypto::{MasterKey, random_bytes};
use crate::db::{self, Database};
use crate::error::ApiError;

/// Additional authenticated data of the sealed CA key.
pub const CA_KEY_CONTEXT: &[u8] = b"powernode:internal-ca-key:v1";
const CA_LIFETIME_DAYS: u32 = 3652;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Boxed: an `ApiError` is large and CA results are returned by value.
    #[error("{}", .0.detail())]
    Db(Box<ApiError>),
}

impl From<ApiError> for CaError {
    fn from(e: ApiError) -> Self {
        CaError::Db(Box::new(e))
    }
}

impl CaError {
    /// As an API error: the database's own answer (a 503 stays a 503), anything else 500 with
    /// `context`.
    pub fn into_api(self, context: &str) -> ApiError {
        match self {
            CaError::Db(e) => *e,
            other => crate::error::internal(context, other),
        }
    }
}

/// A new CA: (certificate PEM, SHA-256 of its DER as lower-case hex, sealed PKCS#8 key).
pub fn generate(instance_id: Uuid, key: &MasterKey) -> Result<(String, String, Vec<u8>), CaError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let pkey: PKey<Private> = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Powernode Federation")?;
    name.append_entry_by_nid(
        Nid::COMMONNAME,
        &format!("Powernode Federation CA {instance_id}"),
    )?;
    let name = name.build();
    let serial_bytes = random_bytes::<16>()?;
    let serial: Asn1Integer = BigNum::from_slice(&serial_bytes)?.to_asn1_integer()?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&pkey)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(CA_LIFETIME_DAYS)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    builder.sign(&pkey, MessageDigest::sha256())?;
    let cert = builder.build();
    let pem = String::from_utf8_lossy(&cert.to_pem()?).into_owned();
    let sha256 = fingerprint(&cert)?;
    let sealed = key.seal(CA_KEY_CONTEXT, &pkey.private_key_to_pem_pkcs8()?)?;
    Ok((pem, sha256, sealed))
}

/// Returns this instance's identity, creating it and its CA on first use. Replicas racing
/// here agree: the first insert wins and the others read it back.
pub async fn ensure_identity(
    pool: &Database,
    key: &MasterKey,
) -> Result<InstanceIdentity, CaError> {
    if let Some(existing) = db::run(pool, identity::get).await? {
        return Ok(existing);
    }
    let instance_id = Uuid::new_v4();
    let (pem, sha256, sealed) = generate(instance_id, key)?;
    let (stored, created) = db::run(pool, move |conn| {
        identity::insert_if_absent(conn, instance_id, &pem, &sha256, &sealed)
    })
    .await?;
    if created {
        tracing::info!(
            instance_id = %stored.instance_id,
            ca_sha256 = %stored.ca_sha256,
            "internal CA created"
        );
    }
    Ok(stored)
}

/// SPEC §4 CSR refusals; `Display` is the exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("malformed CSR PEM: {0}")]
    Malformed(String),
    #[error("CSR signature invalid")]
    Signature,
    #[error("CSR key type not allowed: {0}")]
    KeyType(String),
}

/// Largest CSR PEM accepted.
pub const MAX_CSR_PEM: usize = 16 * 1024;

/// A certificate we issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    pub serial_hex: String,
    pub subject: String,
    pub fingerprint_sha256: String,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

/// The CA with its key opened, for issuing. Never logged, never kept beyond a request.
pub struct OpenCa {
    cert: X509,
    key: PKey<Private>,
}

fn asn1(t: time::OffsetDateTime) -> Result<Asn1Time, openssl::error::ErrorStack> {
    Asn1Time::from_unix(t.unix_timestamp())
}

fn random_serial() -> Result<(Asn1Integer, String), CaError> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] &= 0x7f; // positive, 128 bits of which 127 random
    let bn = BigNum::from_slice(&bytes)?;
    Ok((bn.to_asn1_integer()?, hex::encode(bytes)))
}

/// Checks the key type of a CSR (or certificate) public key against SPEC §4.
pub fn allowed_key(pkey: &PKey<openssl::pkey::Public>) -> Result<(), CsrError> {
    use openssl::pkey::Id;
    match pkey.id() {
        Id::EC => {
            let ec = pkey
                .ec_key()
                .map_err(|e| CsrError::Malformed(e.to_string()))?;
            let curve = ec.group().curve_name();
            match curve {
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1) => Ok(()),
                Some(nid) => Err(CsrError::KeyType(format!(
                    "EC {}",
                    nid.short_name().unwrap_or("unknown curve")
                ))),
                None => Err(CsrError::KeyType("EC explicit curve".to_owned())),
            }
        }
        Id::RSA if pkey.bits() >= 2048 => Ok(()),
        Id::RSA => Err(CsrError::KeyType(format!("RSA-{}", pkey.bits()))),
        Id::ED25519 => Ok(()),
        Id::DSA => Err(CsrError::KeyType("DSA".to_owned())),
        other => Err(CsrError::KeyType(format!("{other:?}"))),
    }
}

impl OpenCa {
    pub fn open(identity: &InstanceIdentity, key: &MasterKey) -> Result<Self, CaError> {
        use secrecy::ExposeSecret;
        let cert = X509::from_pem(identity.ca_cert_pem.as_bytes())?;
        let pem = key.open(CA_KEY_CONTEXT, &identity.ca_key_sealed)?;
        let key = PKey::private_key_from_pem(pem.expose_secret())?;
        Ok(OpenCa { cert, key })
    }

    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// Issues a client certificate from a peer's CSR under every SPEC §4 rule: the CSR's key
    /// type and signature are checked, its subject and extensions ignored; the certificate is
    /// `CN=fed:<peer_id>`, URI SAN `powernode://instance/<remote_instance_id>`, CA:FALSE,
    /// digitalSignature, clientAuth, 128-bit random serial, notBefore = now − 30 s.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        peer_id: Uuid,
        remote_instance_id: Uuid,
        now: time::OffsetDateTime,
        lifetime_days: i64,
    ) -> Result<Issued, CsrError> {
        use openssl::x509::X509Req;
        use openssl::x509::extension::{
            AuthorityKeyIdentifier, ExtendedKeyUsage, SubjectAlternativeName,
        };
        if csr_pem.len() > MAX_CSR_PEM {
            return Err(CsrError::Malformed(format!(
                "larger than {MAX_CSR_PEM} bytes"
            )));
        }
        // openssl reads the first block and ignores the rest: a second request (or anything
        // else) riding along must not go unnoticed.
        let blocks = csr_pem.matches("-----BEGIN ").count();
        if blocks > 1 {
            return Err(CsrError::Malformed(
                "expected exactly one CERTIFICATE REQUEST block".to_owned(),
            ));
        }
        let req = X509Req::from_pem(csr_pem.as_bytes())
            .map_err(|_| CsrError::Malformed("not a PEM certificate request".to_owned()))?;
        let public = req
            .public_key()
            .map_err(|_| CsrError::Malformed("unreadable public key".to_owned()))?;
        allowed_key(&public)?;
        if !req.verify(&public).unwrap_or(false) {
            return Err(CsrError::Signature);
        }
        let internal =
            |e: openssl::error::ErrorStack| CsrError::Malformed(format!("issuance failed: {e}"));
        let subject = format!("CN=fed:{peer_id}");
        let build = || -> Result<Issued, openssl::error::ErrorStack> {
            let mut name = X509NameBuilder::new()?;
            name.append_entry_by_nid(Nid::COMMONNAME, &format!("fed:{peer_id}"))?;
            let name = name.build();
            let mut serial_bytes = [0u8; 16];
            openssl::rand::rand_bytes(&mut serial_bytes)?;
            serial_bytes[0] &= 0x7f;
            let serial = BigNum::from_slice(&serial_bytes)?.to_asn1_integer()?;
            let not_before = now - time::Duration::seconds(30);
            let not_after = now + time::Duration::days(lifetime_days);
            let mut b = X509::builder()?;
            b.set_version(2)?;
            b.set_serial_number(&serial)?;
            b.set_subject_name(&name)?;
            b.set_issuer_name(self.cert.subject_name())?;
            b.set_pubkey(&public)?;
            let (nb, na) = (asn1(not_before)?, asn1(not_after)?);
            b.set_not_before(&nb)?;
            b.set_not_after(&na)?;
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
            let san = SubjectAlternativeName::new()
                .uri(&format!("powernode://instance/{remote_instance_id}"))
                .build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(san)?;
            let ski =
                SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(ski)?;
            let aki = AuthorityKeyIdentifier::new()
                .keyid(false)
                .build(&b.x509v3_context(Some(&self.cert), None))?;
            b.append_extension(aki)?;
            b.sign(&self.key, MessageDigest::sha256())?;
            let cert = b.build();
            Ok(Issued {
                pem: String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
                serial_hex: hex::encode(serial_bytes),
                subject: subject.clone(),
                fingerprint_sha256: fingerprint(&cert)?,
                not_before,
                not_after,
            })
        };
        build().map_err(internal)
    }

    /// The federation listener's server certificate for `host` (DNS name or IP), with a fresh
    /// EC P-256 key: (issued, sealed PKCS#8 key).
    pub fn issue_server(
        &self,
        host: &str,
        now: time::OffsetDateTime,
        lifetime_days: i64,
        master: &MasterKey,
    ) -> Result<(Issued, Vec<u8>), CaError> {
        use openssl::x509::extension::{
            AuthorityKeyIdentifier, ExtendedKeyUsage, SubjectAlternativeName,
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key: PKey<Private> = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, host)?;
        let name = name.build();
        let (serial, serial_hex) = random_serial()?;
        let not_before = now - time::Duration::seconds(30);
        let not_after = now + time::Duration::days(lifetime_days);
        let mut b = X509::builder()?;
        b.set_version(2)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&key)?;
        let (nb, na) = (asn1(not_before)?, asn1(not_after)?);
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let mut san = SubjectAlternativeName::new();
        if host.parse::<std::net::IpAddr>().is_ok() {
            san.ip(host);
        } else {
            san.dns(host);
        }
        let san = san.build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(san)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(Some(&self.cert), None))?;
        b.append_extension(aki)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        let cert = b.build();
        let sealed = master.seal(SERVER_KEY_CONTEXT, &key.private_key_to_pem_pkcs8()?)?;
        Ok((
            Issued {
                pem: String::from_utf8_lossy(&cert.to_pem()?).into_owned(),
                serial_hex,
                subject: format!("CN={host}"),
                fingerprint_sha256: fingerprint(&cert)?,
                not_before,
                not_after,
            },
            sealed,
        ))
    }
}

/// Additional authenticated data of sealed listener keys and of sealed outbound client keys.
pub const SERVER_KEY_CONTEXT: &[u8] = b"powernode:listener-key:v1";
pub const CLIENT_KEY_CONTEXT: &[u8] = b"powernode:client-key:v1";

/// A fresh EC P-256 key and a CSR for it (the issuer replaces the subject).
pub fn key_and_csr() -> Result<(PKey<Private>, String), CaError> {
    use openssl::x509::X509ReqBuilder;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key: PKey<Private> = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "powernode federation client")?;
    let name = name.build();
    let mut req = X509ReqBuilder::new()?;
    req.set_subject_name(&name)?;
    req.set_pubkey(&key)?;
    req.sign(&key, MessageDigest::sha256())?;
    let pem = String::from_utf8_lossy(&req.build().to_pem()?).into_owned();
    Ok((key, pem))
}

/// A certificate's SHA-256 fingerprint, lower-case hex (how certificates are looked up).
pub fn fingerprint(cert: &X509) -> Result<String, openssl::error::ErrorStack> {
    cert.digest(MessageDigest::sha256()).map(hex::encode)
}

/// A certificate's serial number, lower-case hex (as stored in `peer_certificates.serial`).
pub fn serial_hex(cert: &X509) -> Result<String, openssl::error::ErrorStack> {
    cert.serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|h| h.to_lowercase()))
}

/// A certificate's validity window as `OffsetDateTime`s.
pub fn validity(cert: &X509) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let at = |t: &openssl::asn1::Asn1TimeRef| {
        Asn1Time::from_unix(0)
            .ok()
            .and_then(|epoch| epoch.diff(t).ok())
            .map_or(time::OffsetDateTime::UNIX_EPOCH, |d| {
                time::OffsetDateTime::UNIX_EPOCH
                    + time::Duration::days(i64::from(d.days))
                    + time::Duration::seconds(i64::from(d.secs))
            })
    };
    (at(cert.not_before()), at(cert.not_after()))
}

/// Stores a certificate we issued to `peer_id` (direction `inbound`) in the caller's
/// transaction.
pub fn record_issued(
    conn: &mut diesel::PgConnection,
    peer_id: Uuid,
    issued: &Issued,
) -> Result<(), powernode_store::StoreError> {
    powernode_store::certificates::insert(
        conn,
        &powernode_store::certificates::NewCertificate {
            peer_id,
            direction: powernode_store::certificates::INBOUND,
            serial: &issued.serial_hex,
            subject: &issued.subject,
            fingerprint_sha256: &issued.fingerprint_sha256,
            cert_pem: &issued.pem,
            key_sealed: None,
            not_before: issued.not_before,
            not_after: issued.not_after,
        },
    )
    .map(|_| ())
}
