//! Governance (SPEC §9.1): the scan's observations, one set-based statement per finding kind
//! (never a query per peer), and the `governance_reports` table. A scan only reads peers,
//! certificates, grants and approvals.

use diesel::prelude::*;
use diesel::sql_types::{Double, Jsonb, Nullable, Text, Uuid as SqlUuid};
use powernode_domain::governance::{FindingKind, Observation, Thresholds};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::governance_reports as gr;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject_id: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    peer_id: Option<Uuid>,
    #[diesel(sql_type = Jsonb)]
    facts: Value,
}

// `sdwan_only` peers stop at accepted (SPEC §2): only platform peers handshake.
const STALE_ACCEPTED: &str =
    "SELECT 'stale_accepted_without_handshake' AS kind, id::text AS subject_id, id AS peer_id,
        jsonb_build_object('age_secs', floor(extract(epoch FROM now() - status_changed_at))::bigint,
                           'origin', origin, 'status_changed_at', status_changed_at) AS facts
   FROM peers
  WHERE status = 'accepted' AND peer_kind = 'platform'
    AND status_changed_at < now() - make_interval(secs => $1)";

// Degraded peers of any kind; enrolled/active platform peers (the kind that heartbeats)
// silent for longer than stale_after, counted from the status change when none ever came.
const HEARTBEAT_STALE: &str = "SELECT 'peer_heartbeat_stale' AS kind, id::text AS subject_id, id AS peer_id,
        jsonb_build_object('status', status, 'last_heartbeat_at', last_heartbeat_at,
            'silent_secs', floor(extract(epoch FROM now() - COALESCE(last_heartbeat_at, status_changed_at)))::bigint,
            'since_secs', floor(extract(epoch FROM now() - status_changed_at))::bigint) AS facts
   FROM peers
  WHERE status = 'degraded'
     OR (status IN ('enrolled', 'active') AND peer_kind = 'platform'
         AND COALESCE(last_heartbeat_at, status_changed_at) < now() - make_interval(secs => $1))";

const CAPABILITY_DRIFT: &str = "SELECT 'peer_capability_drift' AS kind, p.id::text AS subject_id, p.id AS peer_id,
        jsonb_build_object('missing', jsonb_agg(s.slug ORDER BY s.slug)) AS facts
   FROM peers p
  CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(p.extension_slugs) = 'array' THEN p.extension_slugs ELSE '[]'::jsonb END) AS s(slug)
  WHERE p.status <> 'revoked'
    AND NOT (CASE WHEN jsonb_typeof(p.capabilities) = 'array' THEN p.capabilities ELSE '[]'::jsonb END) ? s.slug
  GROUP BY p.id";

// Two prefixes overlap when one contains the other: the shorter equals the longer truncated to
// its length. So each live prefix is expanded to its ancestors at every prefix length in use
// (three at most: /48, /56, /64) and equi-joined with the live prefixes: hash or merge joins,
// O(n), where an `&&` join probes an index once per peer.
const OVERLAPPING_PAIRS: &str = "WITH live AS (
         SELECT id, remote_prefix_advertisement AS prefix, powernode_prefix(remote_prefix_advertisement) AS p
           FROM peers
          WHERE remote_prefix_advertisement IS NOT NULL AND status <> 'revoked'),
     lens AS (SELECT DISTINCT masklen(p) AS l FROM live WHERE p IS NOT NULL),
     ancestors AS (
         SELECT b.id, set_masklen(b.p, lens.l) AS p FROM live b JOIN lens ON lens.l <= masklen(b.p)),
     pairs AS (
         SELECT DISTINCT least(a.id, c.id) AS x, greatest(a.id, c.id) AS y
           FROM ancestors c JOIN live a ON a.p = c.p AND a.id <> c.id)
 SELECT 'overlapping_prefix_advertisement' AS kind, x::text AS subject_id, x AS peer_id,
        jsonb_build_object('other_peer_id', y, 'prefix', px.prefix, 'other_prefix', py.prefix) AS facts
   FROM pairs JOIN live px ON px.id = x JOIN live py ON py.id = y";

const OVERLAPPING_SELF: &str = "SELECT 'overlapping_prefix_advertisement' AS kind, id::text AS subject_id, id AS peer_id,
        jsonb_build_object('self', true, 'prefix', remote_prefix_advertisement, 'own_prefix', $1::text) AS facts
   FROM peers
  WHERE remote_prefix_advertisement IS NOT NULL AND status <> 'revoked'
    AND powernode_prefix(remote_prefix_advertisement) && $1::cidr";

