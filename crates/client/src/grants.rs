//! Grants and shared resources on the operator API.

use powernode_domain::grant::Check;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A grant as operators see it (never its token).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct GrantView {
    pub id: Uuid,
    pub peer_id: Uuid,
    pub resource_kind: String,
    pub resource_id: Option<String>,
    pub permission_scopes: Vec<String>,
    pub node_instance_ids: Vec<String>,
    pub sdwan_network_ids: Vec<String>,
    pub source_cidrs: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub expires_at: OffsetDateTime,
    pub auto_renew: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub resource_kind: String,
    pub resource_id: Option<String>,
    /// Subset of `read`, `write`.
    pub permission_scopes: Vec<String>,
    #[serde(default)]
    pub node_instance_ids: Vec<String>,
    #[serde(default)]
    pub sdwan_network_ids: Vec<String>,
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    /// Days; default `POWERNODE_GRANT_TTL_DAYS_DEFAULT` (30), at most
    /// `POWERNODE_GRANT_TTL_DAYS_MAX` (365).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub ttl_days: Option<u32>,
    #[serde(default)]
    pub auto_renew: bool,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct IssuedGrant {
    pub grant: GrantView,
    /// `fg-<uuid v4>`: the bearer token, shown once.
    pub token: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub peer_id: Option<Uuid>,
    /// `active`, `expired` or `revoked`.
    pub lifecycle: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
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
pub struct RenewRequest {
    /// As at issue: the default lifetime unless given, at most the maximum.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub ttl_days: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub resource_kind: String,
    pub resource_id: String,
    /// `read` or `write`.
    pub scope: String,
    pub instance_id: Option<String>,
    pub network: Option<String>,
    pub source_ip: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Explanation {
    pub allowed: bool,
    pub denial: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Vec<serde_json::Value>"))]
    pub checks: Vec<Check>,
}

impl std::fmt::Debug for IssuedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedGrant")
            .field("grant", &self.grant)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A shared resource: with its document on reads, without after a write.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ResourceView {
    pub kind: String,
    pub id: String,
    pub version: i64,
    /// The stored JSON document as its text: a peer's read passes it through from PostgreSQL
    /// without decoding and re-encoding it (parse it with `serde_json::from_str(doc.get())`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<Value>"))]
    pub document: Option<Box<serde_json::value::RawValue>>,
}

/// A deleted shared resource.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ResourceDeleted {
    pub kind: String,
    pub id: String,
    pub deleted: bool,
}
