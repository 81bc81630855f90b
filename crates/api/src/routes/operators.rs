//! `/api/v1/system/operators` — operators and their tokens (admin only, except `me`).

use actix_web::{HttpResponse, get, post, web};
use powernode_domain::OperatorId;

use crate::auth::{Idempotency, OperatorAuth};
use crate::error::ApiError;
use crate::render::{created, ok};
use crate::services::idempotency::once;
use crate::services::operators as service;
use crate::startup::AppState;
use powernode_client::operators::{CreateOperatorRequest, OperatorView, OperatorWithToken};

/// Create an operator and show its token once.
#[utoipa::path(
    tag = "operators",
    request_body = CreateOperatorRequest,
    responses((status = 201, body = OperatorWithToken), (status = 409), (status = 422),
              (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("")]
pub async fn create(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    body: web::Json<CreateOperatorRequest>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(
        &state,
        op,
        key,
        "operators.create",
        body.into_inner(),
        |req| service::create(&state, op, req),
    );
    Ok(created(answer.await?))
}

/// List operators (enabled and disabled).
#[utoipa::path(
    tag = "operators",
    responses((status = 200, body = Vec<OperatorView>), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::list(&state, &auth.0).await?))
}

/// Disable an operator; its token stops working on the next request.
#[utoipa::path(
    tag = "operators",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = OperatorView), (status = 404), (status = 409),
              (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/{id}/disable")]
pub async fn disable(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<OperatorId>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "operators.disable", *id, |id| {
        service::disable(&state, op, id)
    });
    Ok(ok(answer.await?))
}

/// The operator behind the presented token.
#[utoipa::path(
    tag = "operators",
    responses((status = 200, body = OperatorView), (status = 401)),
    security(("operator_token" = []))
)]
#[get("/me")]
pub async fn me(auth: OperatorAuth) -> HttpResponse {
    ok(service::me(&auth.0))
}
