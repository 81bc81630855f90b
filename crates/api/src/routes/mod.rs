//! Every route, registered in one place.

pub mod health;
pub mod worker_api;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::scope("/api/v1/system/worker_api").route(
                "/federation/heartbeat_sweep",
                web::post().to(worker_api::heartbeat_sweep),
            ),
        );
}
