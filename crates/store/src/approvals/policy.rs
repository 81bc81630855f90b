//! Intervention policies: the gate's input, edits, emergency lowering and its restoration.

use diesel::prelude::*;
use powernode_domain::approval::{Lowering, Policy, PolicyState, SDWAN_MANAGER, TimeoutAction};
use powernode_domain::events::{ApprovalEvent, EventKind, EventSource, Severity};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::intervention_policies;

use super::*;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = intervention_policies, check_for_backend(diesel::pg::Pg))]
struct PolicyRow {
    action: String,
    policy: String,
    timeout_secs: i32,
    timeout_action: String,
    auto_approve_allowed: bool,
    timeout_approve_allowed: bool,
    lowered_policy: Option<String>,
    lowered_until: Option<OffsetDateTime>,
    lowered_by: Option<Uuid>,
    lowered_reason: Option<String>,
    updated_at: OffsetDateTime,
}

/// A stored policy with who lowered it and why.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub state: PolicyState,
    pub lowered_by: Option<Uuid>,
    pub lowered_reason: Option<String>,
    pub updated_at: OffsetDateTime,
}

fn parse_policy(column: &'static str, v: &str) -> Result<Policy, StoreError> {
    v.parse()
        .map_err(|_| corrupt("intervention_policies", column, v))
}

impl TryFrom<PolicyRow> for StoredPolicy {
    type Error = StoreError;

    fn try_from(r: PolicyRow) -> Result<Self, StoreError> {
        let lowered = match (r.lowered_policy.as_deref(), r.lowered_until) {
            (Some(p), Some(until)) => Some(Lowering {
                to: parse_policy("lowered_policy", p)?,
                until,
            }),
            _ => None,
        };
        Ok(StoredPolicy {
            state: PolicyState {
                policy: parse_policy("policy", &r.policy)?,
                timeout_secs: u32::try_from(r.timeout_secs).map_err(|_| {
                    corrupt(
                        "intervention_policies",
                        "timeout_secs",
                        &r.timeout_secs.to_string(),
                    )
                })?,
                timeout_action: r.timeout_action.parse().map_err(|_| {
                    corrupt("intervention_policies", "timeout_action", &r.timeout_action)
                })?,
                auto_approve_allowed: r.auto_approve_allowed,
                timeout_approve_allowed: r.timeout_approve_allowed,
                lowered,
                action: r.action,
            },
            lowered_by: r.lowered_by,
            lowered_reason: r.lowered_reason,
            updated_at: r.updated_at,
        })
    }
}

pub fn list_policies(conn: &mut PgConnection) -> Result<Vec<StoredPolicy>, StoreError> {
    intervention_policies::table
        .order(intervention_policies::action)
        .select(PolicyRow::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredPolicy::try_from)
        .collect()
}

pub fn find_policy(
    conn: &mut PgConnection,
    action: &str,
) -> Result<Option<StoredPolicy>, StoreError> {
    intervention_policies::table
        .find(action)
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredPolicy::try_from)
        .transpose()
}

/// The policy row, locked for the rest of the transaction.
pub fn lock_policy(conn: &mut PgConnection, action: &str) -> Result<StoredPolicy, ApprovalOpError> {
    intervention_policies::table
        .find(action)
        .select(PolicyRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| ApprovalOpError::NotFound(format!("policy {action}")))?
        .try_into()
        .map_err(ApprovalOpError::Store)
}

fn clear_lowering(conn: &mut PgConnection, action: &str) -> Result<StoredPolicy, StoreError> {
    let row: PolicyRow = diesel::update(intervention_policies::table.find(action))
        .set((
            intervention_policies::lowered_policy.eq(None::<String>),
            intervention_policies::lowered_until.eq(None::<OffsetDateTime>),
            intervention_policies::lowered_by.eq(None::<Uuid>),
            intervention_policies::lowered_reason.eq(None::<String>),
            intervention_policies::updated_at.eq(crate::now()),
        ))
        .returning(PolicyRow::as_returning())
        .get_result(conn)?;
    row.try_into()
}

fn restored_event(
    conn: &mut PgConnection,
    was: &StoredPolicy,
    by: &str,
    reason: &str,
) -> Result<(), StoreError> {
    event(
        conn,
        EventKind::PolicyRestored,
        EventSource::SdwanManager,
        Severity::Medium,
        None,
        None,
        &json!({
            "action": was.state.action,
            "from": was.state.lowered.as_ref().map(|l| l.to),
            "policy": was.state.policy,
            "restored_by": by,
            "reason": reason,
        }),
    )
}

