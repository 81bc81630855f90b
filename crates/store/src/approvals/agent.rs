//! Agents (the SDWAN Manager) and their pause switch.

use diesel::prelude::*;
use powernode_domain::events::{EventKind, EventSource, Severity};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::schema::agents;

use super::*;

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
