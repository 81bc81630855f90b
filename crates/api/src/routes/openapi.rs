//! `GET /api/v1/openapi.json`, generated from the registered routes.

use actix_web::{HttpResponse, get, web};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The rendered document, built once at start.
pub struct OpenApiDocument(pub String);

/// Adds what registration cannot know: title, version, security schemes.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "Powernode Federation API".to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "Operator, worker and (later) federation endpoints. Errors use the envelope \
         {\"success\":false,\"error\",\"code\",\"details\"}."
            .to_owned(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "operator_token",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "grant_token",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "worker_token",
        SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
            utoipa::openapi::security::ApiKeyValue::new("X-Worker-Token"),
        )),
    );
    doc
}

/// This API's OpenAPI 3 document.
#[utoipa::path(tag = "meta", responses((status = 200, description = "OpenAPI 3 JSON")))]
#[get("/api/v1/openapi.json")]
pub async fn document(doc: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