/// Restores every lowering whose window has ended (by the database clock), one
/// `policy.restored` event each. Called on every gate evaluation and every tick; rows another
/// transaction is restoring are skipped, so each restoration is recorded once.
pub fn restore_ended(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let ended: Vec<StoredPolicy> = intervention_policies::table
        .filter(intervention_policies::lowered_until.le(crate::now_nullable()))
        .select(PolicyRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)?
        .into_iter()
        .map(StoredPolicy::try_from)
        .collect::<Result<_, _>>()?;
    for was in &ended {
        clear_lowering(conn, &was.state.action)?;
        restored_event(conn, was, SDWAN_MANAGER, "lowering window ended")?;
    }
    Ok(ended.into_iter().map(|p| p.state.action).collect())
}

/// Sets an emergency lowering (already checked by the caller) and writes `policy.lowered`.
pub fn lower(
    conn: &mut PgConnection,
    current: &StoredPolicy,
    to: Policy,
    for_secs: u32,
    by: Uuid,
    reason: &str,
) -> Result<StoredPolicy, StoreError> {
    let row: PolicyRow = diesel::update(intervention_policies::table.find(&current.state.action))
        .set((
            intervention_policies::lowered_policy.eq(Some(to.as_str())),
            intervention_policies::lowered_until.eq(crate::now_plus_secs(for_secs)),
            intervention_policies::lowered_by.eq(Some(by)),
            intervention_policies::lowered_reason.eq(Some(reason)),
            intervention_policies::updated_at.eq(crate::now()),
        ))
        .returning(PolicyRow::as_returning())
        .get_result(conn)?;
    event(
        conn,
        EventKind::PolicyLowered,
        EventSource::SdwanManager,
        Severity::Medium,
        None,
        None,
        &json!({
            "action": current.state.action,
            "from": current.state.policy,
            "to": to,
            "until": row.lowered_until.and_then(rfc3339),
            "operator_id": by,
            "reason": reason,
        }),
    )?;
    row.try_into()
}

/// Ends a lowering early (an operator's `policy restore`) and writes `policy.restored`.
pub fn restore(
    conn: &mut PgConnection,
    current: &StoredPolicy,
    by: Uuid,
) -> Result<StoredPolicy, StoreError> {
    let restored = clear_lowering(conn, &current.state.action)?;
    restored_event(conn, current, &by.to_string(), "restored by an operator")?;
    Ok(restored)
}

/// A permanent policy edit (already checked by the caller); `policy.updated`.
pub fn update_policy(
    conn: &mut PgConnection,
    current: &StoredPolicy,
    policy: Policy,
    timeout_secs: u32,
    timeout_action: TimeoutAction,
    by: Uuid,
) -> Result<StoredPolicy, StoreError> {
    let row: PolicyRow = diesel::update(intervention_policies::table.find(&current.state.action))
        .set((
            intervention_policies::policy.eq(policy.as_str()),
            intervention_policies::timeout_secs.eq(i32::try_from(timeout_secs).unwrap_or(i32::MAX)),
            intervention_policies::timeout_action.eq(timeout_action.as_str()),
            intervention_policies::updated_at.eq(crate::now()),
        ))
        .returning(PolicyRow::as_returning())
        .get_result(conn)?;
    event(
        conn,
        EventKind::PolicyUpdated,
        EventSource::SdwanManager,
        Severity::Medium,
        None,
        None,
        &json!({
            "action": current.state.action,
            "from": {"policy": current.state.policy, "timeout_seconds": current.state.timeout_secs, "timeout_action": current.state.timeout_action},
            "to": {"policy": policy, "timeout_seconds": timeout_secs, "timeout_action": timeout_action},
            "operator_id": by,
        }),
    )?;
    row.try_into()
}

/// `approval.notified` for a call that proceeded under `notify_and_proceed`.
pub fn notify(
    conn: &mut PgConnection,
    action: &str,
    params: &Value,
    peer_id: Option<Uuid>,
    by: Uuid,
) -> Result<(), StoreError> {
    let (source, severity) = ApprovalEvent::Notified.source_and_severity();
    event(
        conn,
        EventKind::Approval(ApprovalEvent::Notified),
        source,
        severity,
        peer_id,
        None,
        &json!({"action": action, "params": params, "requested_by": by}),
    )
}
