//! The fleet event log.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// e.g. `federation_heartbeat_sweep`, `accept_controller`, `federation_peer`.
    pub source: Option<String>,
    /// e.g. `federation.peer.heartbeat_stale`.
    pub kind: Option<String>,
    pub peer_id: Option<Uuid>,
    /// ISO 8601 / RFC 3339 timestamp; events emitted at or after it.
    pub since: Option<String>,
    /// ISO 8601 / RFC 3339 timestamp; events emitted strictly before it (the next page of an
    /// older window: pass the last event's `emitted_at`).
    pub before: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct EventView {
    pub id: Uuid,
    pub kind: String,
    pub severity: String,
    pub source: String,
    pub peer_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "schemars", schemars(with = "serde_json::Value"))]
    pub payload: Value,
    pub correlation_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schemars", schemars(with = "String"))]
    pub emitted_at: OffsetDateTime,
}
