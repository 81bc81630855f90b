//! Every route, registered in one place. Each handler carries `#[utoipa::path]`, and
//! registration goes through `utoipa_actix_web`, so the OpenAPI document is built from this
//! very registration and cannot miss a route.

pub mod approvals;
pub mod events;
pub mod grants;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod operators;
pub mod peers;
pub mod worker_api;

use actix_web::dev::ResourceDef;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics)
        .service(openapi::document)
        .service(
            scope("/api/v1/system/worker_api")
                .service(worker_api::heartbeat_sweep)
                .service(worker_api::peer_heartbeats)
                .service(worker_api::grant_maintenance)
                .service(worker_api::sdwan_manager_tick)
                .service(worker_api::report),
        )
        .service(scope("/api/v1/system/worker").service(worker_api::status))
        .service(
            scope("/api/v1/system/federation")
                .service(peers::accept)
                .service(peers::propose)
                .service(peers::list)
                .service(peers::show)
                .service(peers::remove)
                .service(peers::regenerate_token)
                .service(peers::suspend)
                .service(peers::resume)
                .service(peers::revoke)
                .service(grants::issue)
                .service(grants::list)
                .service(grants::show)
                .service(grants::revoke)
                .service(grants::renew)
                .service(grants::explain)
                .service(grants::get_resource)
                .service(grants::put_resource)
                .service(grants::delete_resource),
        )
        .service(scope("/api/v1/system/fleet").service(events::list))
        .service(
            scope("/api/v1/ai/autonomy")
                .service(approvals::list)
                .service(approvals::show)
                .service(approvals::approve)
                .service(approvals::reject)
                .service(approvals::cancel)
                .service(approvals::claim_result)
                .service(approvals::policies)
                .service(approvals::policy)
                .service(approvals::update_policy)
                .service(approvals::lower)
                .service(approvals::restore),
        )
        .service(
            scope("/api/v1/ai")
                .service(approvals::agents)
                .service(approvals::pause)
                .service(approvals::resume),
        )
        .service(
            scope("/api/v1/system/operators")
                .service(operators::me)
                .service(operators::create)
                .service(operators::list)
                .service(operators::disable),
        );
}

/// The path patterns of every registered route (from the OpenAPI document).
pub struct KnownPaths(Vec<ResourceDef>);

impl KnownPaths {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a String>) -> Self {
        KnownPaths(
            paths
                .into_iter()
                .map(|p| ResourceDef::new(p.as_str()))
                .collect(),
        )
    }
}

/// Nothing matched: 405 when the path exists for another method, else 404; both enveloped.
pub async fn unmatched(req: HttpRequest, known: web::Data<KnownPaths>) -> HttpResponse {
    let error = if known.0.iter().any(|def| def.is_match(req.path())) {
        ApiError::MethodNotAllowed {
            method: req.method().to_string(),
        }
    } else {
        ApiError::NotFound(format!("no route for {} {}", req.method(), req.path()))
    };
    error.error_response()
}
