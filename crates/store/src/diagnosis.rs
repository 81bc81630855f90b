//! What the doctor (SPEC §9.3) reads, in one short read per diagnosis: a handful of queries,
//! none per peer.

use diesel::prelude::*;
use powernode_domain::approval::SDWAN_MANAGER_AGENT;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::approvals::{self, Agent, StoredPolicy};
use crate::certificates::{self, INBOUND, OUTBOUND, PeerCertificate, ServerCertificate};
use crate::events::FleetEvent;
use crate::grants::GrantRow;
use crate::peers::Peer;
use crate::schema::{approval_requests as ar, fleet_events as fe, grants as g};
use crate::worker_status::{self, ScheduleStatus};

/// A pending approval request, as the doctor names it.
#[derive(Queryable, Debug, Clone)]
pub struct PendingApproval {
    pub id: Uuid,
    pub action: String,
    pub expires_at: OffsetDateTime,
}

/// The instance: schedules as reported, the SDWAN Manager, policies, approvals expiring soon,
/// the listener's certificate (when the CA issued it).
#[derive(Clone)]
pub struct InstanceFacts {
    pub now: OffsetDateTime,
    pub schedules: Vec<ScheduleStatus>,
    pub manager: Option<Agent>,
    pub policies: Vec<StoredPolicy>,
    pub expiring: Vec<PendingApproval>,
    pub pending: i64,
    pub listener_certificate: Option<ServerCertificate>,
}

pub fn instance(
    conn: &mut PgConnection,
    listener_host: &str,
    expiring_within_secs: u32,
) -> Result<InstanceFacts, StoreError> {
    let now = crate::database_now(conn)?;
    Ok(InstanceFacts {
        schedules: worker_status::list(conn)?,
        manager: approvals::find_agent(conn, SDWAN_MANAGER_AGENT)?,
        policies: approvals::list_policies(conn)?,
        expiring: pending_approvals(conn, None, Some(expiring_within_secs))?,
        pending: approvals::pending_count(conn)?,
        listener_certificate: certificates::server_certificate(conn, listener_host)?,
        now,
    })
}

fn pending_approvals(
    conn: &mut PgConnection,
    peer_id: Option<Uuid>,
    expiring_within_secs: Option<u32>,
) -> Result<Vec<PendingApproval>, StoreError> {
    let mut q = ar::table
        .filter(ar::status.eq("pending"))
        .select((ar::id, ar::action, ar::expires_at))
        .order(ar::expires_at.asc())
        .into_boxed();
    if let Some(secs) = expiring_within_secs {
        q = q.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "expires_at > now() AND expires_at < now() + make_interval(secs => {secs})"
        )));
    }
    if let Some(peer) = peer_id {
        q = q.filter(
            diesel::dsl::sql::<diesel::sql_types::Text>("params->>'peer_id'").eq(peer.to_string()),
        );
    }
    Ok(q.limit(50).load(conn)?)
}

/// One peer: its row, certificates both ways (newest first), grants, pending approvals that
/// name it, the newest status event (who suspended or revoked it), and our PeerClient
/// schedule's report (whether our worker calls out at all).
#[derive(Debug, Clone)]
pub struct PeerFacts {
    pub now: OffsetDateTime,
    pub peer: Peer,
    pub inbound: Vec<PeerCertificate>,
    pub outbound: Vec<PeerCertificate>,
    pub grants: Vec<GrantRow>,
    pub approvals: Vec<PendingApproval>,
    pub last_status_event: Option<FleetEvent>,
    pub peer_client_schedule: Option<ScheduleStatus>,
}

pub fn peer(conn: &mut PgConnection, id: Uuid) -> Result<Option<PeerFacts>, StoreError> {
    let Some(peer) = crate::peers::find(conn, id)? else {
        return Ok(None);
    };
    let now = crate::database_now(conn)?;
    let last_status_event = fe::table
        .filter(fe::peer_id.eq(id))
        .filter(fe::kind.like("federation.peer.%"))
        .order((fe::emitted_at.desc(), fe::id.desc()))
        .select(FleetEvent::as_select())
        .first(conn)
        .optional()?;
    let peer_client_schedule = worker_status::list(conn)?
        .into_iter()
        .find(|s| s.schedule == "federation_peer_heartbeat");
    Ok(Some(PeerFacts {
        inbound: certificates::for_peer(conn, id, INBOUND)?,
        outbound: certificates::for_peer(conn, id, OUTBOUND)?,
        grants: g::table
            .filter(g::peer_id.eq(id))
            .order((g::created_at.desc(), g::id.desc()))
            .select(GrantRow::as_select())
            .load(conn)?,
        approvals: pending_approvals(conn, Some(id), None)?,
        last_status_event,
        peer_client_schedule,
        peer,
        now,
    }))
}
