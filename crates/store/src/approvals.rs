//! `intervention_policies`, `approval_requests`, `approval_execution_attempts` and `agents`
//! (SPEC §7). Every change writes its event in the caller's transaction; the rules themselves
//! live in `powernode_domain::approval`.

use diesel::prelude::*;
use powernode_domain::approval::{
    ApprovalStatus, DecisionRefusal, ExecutionStatus, Lowering, Policy, PolicyState, RequestState,
    SDWAN_MANAGER, TimeoutAction,
};
use powernode_domain::events::{ApprovalEvent, EventKind, EventSource, Severity};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::events::{self as fleet, NewEvent};
use crate::peers::Sealed;
use crate::schema::{
    agents, approval_execution_attempts, approval_requests, intervention_policies,
};

fn corrupt(table: &'static str, column: &'static str, value: &str) -> StoreError {
    StoreError::CorruptRow {
        table,
        column,
        value: value.to_owned(),
    }
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Why an approval operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalOpError {
    #[error("{0} not found")]
    NotFound(String),
    /// 403 or 409, by the refusal.
    #[error(transparent)]
    Refused(#[from] DecisionRefusal),
    /// 403 with this message.
    #[error("{0}")]
    Forbidden(String),
    /// 409 with this message.
    #[error("{0}")]
    Conflict(String),
    /// 422 `<field> <message>`.
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ApprovalOpError {
    fn from(e: diesel::result::Error) -> Self {
        ApprovalOpError::Store(e.into())
    }
}

fn event(
    conn: &mut PgConnection,
    kind: EventKind,
    source: EventSource,
    severity: Severity,
    peer_id: Option<Uuid>,
    correlation_id: Option<Uuid>,
    payload: &Value,
) -> Result<(), StoreError> {
    fleet::insert(
        conn,
        &NewEvent {
            kind,
            severity,
            source,
            peer_id,
            payload,
            correlation_id,
        },
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Policies

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

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = approval_requests, check_for_backend(diesel::pg::Pg))]
struct RequestRow {
    id: Uuid,
    action: String,
    params: Value,
    params_sealed: Option<Vec<u8>>,
    requested_by: Uuid,
    status: String,
    expires_at: OffsetDateTime,
    decided_by: Option<String>,
    decided_at: Option<OffsetDateTime>,
    comments: Option<String>,
    execution_status: String,
    execution_error: Option<String>,
    executed_at: Option<OffsetDateTime>,
    result: Option<Value>,
    result_sealed: Option<Vec<u8>>,
    result_claimed_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// One approval request. The sealed fields never leave the API process.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub id: Uuid,
    pub action: String,
    pub params: Value,
    pub params_sealed: Option<Sealed>,
    pub requested_by: Uuid,
    pub status: ApprovalStatus,
    pub expires_at: OffsetDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub comments: Option<String>,
    pub execution_status: ExecutionStatus,
    pub execution_error: Option<String>,
    pub executed_at: Option<OffsetDateTime>,
    pub result: Option<Value>,
    pub result_sealed: Option<Sealed>,
    pub result_claimed_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl ApprovalRequest {
    pub fn state(&self) -> RequestState {
        RequestState {
            status: self.status,
            requested_by: self.requested_by.to_string(),
            expires_at: self.expires_at,
        }
    }

    /// The peer the request concerns, when its params name one.
    pub fn peer_id(&self) -> Option<Uuid> {
        self.params
            .get("peer_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    }
}

impl TryFrom<RequestRow> for ApprovalRequest {
    type Error = StoreError;

    fn try_from(r: RequestRow) -> Result<Self, StoreError> {
        Ok(ApprovalRequest {
            status: r
                .status
                .parse()
                .map_err(|_| corrupt("approval_requests", "status", &r.status))?,
            execution_status: r.execution_status.parse().map_err(|_| {
                corrupt("approval_requests", "execution_status", &r.execution_status)
            })?,
            id: r.id,
            action: r.action,
            params: r.params,
            params_sealed: r.params_sealed.map(Sealed),
            requested_by: r.requested_by,
            expires_at: r.expires_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            comments: r.comments,
            execution_error: r.execution_error,
            executed_at: r.executed_at,
            result: r.result,
            result_sealed: r.result_sealed.map(Sealed),
            result_claimed_at: r.result_claimed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn request_event(
    conn: &mut PgConnection,
    which: ApprovalEvent,
    r: &ApprovalRequest,
    extra: Value,
) -> Result<(), StoreError> {
    let mut payload = json!({
        "approval_request_id": r.id,
        "action": r.action,
        "status": r.status,
        "requested_by": r.requested_by,
        "decided_by": r.decided_by,
        "comments": r.comments,
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    let (source, severity) = which.source_and_severity();
    event(
        conn,
        EventKind::Approval(which),
        source,
        severity,
        r.peer_id(),
        Some(r.id),
        &payload,
    )
}

/// A request to queue; `expires_at` = database now + `timeout_secs`.
pub struct NewRequest<'a> {
    pub id: Uuid,
    pub action: &'a str,
    pub params: &'a Value,
    pub params_sealed: Option<&'a Sealed>,
    pub requested_by: Uuid,
    pub timeout_secs: u32,
}

/// Queues a request and writes `approval.requested`.
pub fn insert_request(
    conn: &mut PgConnection,
    new: &NewRequest<'_>,
) -> Result<ApprovalRequest, StoreError> {
    let row: RequestRow = diesel::insert_into(approval_requests::table)
        .values((
            approval_requests::id.eq(new.id),
            approval_requests::action.eq(new.action),
            approval_requests::params.eq(new.params),
            approval_requests::params_sealed.eq(new.params_sealed.map(|s| s.0.as_slice())),
            approval_requests::requested_by.eq(new.requested_by),
            approval_requests::expires_at.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                &format!("now() + make_interval(secs => {})", new.timeout_secs),
            )),
        ))
        .returning(RequestRow::as_returning())
        .get_result(conn)?;
    let request = ApprovalRequest::try_from(row)?;
    request_event(
        conn,
        ApprovalEvent::Requested,
        &request,
        json!({"params": request.params, "expires_at": rfc3339(request.expires_at)}),
    )?;
    Ok(request)
}

pub fn find_request(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ApprovalRequest>, StoreError> {
    approval_requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first(conn)
        .optional()?
        .map(ApprovalRequest::try_from)
        .transpose()
}

/// Newest first, optionally by status.
pub fn list_requests(
    conn: &mut PgConnection,
    status: Option<ApprovalStatus>,
    limit: i64,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let mut q = approval_requests::table
        .select(RequestRow::as_select())
        .order(approval_requests::created_at.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(approval_requests::status.eq(s.as_str()));
    }
    q.load(conn)?
        .into_iter()
        .map(ApprovalRequest::try_from)
        .collect()
}

fn lock_request(conn: &mut PgConnection, id: Uuid) -> Result<ApprovalRequest, ApprovalOpError> {
    approval_requests::table
        .find(id)
        .select(RequestRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| ApprovalOpError::NotFound(format!("approval request {id}")))?
        .try_into()
        .map_err(ApprovalOpError::Store)
}

fn close(
    conn: &mut PgConnection,
    id: Uuid,
    status: ApprovalStatus,
    decided_by: &str,
    comments: Option<&str>,
) -> Result<ApprovalRequest, StoreError> {
    let target = approval_requests::table.find(id);
    let decided = (
        approval_requests::status.eq(status.as_str()),
        approval_requests::decided_by.eq(Some(decided_by)),
        approval_requests::decided_at.eq(crate::now_nullable()),
        approval_requests::comments.eq(comments),
        approval_requests::updated_at.eq(crate::now()),
    );
    let row: RequestRow = if status == ApprovalStatus::Approved {
        // The execution still needs the sealed params: they stay until it has run.
        diesel::update(target)
            .set(decided)
            .returning(RequestRow::as_returning())
            .get_result(conn)?
    } else {
        diesel::update(target)
            .set((
                decided,
                approval_requests::params_sealed.eq(None::<Vec<u8>>),
            ))
            .returning(RequestRow::as_returning())
            .get_result(conn)?
    };
    row.try_into()
}

/// Approve or reject. The row lock makes concurrent decisions queue behind the first, which
/// then finds the request decided: exactly one decision wins, with one event.
pub fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    approve: bool,
    decider: Uuid,
    comments: Option<&str>,
) -> Result<ApprovalRequest, ApprovalOpError> {
    let current = lock_request(conn, id)?;
    let now = crate::database_now(conn)?;
    current.state().check_decision(&decider.to_string(), now)?;
    let status = if approve {
        ApprovalStatus::Approved
    } else {
        ApprovalStatus::Rejected
    };
    let decided = close(conn, id, status, &decider.to_string(), comments)?;
    let which = if approve {
        ApprovalEvent::Approved
    } else {
        ApprovalEvent::Rejected
    };
    request_event(conn, which, &decided, json!({}))?;
    Ok(decided)
}

/// The requester withdraws a pending request.
pub fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    requester: Uuid,
    comments: Option<&str>,
) -> Result<ApprovalRequest, ApprovalOpError> {
    let current = lock_request(conn, id)?;
    let now = crate::database_now(conn)?;
    current.state().check_cancel(&requester.to_string(), now)?;
    let cancelled = close(
        conn,
        id,
        ApprovalStatus::Cancelled,
        &requester.to_string(),
        comments,
    )?;
    request_event(conn, ApprovalEvent::Cancelled, &cancelled, json!({}))?;
    Ok(cancelled)
}

/// Applies each policy's timeout action to pending requests past `expires_at` (skipping rows
/// another transaction holds), one `approval.expired` event each.
pub fn expire_due(conn: &mut PgConnection) -> Result<Vec<ApprovalRequest>, StoreError> {
    let due: Vec<ApprovalRequest> = approval_requests::table
        .filter(approval_requests::status.eq(ApprovalStatus::Pending.as_str()))
        .filter(approval_requests::expires_at.le(crate::now()))
        .order(approval_requests::expires_at)
        .select(RequestRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)?
        .into_iter()
        .map(ApprovalRequest::try_from)
        .collect::<Result<_, _>>()?;
    let mut closed = Vec::with_capacity(due.len());
    for r in due {
        let policy = find_policy(conn, &r.action)?;
        // Only an action that allows it may approve on timeout; anything else rejects.
        let action = policy
            .filter(|p| p.state.timeout_approve_allowed)
            .map_or(TimeoutAction::Reject, |p| p.state.timeout_action);
        let waited = u32::try_from((r.expires_at - r.created_at).whole_seconds()).unwrap_or(0);
        let comment = powernode_domain::approval::timeout_comment(waited, action);
        let status = match action {
            TimeoutAction::Reject => ApprovalStatus::Expired,
            TimeoutAction::Approve => ApprovalStatus::Approved,
        };
        let expired = close(conn, r.id, status, SDWAN_MANAGER, Some(&comment))?;
        request_event(
            conn,
            ApprovalEvent::Expired,
            &expired,
            json!({"timeout_action": action}),
        )?;
        closed.push(expired);
    }
    Ok(closed)
}

/// The oldest approved, unexecuted request, locked (`FOR UPDATE SKIP LOCKED`) for the rest of
/// the caller's transaction, which spans the execution.
pub fn claim_executable(conn: &mut PgConnection) -> Result<Option<ApprovalRequest>, StoreError> {
    approval_requests::table
        .filter(approval_requests::status.eq(ApprovalStatus::Approved.as_str()))
        .filter(approval_requests::execution_status.eq(ExecutionStatus::Pending.as_str()))
        .order(approval_requests::decided_at)
        .select(RequestRow::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .optional()?
        .map(ApprovalRequest::try_from)
        .transpose()
}

/// Executions already started for a request (committed before each run).
pub fn started_attempts(conn: &mut PgConnection, id: Uuid) -> Result<u32, StoreError> {
    let n: i64 = approval_execution_attempts::table
        .filter(approval_execution_attempts::request_id.eq(id))
        .count()
        .get_result(conn)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Records that an execution starts; the caller commits this before running the action.
pub fn start_attempt(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    diesel::insert_into(approval_execution_attempts::table)
        .values(approval_execution_attempts::request_id.eq(id))
        .execute(conn)?;
    Ok(())
}

/// What an execution produced.
pub enum Outcome {
    Succeeded {
        result: Value,
        result_sealed: Option<Sealed>,
    },
    Failed(String),
}

/// Records an execution's outcome (wiping the sealed params) and writes `approval.executed`
/// or `approval.execution_failed`.
pub fn record_execution(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: Outcome,
    attempt: u32,
) -> Result<ApprovalRequest, StoreError> {
    let (status, error, result, sealed) = match outcome {
        Outcome::Succeeded {
            result,
            result_sealed,
        } => (
            ExecutionStatus::Succeeded,
            None,
            Some(result),
            result_sealed,
        ),
        Outcome::Failed(e) => (ExecutionStatus::Failed, Some(e), None, None),
    };
    let row: RequestRow = diesel::update(approval_requests::table.find(id))
        .set((
            approval_requests::execution_status.eq(status.as_str()),
            approval_requests::execution_error.eq(error.as_deref()),
            approval_requests::executed_at.eq(crate::now_nullable()),
            approval_requests::result.eq(result.as_ref()),
            approval_requests::result_sealed.eq(sealed.as_ref().map(|s| s.0.as_slice())),
            approval_requests::params_sealed.eq(None::<Vec<u8>>),
            approval_requests::updated_at.eq(crate::now()),
        ))
        .returning(RequestRow::as_returning())
        .get_result(conn)?;
    let recorded = ApprovalRequest::try_from(row)?;
    let which = match status {
        ExecutionStatus::Succeeded => ApprovalEvent::Executed,
        _ => ApprovalEvent::ExecutionFailed,
    };
    request_event(
        conn,
        which,
        &recorded,
        json!({"execution_status": status, "execution_error": error, "result": result, "attempt": attempt}),
    )?;
    Ok(recorded)
}

/// Hands the requester what the execution produced, once; the sealed part is wiped.
pub fn claim_result(
    conn: &mut PgConnection,
    id: Uuid,
    requester: Uuid,
) -> Result<ApprovalRequest, ApprovalOpError> {
    let current = lock_request(conn, id)?;
    if current.requested_by != requester {
        return Err(ApprovalOpError::Forbidden(
            "Only the requester can claim the result".to_owned(),
        ));
    }
    if current.execution_status != ExecutionStatus::Succeeded {
        return Err(ApprovalOpError::Conflict(format!(
            "result not available: execution {}",
            current.execution_status
        )));
    }
    if current.result_claimed_at.is_some() {
        return Err(ApprovalOpError::Conflict(
            "result already claimed".to_owned(),
        ));
    }
    diesel::update(approval_requests::table.find(id))
        .set((
            approval_requests::result_sealed.eq(None::<Vec<u8>>),
            approval_requests::result_claimed_at.eq(crate::now_nullable()),
            approval_requests::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(current)
}

pub fn pending_count(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(approval_requests::table
        .filter(approval_requests::status.eq(ApprovalStatus::Pending.as_str()))
        .count()
        .get_result(conn)?)
}

// ---------------------------------------------------------------------------------------------
// Agents

#[derive(Queryable, Selectable, Debug, Clone, serde::Serialize)]
#[diesel(table_name = agents, check_for_backend(diesel::pg::Pg))]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub interval_secs: i32,
    pub status_reason: Option<String>,
    pub status_changed_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Agent {
    pub fn paused(&self) -> bool {
        self.status == "paused"
    }
}

pub fn list_agents(conn: &mut PgConnection) -> Result<Vec<Agent>, StoreError> {
    Ok(agents::table
        .order(agents::name)
        .select(Agent::as_select())
        .load(conn)?)
}

pub fn find_agent(conn: &mut PgConnection, name: &str) -> Result<Option<Agent>, StoreError> {
    Ok(agents::table
        .filter(agents::name.eq(name))
        .select(Agent::as_select())
        .first(conn)
        .optional()?)
}

/// Pauses or resumes an agent; `agent.paused` / `agent.resumed`.
pub fn set_agent_paused(
    conn: &mut PgConnection,
    name: &str,
    paused: bool,
    by: Uuid,
    reason: Option<&str>,
) -> Result<Agent, ApprovalOpError> {
    let current: Agent = agents::table
        .filter(agents::name.eq(name))
        .select(Agent::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| ApprovalOpError::NotFound(format!("agent {name}")))?;
    if current.paused() == paused {
        return Err(ApprovalOpError::Conflict(format!(
            "Agent {name} is already {}",
            current.status
        )));
    }
    let status = if paused { "paused" } else { "active" };
    let agent: Agent = diesel::update(agents::table.find(current.id))
        .set((
            agents::status.eq(status),
            agents::status_reason.eq(reason),
            agents::status_changed_by.eq(Some(by)),
            agents::updated_at.eq(crate::now()),
        ))
        .returning(Agent::as_returning())
        .get_result(conn)?;
    event(
        conn,
        if paused {
            EventKind::AgentPaused
        } else {
            EventKind::AgentResumed
        },
        EventSource::SdwanManager,
        Severity::Medium,
        None,
        None,
        &json!({"agent": name, "status": status, "operator_id": by, "reason": reason}),
    )?;
    Ok(agent)
}
