//! The instance-to-instance protocol on the federation listener (`/api/v1/system/federation_api`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Deserialize, Serialize, Clone)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Instance {
    pub instance_id: Uuid,
    pub url: String,
}

#[derive(Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = FederationAcceptRequest))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct AcceptRequest {
    pub peer_id: Uuid,
    pub acceptance_token: Option<String>,
    pub contract_version: i32,
    pub instance: Instance,
    pub csr_pem: String,
    pub ca_pem: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub capabilities: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub extension_slugs: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub endpoints: Option<Value>,
}

impl std::fmt::Debug for AcceptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptRequest")
            .field("peer_id", &self.peer_id)
            .field("acceptance_token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct HandshakeRequest {
    pub client_cert_pem: String,
    /// The caller's CA (required, SPEC §4): it must be the CA the receiver pinned at accept.
    pub ca_chain_pem: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub capabilities: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub extension_slugs: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub endpoints: Option<Value>,
}

#[derive(Debug, Deserialize, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct HeartbeatRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub capabilities: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub endpoints: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub sync_cursor: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub extension_slugs: Option<Value>,
    #[serde(default)]
    pub platform_version: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CertificateRenewRequest))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct RenewRequest {
    pub csr_pem: String,
}

/// A's answer to accept: B's client certificate, A's CA, A's CSR for B to sign, who A is and
/// how A sees the peering (B mirrors `spawn_role`). Enum fields are text so that B can refuse
/// a value it does not know instead of failing to parse the whole answer.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct AcceptAnswer {
    pub peer_id: Uuid,
    /// A's status for the peer after accept (`accepted`).
    pub status: String,
    pub client_cert_pem: String,
    pub ca_chain_pem: String,
    pub csr_pem: String,
    pub instance: Instance,
    pub peer_kind: Option<String>,
    pub spawn_role: Option<String>,
    pub spawn_mode: Option<String>,
}

/// The handshake's answer.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct HandshakeAnswer {
    pub peer_id: Uuid,
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_handshake_at: Option<OffsetDateTime>,
}

/// A heartbeat's answer.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct HeartbeatAnswer {
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_heartbeat_at: Option<OffsetDateTime>,
}

/// A renewed client certificate.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct RenewAnswer {
    pub client_cert_pem: String,
    pub ca_chain_pem: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub not_after: Option<OffsetDateTime>,
}

/// A shared resource as a peer reads it under a grant (the document only on reads).
pub use crate::grants::ResourceView;
