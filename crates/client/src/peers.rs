//! Peers on the operator API (`/api/v1/system/federation/peers`).

use powernode_domain::PeerStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// What an operator sends to propose a peer, before validation.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// https base URL of the other instance's federation listener.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2048))]
    pub remote_instance_url: String,
    /// `platform` (default) or `sdwan_only`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(platform|sdwan_only)$"))]
    pub peer_kind: Option<String>,
    /// `parent`, `child` or `symmetric`; required for platform peers.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(parent|child|symmetric)$"))]
    pub spawn_role: Option<String>,
    /// `managed_child`, `autonomous_peer`, `cluster_member` or `out_of_band`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(managed_child|autonomous_peer|cluster_member|out_of_band)$")
    )]
    pub spawn_mode: Option<String>,
    /// ULA prefix the peer advertises: `fd…::/48`, `/56` or `/64`.
    pub remote_prefix_advertisement: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub extension_slugs: Option<Vec<String>>,
    pub capabilities: Option<Vec<String>>,
    /// Acceptance token lifetime; default and bounds come from settings.
    pub ttl_seconds: Option<u32>,
    /// A drill peer has no token (any caller may accept); needs drill mode outside production.
    pub drill: Option<bool>,
}

/// A peer as operators see it: every stored field except the token digest and sealed keys,
/// plus what the runbook asks (`heartbeat_stale`, `degraded_reason`, …).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerView {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "active"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub status: PeerStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Vec<String>"))]
    pub allowed_transitions: Vec<PeerStatus>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "proposed_here"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub origin: String,
    pub remote_instance_url: String,
    pub remote_instance_id: Option<Uuid>,
    pub remote_ca_sha256: Option<String>,
    pub remote_ca_pem: Option<String>,
    pub contract_version_agreed: Option<i32>,
    pub peer_kind: String,
    pub spawn_role: Option<String>,
    pub spawn_mode: Option<String>,
    pub remote_prefix_advertisement: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub endpoints: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub extension_slugs: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub capabilities: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub sync_cursor: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub metadata: Value,
    pub degraded_reason: Option<String>,
    pub heartbeat_stale: bool,
    pub acceptance_pending: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub signed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_handshake_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_heartbeat_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_outbound_heartbeat_at: Option<OffsetDateTime>,
    pub last_outbound_error: Option<String>,
    /// Since when our calls to this peer fail (absent once one succeeds).
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub outbound_failing_since: Option<OffsetDateTime>,
    /// When the status last changed (what "accepted for 3 h" measures).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub status_changed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
    /// Current certificates (peer show only): `inbound` = issued by us to the peer,
    /// `outbound` = our client certificate for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesView>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct CertificatesView {
    pub inbound: Option<CertificateFacts>,
    pub outbound: Option<CertificateFacts>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct CertificateFacts {
    pub serial: String,
    pub fingerprint_sha256: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub not_after: Option<OffsetDateTime>,
    /// Past 75 % of its lifetime (by the database clock): renewal is due.
    pub due_for_rotation: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A peer with its acceptance token: returned once, by propose and regenerate.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PeerWithToken {
    pub peer: PeerView,
    /// `pnfa1_…`; null for a drill peer. Never shown again.
    pub acceptance_token: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub acceptance_token_expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only peers in this status.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub status: Option<PeerStatus>,
    /// Page size, 1-500 (default 100). The answer's `X-Next-Cursor` header holds the cursor of
    /// the next page when there is one.
    pub limit: Option<i64>,
    /// The previous page's `X-Next-Cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    pub ttl_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Not blank, at most 500 characters (SPEC §10 `<field> <message>` otherwise).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 500, pattern = r"\S")
    )]
    pub reason: String,
}

#[derive(Debug, Deserialize, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Optional note recorded in the event.
    pub reason: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The `pnfa1_…` token the other instance's operator handed over.
    pub acceptance_token: String,
}

impl std::fmt::Debug for AcceptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptRequest { acceptance_token: [REDACTED] }")
    }
}

impl std::fmt::Debug for PeerWithToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerWithToken")
            .field("peer", &self.peer)
            .field("acceptance_token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}
