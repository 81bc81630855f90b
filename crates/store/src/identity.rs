//! This instance's identity and internal CA row (one row for every replica).

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::instance_identity;

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = instance_identity, check_for_backend(diesel::pg::Pg))]
pub struct InstanceIdentity {
    pub instance_id: Uuid,
    pub ca_cert_pem: String,
    pub ca_sha256: String,
    /// AES-256-GCM sealed PKCS#8 key; opened only with the master key.
    pub ca_key_sealed: Vec<u8>,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for InstanceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceIdentity")
            .field("instance_id", &self.instance_id)
            .field("ca_sha256", &self.ca_sha256)
            .field("ca_key_sealed", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

pub fn get(conn: &mut PgConnection) -> Result<Option<InstanceIdentity>, StoreError> {
    Ok(instance_identity::table
        .select(InstanceIdentity::as_select())
        .first(conn)
        .optional()?)
}

/// Inserts the identity unless one exists (concurrent replicas: the first insert wins) and
/// returns the stored one.
pub fn insert_if_absent(
    conn: &mut PgConnection,
    instance_id: Uuid,
    ca_cert_pem: &str,
    ca_sha256: &str,
    ca_key_sealed: &[u8],
) -> Result<(InstanceIdentity, bool), StoreError> {
    conn.transaction(|conn| {
        let inserted = diesel::insert_into(instance_identity::table)
            .values((
                instance_identity::instance_id.eq(instance_id),
                instance_identity::ca_cert_pem.eq(ca_cert_pem),
                instance_identity::ca_sha256.eq(ca_sha256),
                instance_identity::ca_key_sealed.eq(ca_key_sealed),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        let stored = instance_identity::table
            .select(InstanceIdentity::as_select())
            .first(conn)?;
        Ok((stored, inserted == 1))
    })
}
