//! Every route, registered in one place. Each handler carries `#[utoipa::path]`, and
//! registration goes through `utoipa_actix_web`, so the OpenAPI document is built from this
//! very registration and cannot miss a route.

pub mod approvals;
pub mod events;
pub mod governance;
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
                .service(worker_api::contact_peer)
                .service(worker_api::grant_maintenance)
                .service(worker_api::sdwan_manager_tick)
                .service(worker_api::governance_scan)
                .service(worker_api::event_retention)
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
                .service(governance::renew_certificate)
                .service(governance::peer_diagnosis)
                .service(governance::diagnosis)
                .service(governance::scan)
                .service(governance::latest)
                .service(governance::reports)
                .service(governance::report)
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

/// The path patterns of every registered route and their methods (from the OpenAPI document).
pub struct KnownPaths(Vec<(ResourceDef, String)>);

impl KnownPaths {
    pub fn new(paths: &utoipa::openapi::Paths) -> Self {
        KnownPaths(
            paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let methods: Vec<&str> = [
                        ("GET", item.get.is_some()),
                        ("PUT", item.put.is_some()),
                        ("POST", item.post.is_some()),
                        ("DELETE", item.delete.is_some()),
                        ("PATCH", item.patch.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(m, present)| present.then_some(m))
                    .collect();
                    (ResourceDef::new(path.as_str()), methods.join(", "))
                })
                .collect(),
        )
    }
}

/// Nothing matched: 405 (with `Allow`) when the path exists for other methods, else 404; both
/// enveloped.
pub async fn unmatched(req: HttpRequest, known: web::Data<KnownPaths>) -> HttpResponse {
    let allowed: Vec<&str> = known
        .0
        .iter()
        .filter(|(def, _)| def.is_match(req.path()))
        .map(|(_, methods)| methods.as_str())
        .collect();
    if allowed.is_empty() {
        return ApiError::NotFound(format!("no route for {} {}", req.method(), req.path()))
            .error_response();
    }
    let mut response = ApiError::MethodNotAllowed {
        method: req.method().to_string(),
    }
    .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}
