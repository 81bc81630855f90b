//! The fleet event catalogue of SPEC §8 (extend it, never rename it).

use std::fmt;

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};

use crate::peer::PeerStatus;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    AsRefStr,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    EnumIter,
    AsRefStr,
    IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventSource {
    FederationHeartbeatSweep,
    FederationHeartbeat,
    FederationHandshake,
    FederationPeer,
    FederationGrant,
    AcceptController,
    InternalCa,
    Approvals,
    SdwanManager,
    Governance,
}

/// Event kinds. Peer status events render as `federation.peer.<status>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    PeerStatus(PeerStatus),
    PeerHeartbeatStale,
    PeerDeleted,
    /// A proposed peer's acceptance token was replaced (the old one stops working).
    PeerTokenRegenerated,
    /// `federation.certificate.issued`, `.renewed`, `.revoked` (source `internal_ca`).
    CertificateIssued,
    CertificateRenewed,
    CertificateRevoked,
    /// `federation.grant.issued`, `.renewed`, `.revoked` (source `federation_grant`).
    GrantIssued,
    GrantRenewed,
    GrantRevoked,
    /// A peer wrote a shared resource under a grant.
    ResourceUpdated,
    /// `approval.<verb>` (SPEC §7): requested, approved, rejected, cancelled, notified
    /// (source `approvals`); expired, executed, execution_failed (source `sdwan_manager`).
    Approval(ApprovalEvent),
    /// `policy.lowered`, `policy.restored`, `policy.updated` (source `sdwan_manager`).
    PolicyLowered,
    PolicyRestored,
    PolicyUpdated,
    /// `agent.paused`, `agent.resumed` (source `sdwan_manager`).
    AgentPaused,
    AgentResumed,
    GovernanceScanCompleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, AsRefStr, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ApprovalEvent {
    Requested,
    Approved,
    Rejected,
    Cancelled,
    Notified,
    Expired,
    Executed,
    ExecutionFailed,
}

impl ApprovalEvent {
    /// Source and severity from the catalogue.
    pub fn source_and_severity(self) -> (EventSource, Severity) {
        match self {
            ApprovalEvent::Expired | ApprovalEvent::Executed => {
                (EventSource::SdwanManager, Severity::Low)
            }
            ApprovalEvent::ExecutionFailed => (EventSource::SdwanManager, Severity::High),
            _ => (EventSource::Approvals, Severity::Low),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::PeerStatus(s) => write!(f, "federation.peer.{s}"),
            EventKind::PeerHeartbeatStale => f.write_str("federation.peer.heartbeat_stale"),
            EventKind::PeerDeleted => f.write_str("federation.peer.deleted"),
            EventKind::PeerTokenRegenerated => f.write_str("federation.peer.token_regenerated"),
            EventKind::CertificateIssued => f.write_str("federation.certificate.issued"),
            EventKind::CertificateRenewed => f.write_str("federation.certificate.renewed"),
            EventKind::CertificateRevoked => f.write_str("federation.certificate.revoked"),
            EventKind::GrantIssued => f.write_str("federation.grant.issued"),
            EventKind::GrantRenewed => f.write_str("federation.grant.renewed"),
            EventKind::GrantRevoked => f.write_str("federation.grant.revoked"),
            EventKind::ResourceUpdated => f.write_str("federation.resource.updated"),
            EventKind::Approval(e) => write!(f, "approval.{e}"),
            EventKind::PolicyLowered => f.write_str("policy.lowered"),
            EventKind::PolicyRestored => f.write_str("policy.restored"),
            EventKind::PolicyUpdated => f.write_str("policy.updated"),
            EventKind::AgentPaused => f.write_str("agent.paused"),
            EventKind::AgentResumed => f.write_str("agent.resumed"),
            EventKind::GovernanceScanCompleted => f.write_str("governance.scan_completed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_render_as_the_catalogue_names() {
        assert_eq!(
            EventKind::PeerStatus(PeerStatus::Revoked).to_string(),
            "federation.peer.revoked"
        );
        assert_eq!(
            EventKind::PeerHeartbeatStale.to_string(),
            "federation.peer.heartbeat_stale"
        );
        assert_eq!(EventSource::AcceptController.as_ref(), "accept_controller");
        assert_eq!(
            EventKind::Approval(ApprovalEvent::ExecutionFailed).to_string(),
            "approval.execution_failed"
        );
        assert_eq!(EventSource::SdwanManager.as_ref(), "sdwan_manager");
        assert_eq!(Severity::Medium.as_ref(), "medium");
    }
}
