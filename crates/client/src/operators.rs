//! Operators and their tokens.

use powernode_domain::Permission;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct OperatorView {
    pub id: Uuid,
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Vec<String>"))]
    pub permissions: Vec<Permission>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub disabled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorRequest {
    /// 1–64 letters, digits, spaces or `. _ @ -` (surrounding spaces trimmed).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
    /// Any of `system.federation.read`, `system.federation.manage`,
    /// `system.infra_tasks.control`, `system.operators.admin`.
    #[cfg_attr(
        feature = "openapi",
        schema(inline, value_type = Vec<String>, min_items = 1)
    )]
    pub permissions: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct OperatorWithToken {
    pub operator: OperatorView,
    /// `pnop_…`, shown once; only its SHA-256 is stored.
    pub token: String,
}

impl std::fmt::Debug for OperatorWithToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorWithToken")
            .field("operator", &self.operator)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}
