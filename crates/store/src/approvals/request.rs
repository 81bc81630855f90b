//! Approval requests: insert, decide, cancel, expire, claim for execution, record the outcome,
//! hand a result over once.

use diesel::prelude::*;
use powernode_domain::approval::{
    ApprovalStatus, ExecutionStatus, RequestState, SDWAN_MANAGER, TimeoutAction,
};
use powernode_domain::events::{ApprovalEvent, EventKind};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::peers::Sealed;
use crate::schema::{approval_execution_attempts, approval_requests};

use super::*;

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
