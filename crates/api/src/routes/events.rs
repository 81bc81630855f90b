//! `GET /api/v1/system/fleet/events` — the fleet event log, newest first.

use actix_web::{HttpResponse, get, web};

use crate::auth::OperatorAuth;
use crate::error::ApiError;
use crate::render::ok;
use crate::services::events as service;
use crate::startup::AppState;
use powernode_client::events::{EventView, EventsQuery};

/// Query fleet events by source, kind, peer and time, newest first.
#[utoipa::path(
    tag = "events",
    params(EventsQuery),
    responses((status = 200, body = Vec<EventView>), (status = 400, description = "Bad `since` or `limit`"),
              (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/events")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::list(&state, &auth.0, query.into_inner()).await?))
}
