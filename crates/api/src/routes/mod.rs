//! Every route, registered in one place.

pub mod health;
pub mod worker_api;

use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(
            web::scope("/api/v1/system/worker_api").service(
                resource("/federation/heartbeat_sweep")
                    .route(web::post().to(worker_api::heartbeat_sweep)),
            ),
        );
}

/// A resource whose unmatched methods answer 405 with the envelope (without this, actix hands
/// them to the app's 404 default service).
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
    }
    .error_response()
}
