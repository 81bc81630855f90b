//! `intervention_policies`, `approval_requests`, `approval_execution_attempts` and `agents`
//! (SPEC §7). Every change writes its event in the caller's transaction; the rules themselves
//! live in `powernode_domain::approval`.

mod agent;
mod policy;
mod request;

pub use agent::*;
pub use policy::*;
pub use request::*;

use diesel::prelude::*;
use powernode_domain::approval::DecisionRefusal;
use powernode_domain::events::{EventKind, EventSource, Severity};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::events::{self as fleet, NewEvent};

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
