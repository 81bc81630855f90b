//! `grants` and `shared_resources` (SPEC §6).

use diesel::prelude::*;
use ipnet::IpNet;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::events::{self as fleet, NewEvent};
use crate::schema::{grants, shared_resources};
use powernode_domain::events::{EventKind, EventSource, Severity};

#[derive(Queryable, Selectable, Debug, Clone, serde::Deserialize)]
#[diesel(table_name = grants, check_for_backend(diesel::pg::Pg))]
pub struct GrantRow {
    pub id: Uuid,
    pub peer_id: Uuid,
    #[diesel(column_name = token_digest)]
    pub token_digest: String,
    pub resource_kind: String,
    pub resource_id: Option<String>,
    pub permission_scopes: Vec<Option<String>>,
    pub node_instance_ids: Vec<Option<String>>,
    pub sdwan_network_ids: Vec<Option<String>>,
    /// `cidr[]`; `None` marks an entry that could not be read (the column's CHECK forbids
    /// NULL elements, so only a malformed answer produces one): the grant then denies.
    #[serde(deserialize_with = "lenient_networks")]
    pub source_cidrs: Vec<Option<IpNet>>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub auto_renew: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The last refusal of a call under this grant, and what it said.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_denied_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub last_denial: Option<String>,
}

/// Reads a JSON list of networks, keeping an entry it cannot read as `None` instead of failing
/// the whole answer (or, worse, dropping the entry and widening the allowlist).
fn lenient_networks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Option<IpNet>>, D::Error> {
    let raw: Vec<Option<String>> = serde::Deserialize::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|e| e.and_then(|e| e.parse().ok()))
        .collect())
}

/// Flattens a text[] column (its elements are never NULL: a CHECK forbids it).
pub fn texts(v: &[Option<String>]) -> Vec<String> {
    v.iter().flatten().cloned().collect()
}

pub struct NewGrant<'a> {
    pub peer_id: Uuid,
    pub token_digest: &'a str,
    pub resource_kind: &'a str,
    pub resource_id: Option<&'a str>,
    pub permission_scopes: &'a [String],
    pub node_instance_ids: &'a [String],
    pub sdwan_network_ids: &'a [String],
    pub source_cidrs: &'a [IpNet],
    pub ttl_days: u32,
    pub auto_renew: bool,
    pub created_by: Option<Uuid>,
}

fn some(v: &[String]) -> Vec<Option<String>> {
    v.iter().cloned().map(Some).collect()
}