// The newest non-revoked certificate per peer and direction: a renewal's predecessor is not
// judged. Rows without a validity (partial rows) are the doctor's business.
const CERTIFICATES: &str = "SELECT CASE WHEN c.not_after <= now() THEN 'peer_cert_expired' ELSE 'peer_cert_expiring' END AS kind,
        c.id::text AS subject_id, c.peer_id AS peer_id,
        jsonb_build_object('direction', c.direction, 'serial', c.serial, 'not_after', c.not_after,
            'remaining_secs', floor(extract(epoch FROM c.not_after - now()))::bigint) AS facts
   FROM (SELECT DISTINCT ON (peer_id, direction) id, peer_id, direction, serial, not_after
           FROM peer_certificates
          WHERE revoked_at IS NULL AND not_after IS NOT NULL
          ORDER BY peer_id, direction, not_after DESC, created_at DESC) c
   JOIN peers p ON p.id = c.peer_id AND p.status <> 'revoked'
  WHERE c.not_after < now() + make_interval(days => $1)";

// Grant maintenance renews only `auto_renew` grants of enrolled, active or degraded peers.
const GRANT_EXPIRING: &str = "SELECT 'grant_expiring' AS kind, g.id::text AS subject_id, g.peer_id AS peer_id,
        jsonb_build_object('expires_at', g.expires_at, 'auto_renew', g.auto_renew, 'peer_status', p.status,
            'remaining_secs', floor(extract(epoch FROM g.expires_at - now()))::bigint) AS facts
   FROM grants g JOIN peers p ON p.id = g.peer_id
  WHERE g.revoked_at IS NULL AND g.expires_at > now()
    AND g.expires_at < now() + make_interval(days => $1)
    AND NOT (g.auto_renew AND p.status IN ('enrolled', 'active', 'degraded'))";

const GRANT_UNRESTRICTED: &str =
    "SELECT 'grant_unrestricted' AS kind, id::text AS subject_id, peer_id AS peer_id,
        jsonb_build_object('resource_kind', resource_kind) AS facts
   FROM grants
  WHERE revoked_at IS NULL AND expires_at > now()
    AND cardinality(node_instance_ids) = 0 AND cardinality(sdwan_network_ids) = 0
    AND cardinality(source_cidrs) = 0";

const APPROVAL_EXPIRING: &str = "SELECT 'approval_expiring' AS kind, r.id::text AS subject_id,
        CASE WHEN r.params->>'peer_id' ~ '^[0-9a-fA-F-]{36}$' THEN (r.params->>'peer_id')::uuid END AS peer_id,
        jsonb_build_object('action', r.action, 'expires_at', r.expires_at, 'timeout_action', p.timeout_action,
            'remaining_secs', floor(extract(epoch FROM r.expires_at - now()))::bigint) AS facts
   FROM approval_requests r LEFT JOIN intervention_policies p ON p.action = r.action
  WHERE r.status = 'pending' AND r.expires_at > now()
    AND r.expires_at < now() + make_interval(secs => $1)";

const TOKEN_EXPIRED: &str = "SELECT 'proposed_token_expired' AS kind, id::text AS subject_id, id AS peer_id,
        jsonb_build_object('acceptance_token_expires_at', acceptance_token_expires_at,
            'expired_secs', floor(extract(epoch FROM now() - acceptance_token_expires_at))::bigint) AS facts
   FROM peers
  WHERE status = 'proposed' AND acceptance_token_expires_at < now()";

/// Everything the scanner sees, by the database clock: one statement per finding kind.
/// `own_prefix` is `POWERNODE_FEDERATION_PREFIX` (validated by the caller).
pub fn observe(
    conn: &mut PgConnection,
    t: &Thresholds,
    own_prefix: Option<&str>,
) -> Result<Vec<Observation>, StoreError> {
    let secs = |n: u32| f64::from(n);
    // These statements are cheap (milliseconds on 10,000 peers), but the planner's estimates for
    // the CTEs are large enough to trigger JIT compilation, which alone costs ~0.5 s.
    diesel::sql_query("SET LOCAL jit = off").execute(conn)?;
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(
        diesel::sql_query(STALE_ACCEPTED)
            .bind::<Double, _>(secs(t.accepted_without_handshake_secs))
            .load::<Row>(conn)?,
    );
    rows.extend(
        diesel::sql_query(HEARTBEAT_STALE)
            .bind::<Double, _>(secs(t.stale_after_secs))
            .load::<Row>(conn)?,
    );
    rows.extend(diesel::sql_query(CAPABILITY_DRIFT).load::<Row>(conn)?);
    rows.extend(diesel::sql_query(OVERLAPPING_PAIRS).load::<Row>(conn)?);
    if let Some(prefix) = own_prefix {
        rows.extend(
            diesel::sql_query(OVERLAPPING_SELF)
                .bind::<Text, _>(prefix)
                .load::<Row>(conn)?,
        );
    }
    rows.extend(
        diesel::sql_query(CERTIFICATES)
            .bind::<diesel::sql_types::Integer, _>(
                i32::try_from(t.cert_expiring_days).unwrap_or(i32::MAX),
            )
            .load::<Row>(conn)?,
    );
    rows.extend(
        diesel::sql_query(GRANT_EXPIRING)
            .bind::<diesel::sql_types::Integer, _>(
                i32::try_from(t.grant_expiring_days).unwrap_or(i32::MAX),
            )
            .load::<Row>(conn)?,
    );
    rows.extend(diesel::sql_query(GRANT_UNRESTRICTED).load::<Row>(conn)?);
    rows.extend(
        diesel::sql_query(APPROVAL_EXPIRING)
            .bind::<Double, _>(secs(t.approval_expiring_secs))
            .load::<Row>(conn)?,
    );
    rows.extend(diesel::sql_query(TOKEN_EXPIRED).load::<Row>(conn)?);
    rows.into_iter()
        .map(|r| {
            let kind = r
                .kind
                .parse::<FindingKind>()
                .map_err(|_| StoreError::CorruptRow {
                    table: "governance scan",
                    column: "kind",
                    value: r.kind.clone(),
                })?;
            Ok(Observation {
                kind,
                subject_id: r.subject_id,
                peer_id: r.peer_id,
                facts: r.facts,
            })
        })
        .collect()
}

