//! Peer-facing endpoints under `/api/v1/system/federation_api` (unknown body fields ignored).
//! Each handler extracts the caller (client certificate, addresses, headers) and calls one
//! service function in `services::inbound`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, put, web};
use serde_json::Value;

use super::PeerCert;
use super::auth::{HandshakeAuth, PeerAuth, admit};
use crate::error::ApiError;
use crate::render::ok;
use crate::services::inbound::{self as service, ResourceCaller};
use crate::startup::AppState;
use powernode_client::federation::{
    AcceptRequest, HandshakeRequest, HeartbeatRequest, RenewRequest,
};

/// Registered through `utoipa_actix_web` so the OpenAPI document includes this listener's
/// routes (tagged `federation`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope("/api/v1/system/federation_api")
            .service(ca_certificate)
            .service(accept)
            .service(handshake)
            .service(heartbeat)
            .service(renew)
            .service(read_resource)
            .service(write_resource),
    );
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// Our CA certificate, DER: a caller checks that its SHA-256 equals the token's `ca_sha256`.
#[utoipa::path(tag = "federation", responses((status = 200, description = "CA certificate (DER, application/pkix-cert)")))]
#[get("/ca")]
pub async fn ca_certificate(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type("application/pkix-cert")
        .body(service::ca_certificate(&state).await?))
}

/// A's side of accept (SPEC §3): every check in order before anything is written, then in one
/// transaction: accepted, digest cleared, B's certificate issued, B's CA pinned, A's pending
/// key sealed on the row, events.
#[utoipa::path(tag = "federation", request_body = AcceptRequest,
    responses((status = 200, description = "accepted: client certificate, CA chain, our CSR"),
              (status = 401, description = "acceptance_token not recognized or expired"),
              (status = 409, description = "instance already federated"),
              (status = 422, description = "SPEC §3 refusals"), (status = 429)))]
#[post("/accept")]
pub async fn accept(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Json<AcceptRequest>,
) -> Result<HttpResponse, ApiError> {
    let source = http
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    crate::ratelimit::check(&state.limits.accept, &source)?;
    Ok(ok(
        service::accept(&state, &source, body.into_inner()).await?
    ))
}

/// The handshake (SPEC §4): the certificate the caller issued to us must chain to its pinned
/// CA and carry our pending key; stored with that key as our outbound certificate; accepted →
/// enrolled. A repeat once enrolled answers 200 and changes nothing.
#[utoipa::path(tag = "federation", request_body = HandshakeRequest,
    responses((status = 200, description = "enrolled"), (status = 401), (status = 422)))]
#[post("/handshake")]
pub async fn handshake(
    auth: HandshakeAuth,
    state: web::Data<AppState>,
    body: web::Json<HandshakeRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(service::handshake(
        &state,
        &auth.0.peer,
        body.into_inner(),
    )
    .await?))
}

/// An authenticated heartbeat: last_heartbeat_at, enrolled/degraded → active.
#[utoipa::path(tag = "federation", request_body(content = HeartbeatRequest, description = "optional"),
    responses((status = 200, description = "`{status, last_heartbeat_at}`"), (status = 401), (status = 429)))]
#[post("/heartbeat")]
pub async fn heartbeat(
    http: HttpRequest,
    state: web::Data<AppState>,
    body: Option<web::Json<HeartbeatRequest>>,
) -> Result<HttpResponse, ApiError> {
    let cert = admit(&state, http.conn_data::<PeerCert>().cloned())?;
    let req = body.map(web::Json::into_inner).unwrap_or_default();
    Ok(ok(
        service::heartbeat(&state, &state.heartbeats, cert, req).await?
    ))
}

/// Certificate rotation over the existing mTLS channel (SPEC §4): a new client certificate
/// for the caller from a new CSR, under the same rules; the old one keeps working until it
/// expires or is revoked.
#[utoipa::path(tag = "federation", request_body = RenewRequest,
    responses((status = 200, description = "new client certificate"), (status = 401), (status = 422)))]
#[post("/certificates/renew")]
pub async fn renew(
    auth: PeerAuth,
    state: web::Data<AppState>,
    body: web::Json<RenewRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(
        service::renew(&state, &auth.0.peer, body.into_inner()).await?
    ))
}

/// The caller of a resource call, after the listener's admission (certificate presented,
/// within its rate limit).
fn resource_caller(state: &AppState, req: &HttpRequest) -> Result<ResourceCaller, ApiError> {
    let cert = admit(state, req.conn_data::<PeerCert>().cloned())?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(ResourceCaller {
        cert,
        bearer: crate::auth::bearer(req).map(str::to_owned),
        network: header("x-sdwan-network"),
        tcp_peer: req.peer_addr().map(|a| a.ip()),
        forwarded_for: header("x-forwarded-for")
            .map(|v| {
                // The readable hops nearest to us: an unreadable entry ends what we believe.
                let mut hops: Vec<std::net::IpAddr> = v
                    .rsplit(',')
                    .map_while(|hop| hop.trim().parse().ok())
                    .collect();
                hops.reverse();
                hops
            })
            .unwrap_or_default(),
    })
}

/// A peer reads a shared resource under a grant with `read`.
#[utoipa::path(tag = "federation", params(("kind" = String, Path), ("id" = String, Path)),
    responses((status = 200), (status = 401), (status = 403, description = "GRANT_SCOPE_MISMATCH"), (status = 404), (status = 422), (status = 429)),
    security(("grant_token" = [])))]
#[get("/resources/{kind}/{id}")]
pub async fn read_resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    let caller = resource_caller(&state, &req)?;
    Ok(ok(service::read_resource(
        &state,
        &state.lookups,
        caller,
        kind,
        id,
    )
    .await?))
}

/// A peer writes a shared resource under a grant with `write` (new version + event).
#[utoipa::path(tag = "federation", params(("kind" = String, Path), ("id" = String, Path)), request_body = Object,
    responses((status = 200), (status = 401), (status = 403, description = "GRANT_SCOPE_MISMATCH"), (status = 404), (status = 422), (status = 429)),
    security(("grant_token" = [])))]
#[put("/resources/{kind}/{id}")]
pub async fn write_resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (kind, id) = path.into_inner();
    let caller = resource_caller(&state, &req)?;
    Ok(ok(service::write_resource(
        &state,
        &state.lookups,
        caller,
        kind,
        id,
        body.into_inner(),
    )
    .await?))
}