fn event(
    conn: &mut PgConnection,
    kind: EventKind,
    g: &GrantRow,
    extra: Value,
) -> Result<(), StoreError> {
    let mut payload = serde_json::json!({
        "grant_id": g.id,
        "resource_kind": g.resource_kind,
        "resource_id": g.resource_id,
        "expires_at": g.expires_at.format(&time::format_description::well_known::Rfc3339).ok(),
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    fleet::insert(
        conn,
        &NewEvent {
            kind,
            severity: Severity::Low,
            source: EventSource::FederationGrant,
            peer_id: Some(g.peer_id),
            payload: &payload,
            correlation_id: None,
        },
    )?;
    Ok(())
}

/// Issues a grant (expiry by the database clock) and records `federation.grant.issued`.
pub fn issue(conn: &mut PgConnection, g: &NewGrant<'_>) -> Result<GrantRow, StoreError> {
    conn.transaction(|conn| {
        let now = crate::database_now(conn)?;
        let row: GrantRow = diesel::insert_into(grants::table)
            .values((
                grants::id.eq(Uuid::new_v4()),
                grants::peer_id.eq(g.peer_id),
                grants::token_digest.eq(g.token_digest),
                grants::resource_kind.eq(g.resource_kind),
                grants::resource_id.eq(g.resource_id),
                grants::permission_scopes.eq(some(g.permission_scopes)),
                grants::node_instance_ids.eq(some(g.node_instance_ids)),
                grants::sdwan_network_ids.eq(some(g.sdwan_network_ids)),
                grants::source_cidrs.eq(g
                    .source_cidrs
                    .iter()
                    .copied()
                    .map(Some)
                    .collect::<Vec<_>>()),
                grants::expires_at.eq(now + time::Duration::days(i64::from(g.ttl_days))),
                grants::auto_renew.eq(g.auto_renew),
                grants::created_by.eq(g.created_by),
            ))
            .returning(GrantRow::as_returning())
            .get_result(conn)?;
        event(
            conn,
            EventKind::GrantIssued,
            &row,
            serde_json::json!({ "operator_id": g.created_by }),
        )?;
        Ok(row)
    })
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<GrantRow>, StoreError> {
    Ok(grants::table
        .find(id)
        .select(GrantRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn by_token_digest(
    conn: &mut PgConnection,
    digest: &str,
) -> Result<Option<GrantRow>, StoreError> {
    Ok(grants::table
        .filter(grants::token_digest.eq(digest))
        .select(GrantRow::as_select())
        .first(conn)
        .optional()?)
}

/// Lifecycle filter of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Active,
    Expired,
    Revoked,
}

pub fn list(
    conn: &mut PgConnection,
    peer_id: Option<Uuid>,
    lifecycle: Option<Lifecycle>,
) -> Result<Vec<GrantRow>, StoreError> {
    let mut q = grants::table.select(GrantRow::as_select()).into_boxed();
    if let Some(p) = peer_id {
        q = q.filter(grants::peer_id.eq(p));
    }
    q = match lifecycle {
        None => q,
        Some(Lifecycle::Revoked) => q.filter(grants::revoked_at.is_not_null()),
        Some(Lifecycle::Expired) => q
            .filter(grants::revoked_at.is_null())
            .filter(grants::expires_at.le(crate::now())),
        Some(Lifecycle::Active) => q
            .filter(grants::revoked_at.is_null())
            .filter(grants::expires_at.gt(crate::now())),
    };
    Ok(q.order((grants::created_at.desc(), grants::id.desc()))
        .load(conn)?)
}

/// Revokes a live grant; `None` when it does not exist, `Some(Err(()))` when already revoked.
pub fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    actor: Option<Uuid>,
) -> Result<Option<Result<GrantRow, GrantRow>>, StoreError> {
    conn.transaction(|conn| {
        let Some(current) = grants::table
            .find(id)
            .select(GrantRow::as_select())
            .for_update()
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        if current.revoked_at.is_some() {
            return Ok(Some(Err(current)));
        }
        let row: GrantRow = diesel::update(grants::table.find(id))
            .set((
                grants::revoked_at.eq(crate::now_nullable()),
                grants::revocation_reason.eq(reason),
                grants::updated_at.eq(crate::now()),
            ))
            .returning(GrantRow::as_returning())
            .get_result(conn)?;
        event(
            conn,
            EventKind::GrantRevoked,
            &row,
            serde_json::json!({ "reason": reason, "operator_id": actor }),
        )?;
        Ok(Some(Ok(row)))
    })
}

/// Moves a live grant's expiry to `ttl_days` from now; `None` when missing or revoked.
pub fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    ttl_days: u32,
    actor: Option<Uuid>,
) -> Result<Option<GrantRow>, StoreError> {
    conn.transaction(|conn| {
        let now = crate::database_now(conn)?;
        let row: Option<GrantRow> =
            diesel::update(grants::table.find(id).filter(grants::revoked_at.is_null()))
                .set((
                    grants::expires_at.eq(now + time::Duration::days(i64::from(ttl_days))),
                    grants::updated_at.eq(crate::now()),
                ))
                .returning(GrantRow::as_returning())
                .get_result(conn)
                .optional()?;
        if let Some(r) = &row {
            event(
                conn,
                EventKind::GrantRenewed,
                r,
                serde_json::json!({ "operator_id": actor }),
            )?;
        }
        Ok(row)
    })
}

#[derive(Queryable, Selectable, Debug, Clone, serde::Deserialize)]
#[diesel(table_name = shared_resources, check_for_backend(diesel::pg::Pg))]
pub struct Resource {
    pub kind: String,
    pub id: String,
    pub document: Value,
    pub version: i32,
    pub updated_by_peer: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The presented certificate as the mTLS chain needs it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CertificateFacts {
    pub peer_id: Uuid,
    pub direction: String,
    pub revoked: bool,
    /// None when the certificate's peer row is gone.
    pub peer_status: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A shared resource as a peer's read returns it: the document kept as the JSON text
/// PostgreSQL sent, never decoded (the API passes it through).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LookupResource {
    pub kind: String,
    pub id: String,
    pub document: Box<serde_json::value::RawValue>,
    pub version: i32,
}

/// What a peer's resource call needs, read in one round trip.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ResourceLookup {
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    pub certificate: Option<CertificateFacts>,
    pub grant: Option<GrantRow>,
    pub resource: Option<LookupResource>,
}

diesel::define_sql_function! {
    /// Migration 000012: `federation_resource_lookup` for many calls in one statement.
    fn federation_resource_lookup_batch(
        fingerprints: diesel::sql_types::Array<diesel::sql_types::Text>,
        grant_digests: diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Text>>,
        kinds: diesel::sql_types::Array<diesel::sql_types::Text>,
        ids: diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Text>>,
    ) -> diesel::sql_types::Text;
}

/// One resource call's lookup, as `resource_lookup` takes it.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub fingerprint: String,
    pub grant_digest: Option<String>,
    pub kind: String,
    pub resource_id: Option<String>,
}

/// `resource_lookup` for many calls in one statement; answers in request order.
pub fn resource_lookup_batch(
    conn: &mut PgConnection,
    requests: &[LookupRequest],
) -> Result<Vec<ResourceLookup>, StoreError> {
    let fingerprints: Vec<&str> = requests.iter().map(|r| r.fingerprint.as_str()).collect();
    let digests: Vec<Option<&str>> = requests.iter().map(|r| r.grant_digest.as_deref()).collect();
    let kinds: Vec<&str> = requests.iter().map(|r| r.kind.as_str()).collect();
    let ids: Vec<Option<&str>> = requests.iter().map(|r| r.resource_id.as_deref()).collect();
    let answer: String = diesel::select(federation_resource_lookup_batch(
        fingerprints,
        digests,
        kinds,
        ids,
    ))
    .get_result(conn)?;
    // Parsed straight into the row structs: no intermediate JSON tree to build and copy.
    let corrupt = || StoreError::CorruptRow {
        table: "shared_resources",
        column: "federation_resource_lookup_batch",
        value: answer.chars().take(200).collect(),
    };
    let answers: Vec<ResourceLookup> = serde_json::from_str(&answer).map_err(|_| corrupt())?;
    if answers.len() != requests.len() {
        return Err(corrupt());
    }
    Ok(answers)
}

pub fn get_resource(
    conn: &mut PgConnection,
    kind: &str,
    id: &str,
) -> Result<Option<Resource>, StoreError> {
    Ok(shared_resources::table
        .find((kind, id))
        .select(Resource::as_select())
        .first(conn)
        .optional()?)
}

/// Creates or replaces a document, bumping its version.
pub fn put_resource(
    conn: &mut PgConnection,
    kind: &str,
    id: &str,
    document: &Value,
    by_peer: Option<Uuid>,
) -> Result<Resource, StoreError> {
    Ok(diesel::insert_into(shared_resources::table)
        .values((
            shared_resources::kind.eq(kind),
            shared_resources::id.eq(id),
            shared_resources::document.eq(document),
            shared_resources::updated_by_peer.eq(by_peer),
        ))
        .on_conflict((shared_resources::kind, shared_resources::id))
        .do_update()
        .set((
            shared_resources::document.eq(document),
            shared_resources::version.eq(shared_resources::version + 1),
            shared_resources::updated_by_peer.eq(by_peer),
            shared_resources::updated_at.eq(crate::now()),
        ))
        .returning(Resource::as_returning())
        .get_result(conn)?)
}

pub fn delete_resource(conn: &mut PgConnection, kind: &str, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(shared_resources::table.find((kind, id))).execute(conn)? == 1)
}

/// Renews, in one transaction, every live (unexpired, unrevoked) `auto_renew` grant of an
/// enrolled, active or degraded peer that expires within `within_days` (database clock): its expiry becomes `ttl_days`
/// from now, and each gets a `federation.grant.renewed` event. Grants of suspended or revoked
/// peers are left alone.
pub fn auto_renew_due(
    conn: &mut PgConnection,
    within_days: u32,
    ttl_days: u32,
) -> Result<Vec<GrantRow>, StoreError> {
    use crate::schema::peers;
    conn.transaction(|conn| {
        let now = crate::database_now(conn)?;
        let live: Vec<&str> = vec!["enrolled", "active", "degraded"];
        let due: Vec<Uuid> = grants::table
            .inner_join(peers::table)
            .filter(grants::auto_renew.eq(true))
            .filter(grants::revoked_at.is_null())
            // Live only: an expired grant stays expired (renewal is not revival).
            .filter(grants::expires_at.gt(now))
            .filter(grants::expires_at.le(now + time::Duration::days(i64::from(within_days))))
            .filter(peers::status.eq_any(live))
            .select(grants::id)
            .for_update()
            .skip_locked()
            .load(conn)?;
        let renewed: Vec<GrantRow> = diesel::update(grants::table.filter(grants::id.eq_any(&due)))
            .set((
                grants::expires_at.eq(now + time::Duration::days(i64::from(ttl_days))),
                grants::updated_at.eq(crate::now()),
            ))
            .returning(GrantRow::as_returning())
            .get_results(conn)?;
        for g in &renewed {
            event(
                conn,
                EventKind::GrantRenewed,
                g,
                serde_json::json!({ "auto_renew": true }),
            )?;
        }
        Ok(renewed)
    })
}

/// Records a refusal of a call under this grant (the doctor's "last denial"). A flood of the
/// same denial writes at most once a second.
pub fn record_denial(conn: &mut PgConnection, id: Uuid, message: &str) -> Result<(), StoreError> {
    diesel::update(
        grants::table.filter(grants::id.eq(id)).filter(
            grants::last_denied_at
                .is_null()
                .or(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "last_denied_at < now() - interval '1 second'",
                ))
                .or(grants::last_denial.is_distinct_from(message)),
        ),
    )
    .set((
        grants::last_denied_at.eq(crate::now_nullable()),
        grants::last_denial.eq(message),
    ))
    .execute(conn)?;
    Ok(())
}