/// The plan of the prefix-overlap join (a test checks it is an equi-join, not a nested loop
/// over pairs).
pub fn explain_overlap(conn: &mut PgConnection) -> Result<String, StoreError> {
    crate::explain(conn, OVERLAPPING_PAIRS)
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = gr, check_for_backend(diesel::pg::Pg))]
pub struct Report {
    pub id: Uuid,
    pub trigger: String,
    pub requested_by: Option<Uuid>,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub counts: Value,
    pub findings: Value,
    pub new_fingerprints: Vec<Option<String>>,
    pub resolved_findings: Value,
}

/// Serialises scans (one at a time per instance, across replicas), so each report's
/// new/resolved is judged against the report before it. Held until the transaction ends.
pub fn lock_scans(conn: &mut PgConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('powernode.governance_scan'))")
        .execute(conn)?;
    Ok(())
}

pub fn latest(conn: &mut PgConnection) -> Result<Option<Report>, StoreError> {
    Ok(gr::table
        .select(Report::as_select())
        .order((gr::finished_at.desc(), gr::id.desc()))
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Report>, StoreError> {
    Ok(gr::table
        .find(id)
        .select(Report::as_select())
        .first(conn)
        .optional()?)
}

/// Newest first.
pub fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<Report>, StoreError> {
    Ok(gr::table
        .select(Report::as_select())
        .order((gr::finished_at.desc(), gr::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// The newest report's findings as JSON text: the next scan reads their fingerprints and
/// first-seen times from it without building a JSON tree of the whole report.
pub fn latest_findings(conn: &mut PgConnection) -> Result<Option<String>, StoreError> {
    Ok(gr::table
        .select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "findings::text",
        ))
        .order((gr::finished_at.desc(), gr::id.desc()))
        .first(conn)
        .optional()?)
}

/// A report to store, its JSON columns as text serialized straight from the wire types.
pub struct NewReport<'a> {
    pub id: Uuid,
    pub trigger: &'a str,
    pub requested_by: Option<Uuid>,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub counts: &'a str,
    pub findings: &'a str,
    pub new_fingerprints: &'a [String],
    pub resolved_findings: &'a str,
}

/// Stores a report (nothing read back: the caller already holds what it wrote).
pub fn insert(conn: &mut PgConnection, report: &NewReport<'_>) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    diesel::sql_query(
        "INSERT INTO governance_reports (id, trigger, requested_by, started_at, finished_at,
                                         counts, findings, new_fingerprints, resolved_findings)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9::jsonb)",
    )
    .bind::<SqlUuid, _>(report.id)
    .bind::<Text, _>(report.trigger)
    .bind::<Nullable<SqlUuid>, _>(report.requested_by)
    .bind::<Timestamptz, _>(report.started_at)
    .bind::<Timestamptz, _>(report.finished_at)
    .bind::<Text, _>(report.counts)
    .bind::<Text, _>(report.findings)
    .bind::<Array<Text>, _>(report.new_fingerprints)
    .bind::<Text, _>(report.resolved_findings)
    .execute(conn)?;
    Ok(())
}

/// Retention (SPEC §9.1): reports older than `days`.
pub fn delete_older_than(conn: &mut PgConnection, days: u32) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM governance_reports WHERE finished_at < now() - make_interval(days => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(i32::try_from(days).unwrap_or(i32::MAX))
    .execute(conn)?)
}
