//! The fleet event log (SPEC §8), newest first, by source, kind, peer and time.

use powernode_client::events::{EventView, EventsQuery};
use powernode_domain::Permission;
use powernode_store::events::{self, EventFilter, FleetEvent};
use powernode_store::operators::Operator;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::{self, Context as _};
use crate::error::ApiError;
use crate::services::{Ctx, require};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

pub fn event_view(e: FleetEvent) -> EventView {
    EventView {
        id: e.id,
        kind: e.kind,
        severity: e.severity,
        source: e.source,
        peer_id: e.peer_id,
        payload: e.payload,
        correlation_id: e.correlation_id,
        emitted_at: e.emitted_at,
    }
}

/// Events matching the query, newest first.
pub async fn list(
    ctx: &Ctx,
    operator: &Operator,
    query: EventsQuery,
) -> Result<Vec<EventView>, ApiError> {
    require(operator, Permission::FederationRead)?;
    let q = query;
    let since = q
        .since
        .as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                ApiError::BadRequest(format!(
                    "since must be an ISO 8601 timestamp such as 2026-11-29T00:00:00Z (got {s:?})"
                ))
            })
        })
        .transpose()?;
    let before = q
        .before
        .as_deref()
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                ApiError::BadRequest(format!(
                    "before must be an ISO 8601 timestamp such as 2026-11-29T00:00:00Z (got {s:?})"
                ))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let filter = EventFilter {
        source: q.source,
        kind: q.kind,
        peer_id: q.peer_id,
        since,
        before,
        limit,
    };
    let found = db::run(&ctx.db, move |conn| events::list(conn, &filter))
        .await
        .context("events query failed")?;
    Ok(found.into_iter().map(event_view).collect())
}
