//! The MCP tools' arguments and results (SPEC §10's tool table). Field comments become the
//! input schema's descriptions: they are what an agent reads. Each tool's work is the REST
//! route's service; these types only adapt the shape.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::approvals::ApprovalView;
use crate::events::EventView;
use crate::peers::PeerView;

/// Propose a federation peer (the REST propose body without `drill`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProposePeerArgs {
    /// https base URL of the other instance's federation listener, e.g. `https://platform-b.example.com:3443`.
    pub remote_instance_url: String,
    /// `platform` (default) or `sdwan_only`.
    pub peer_kind: Option<String>,
    /// `parent`, `child` or `symmetric`; required for platform peers.
    pub spawn_role: Option<String>,
    /// `managed_child`, `autonomous_peer`, `cluster_member` or `out_of_band`.
    pub spawn_mode: Option<String>,
    /// ULA prefix the peer advertises: `fd…::/48`, `/56` or `/64`.
    pub remote_prefix_advertisement: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub extension_slugs: Option<Vec<String>>,
    pub capabilities: Option<Vec<String>>,
    /// Acceptance token lifetime in seconds (default and bounds are the instance's settings).
    pub ttl_seconds: Option<u32>,
    /// Makes a retried call run once: the same key with the same arguments returns the first
    /// result (1-255 visible ASCII characters, kept 24 h).
    pub idempotency_key: Option<String>,
}

/// Accept another instance's acceptance token.
#[derive(Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptPeerArgs {
    /// The `pnfa1_…` token the other instance's operator handed over (single use).
    pub acceptance_token: String,
    /// Makes a retried call run once (see propose).
    pub idempotency_key: Option<String>,
}

impl std::fmt::Debug for AcceptPeerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptPeerArgs { acceptance_token: [REDACTED], .. }")
    }
}

/// Revoke a peer (terminal; its certificates are revoked too).
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokePeerArgs {
    /// The peer's id on this instance.
    pub peer_id: Uuid,
    /// Why (recorded in the event; 1-500 characters).
    pub reason: String,
    /// Makes a retried call run once (see propose).
    pub idempotency_key: Option<String>,
}

/// List peers, oldest first, a page at a time.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListPeersArgs {
    /// Only peers in this status: proposed, accepted, enrolled, active, degraded, suspended or revoked.
    pub status: Option<String>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One peer.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerArgs {
    /// The peer's id on this instance.
    pub peer_id: Uuid,
}

/// Run a governance scan now.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ScanArgs {
    /// Makes a retried call run once (see propose).
    pub idempotency_key: Option<String>,
}

/// Diagnose the instance, or one peer.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DiagnoseArgs {
    /// A peer id: diagnose that peer; absent: the instance (schedules, SDWAN Manager, listener, databases).
    pub peer_id: Option<Uuid>,
}

/// List approval requests.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListApprovalsArgs {
    /// pending (default), approved, rejected, expired, cancelled or all.
    pub status: Option<String>,
}

/// One approval request.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalArgs {
    /// The approval request's id (from a gated call's `approval_request.id`).
    pub approval_request_id: Uuid,
}

/// Collect an executed request's result (once, by its requester).
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimArgs {
    /// The approval request's id.
    pub approval_request_id: Uuid,
    /// Makes a retried call run once (see propose).
    pub idempotency_key: Option<String>,
}

/// Recent fleet events, newest first.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RecentEventsArgs {
    /// e.g. `federation_heartbeat_sweep`, `federation_peer`, `accept_controller`, `governance`.
    pub source: Option<String>,
    /// e.g. `federation.peer.heartbeat_stale`.
    pub kind: Option<String>,
    pub peer_id: Option<Uuid>,
    /// RFC 3339 timestamp: events emitted at or after it.
    pub since: Option<String>,
    /// 1-500 (default 50).
    pub limit: Option<i64>,
}

/// The outcome of propose: the peer and its acceptance token (shown once), or — when the
/// instance's policy gates the action — the approval request it waits in.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ProposeResult {
    /// True when nothing was done yet: the call waits for another operator's approval.
    pub approval_required: bool,
    /// `Approval required: <action>` when queued.
    pub message: Option<String>,
    /// The queued request; once executed, its requester collects the token with
    /// `system_sdwan_claim_approval_result`.
    pub approval_request: Option<ApprovalView>,
    pub peer: Option<PeerView>,
    /// `pnfa1_…`, to hand to the other instance's operator. Shown once.
    pub acceptance_token: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ProposeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProposeResult")
            .field("approval_required", &self.approval_required)
            .field("peer", &self.peer.as_ref().map(|p| p.id))
            .field("acceptance_token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// The outcome of accept or revoke: the peer, or the approval request it waits in.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerResult {
    /// True when nothing was done yet: the call waits for another operator's approval.
    pub approval_required: bool,
    pub message: Option<String>,
    pub approval_request: Option<ApprovalView>,
    pub peer: Option<PeerView>,
}

/// A page of peers.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerPage {
    pub peers: Vec<PeerView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct EventList {
    pub events: Vec<EventView>,
}
