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
use crate::db::{self, DbError};

/// Additional authenticated data of the sealed CA key.
pub const CA_KEY_CONTEXT: &[u8] = b"powernode:internal-ca-key:v1";
const CA_LIFETIME_DAYS: u32 = 3652;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Db(#[from] DbError),
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
    let sha256 = hex::encode(cert.digest(MessageDigest::sha256())?);
    let sealed = key.seal(CA_KEY_CONTEXT, &pkey.private_key_to_pem_pkcs8()?)?;
    Ok((pem, sha256, sealed))
}

/// Returns this instance's identity, creating it and its CA on first use. Replicas racing
/// here agree: the first insert wins and the others read it back.
pub async fn ensure_identity(
    pool: &powernode_store::PgPool,
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
