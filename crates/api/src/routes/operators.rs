//! `/api/v1/system/operators` — operators and their tokens (admin only, except `me`).

use actix_web::{HttpResponse, get, post, web};
use powernode_domain::Permission;
use powernode_store::operators::Operator;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::OperatorAuth;
use crate::error::{ApiError, created, ok};
use crate::services::operators as service;
use crate::startup::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorView {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<Permission>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<Operator> for OperatorView {
    fn from(o: Operator) -> Self {
        OperatorView {
            id: o.id,
            name: o.name,
            permissions: o.permissions,
            created_by: o.created_by,
            created_at: o.created_at,
            disabled_at: o.disabled_at,
            last_used_at: o.last_used_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorRequest {
    pub name: String,
    /// Any of `system.federation.read`, `system.federation.manage`,
    /// `system.infra_tasks.control`, `system.operators.admin`.
    pub permissions: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorWithToken {
    pub operator: OperatorView,
    /// `pnop_…`, shown once; only its SHA-256 is stored.
    pub token: String,
}

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
    state: web::Data<AppState>,
    body: web::Json<CreateOperatorRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::OperatorsAdmin)?;
    let name = service::validate_name(&body.name)?;
    let permissions = service::parse_permissions(&body.permissions)?;
    let (operator, token) = service::create(&state, name, permissions, Some(auth.id())).await?;
    Ok(created(OperatorWithToken {
        operator: operator.into(),
        token: token.expose_secret().to_owned(),
    }))
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
    auth.require(Permission::OperatorsAdmin)?;
    let all = service::list(&state).await?;
    Ok(ok(all
        .into_iter()
        .map(OperatorView::from)
        .collect::<Vec<_>>()))
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
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::OperatorsAdmin)?;
    let op = service::disable(&state, *id, auth.id()).await?;
    Ok(ok(OperatorView::from(op)))
}

/// The operator behind the presented token.
#[utoipa::path(
    tag = "operators",
    responses((status = 200, body = OperatorView), (status = 401)),
    security(("operator_token" = []))
)]
#[get("/me")]
pub async fn me(auth: OperatorAuth) -> HttpResponse {
    ok(OperatorView::from(auth.0))
}
