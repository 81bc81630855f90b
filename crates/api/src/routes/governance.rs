//! Governance reports (SPEC §9.1) and the doctor (§9.3) under `/api/v1/system/federation`.
//! Each handler calls one service function.

use actix_web::{HttpResponse, get, post, web};
use powernode_domain::PeerId;

use crate::auth::{Idempotency, OperatorAuth};
use crate::error::ApiError;
use crate::render::ok;
use crate::services::governance::{self as service, Trigger};
use crate::services::idempotency::once;
use crate::startup::AppState;
use powernode_client::governance::{
    DiagnosisView, RenewedCertificateView, ReportSummary, ReportView, ReportsQuery,
};
use uuid::Uuid;

/// Run a governance scan now (needs `system.federation.manage`); answers the report.
#[utoipa::path(
    tag = "governance",
    responses((status = 200, body = ReportView), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/governance/scan")]
pub async fn scan(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(&state, op, key, "governance.scan", (), |()| {
        service::scan_for(&state, op, Trigger::Operator)
    });
    Ok(ok(answer.await?))
}

/// The newest governance report (404 before the first scan).
#[utoipa::path(
    tag = "governance",
    responses((status = 200, body = ReportView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/governance/reports/latest")]
pub async fn latest(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::latest(&state, &auth.0).await?))
}

/// Governance reports, newest first, without their findings.
#[utoipa::path(
    tag = "governance",
    params(ReportsQuery),
    responses((status = 200, body = Vec<ReportSummary>), (status = 422), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/governance/reports")]
pub async fn reports(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ReportsQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(
        service::reports(&state, &auth.0, query.into_inner()).await?
    ))
}

/// One governance report with its findings, what is new and what resolved.
#[utoipa::path(
    tag = "governance",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ReportView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/governance/reports/{id}")]
pub async fn report(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::report(&state, &auth.0, id.into_inner()).await?))
}

/// The doctor for this instance: schedules, SDWAN Manager, policies, approvals, federation
/// listener, PostgreSQL, Redis; each check with evidence, runbook section and next step.
#[utoipa::path(
    tag = "governance",
    responses((status = 200, body = DiagnosisView), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/diagnosis")]
pub async fn diagnosis(
    auth: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(crate::services::doctor::instance(
        &state,
        &auth.0,
        state.probes(),
    )
    .await?))
}

/// The doctor for one peer: status, handshake, inbound heartbeats, our outbound calls,
/// certificates, grants, approvals.
#[utoipa::path(
    tag = "governance",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DiagnosisView), (status = 404), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[get("/peers/{id}/diagnosis")]
pub async fn peer_diagnosis(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(crate::services::doctor::peer(
        &state,
        &auth.0,
        id.into_inner(),
    )
    .await?))
}

/// Renew our outbound client certificate for a peer now (the 75 % rotation's path, forced).
/// 409 when our certificate pair is partial (revoke and re-propose) or the peer is not in a
/// state we call.
#[utoipa::path(
    tag = "peers",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RenewedCertificateView),
        (status = 409, description = "`outbound certificate for peer <id> is partial (cert_pem=<bool>, key_pem=<bool>): revoke and re-propose`"),
        (status = 502, description = "the peer refused or failed"),
        (status = 404), (status = 401), (status = 403)
    ),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/certificates/renew")]
pub async fn renew_certificate(
    auth: OperatorAuth,
    idempotency: Idempotency,
    state: web::Data<AppState>,
    id: web::Path<PeerId>,
) -> Result<HttpResponse, ApiError> {
    let (op, key) = (&auth.0, idempotency.key());
    let answer = once(
        &state,
        op,
        key,
        "peers.certificates.renew",
        id.into_inner(),
        |id| crate::services::federation::renew_now(&state, op, id),
    );
    Ok(ok(answer.await?))
}
