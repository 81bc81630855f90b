//! The approval queue, intervention policies and agents (SPEC §7).

use powernode_domain::approval::{ApprovalStatus, ExecutionStatus, Policy, TimeoutAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// An approval request as operators see it; sealed params and results never appear.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ApprovalView {
    pub id: Uuid,
    pub action: String,
    /// What the action will do (secrets such as an acceptance token are held sealed instead).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub params: Value,
    pub requested_by: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pending"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub status: ApprovalStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub expires_at: OffsetDateTime,
    /// An operator id, or `sdwan_manager` for a timeout.
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub decided_at: Option<OffsetDateTime>,
    pub comments: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pending"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub execution_status: ExecutionStatus,
    pub execution_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub executed_at: Option<OffsetDateTime>,
    /// What the execution produced that may be shown (e.g. the new peer's id).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<serde_json::Value>"))]
    pub result: Option<Value>,
    /// A secret result (a minted acceptance token) waits for `claim_result`.
    pub result_claimable: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "schemars", schemars(with = "Option<String>"))]
    pub result_claimed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending` (default), `approved`, `rejected`, `expired`, `cancelled` or `all`.
    pub status: Option<String>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Recorded on the request and in its event (at most 2000 characters).
    pub comments: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ClaimedResultView {
    pub approval_request: ApprovalView,
    /// The acceptance token an approved propose minted (`pnfa1_…`); shown this once.
    pub acceptance_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct LoweringView {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub to: Policy,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub until: OffsetDateTime,
    pub lowered_by: Option<Uuid>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PolicyView {
    pub action: String,
    /// The stored policy.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "require_approval"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub policy: Policy,
    /// What the gate applies now (the lowering while its window lasts).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "require_approval"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub effective_policy: Policy,
    pub timeout_seconds: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "reject"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub timeout_action: TimeoutAction,
    pub auto_approve_allowed: bool,
    pub timeout_approve_allowed: bool,
    pub lowered: Option<LoweringView>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "require_approval"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub policy: String,
    pub timeout_seconds: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "reject"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub timeout_action: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LowerRequest {
    /// A less strict policy, e.g. `notify_and_proceed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "notify_and_proceed"))]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub to: String,
    /// Window length (1 s – 24 h); the policy restores itself when it ends.
    pub for_seconds: u32,
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
pub struct AgentStatusRequest {
    pub reason: Option<String>,
}

impl std::fmt::Debug for ClaimedResultView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedResultView")
            .field("approval_request", &self.approval_request)
            .field("acceptance_token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// An agent (the SDWAN Manager) and whether it is paused.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct AgentView {
    pub id: Uuid,
    pub name: String,
    /// `active` or `paused`.
    pub status: String,
    pub interval_secs: i32,
    pub status_reason: Option<String>,
    pub status_changed_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
}
