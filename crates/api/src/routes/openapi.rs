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
        "Operator, worker and federation (mTLS listener) endpoints. Every 4xx/5xx answer is the \
         ErrorBody envelope {\"success\":false,\"error\",\"code\",\"details\"}; codes and \
         `details` keys are listed in docs/errors.md. Branch on `code` and `details`, never on \
         `error`."
            .to_owned(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "ErrorBody".to_owned(),
        <powernode_client::ErrorBody as utoipa::PartialSchema>::schema(),
    );
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
    error_bodies(&mut doc);
    doc
}

/// Every 4xx/5xx response without a body description gets the error envelope's schema.
pub fn error_bodies(doc: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr};
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            for (status, response) in &mut op.responses.responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                if let RefOr::T(response) = response
                    && response.content.is_empty()
                {
                    response.content.insert(
                        "application/json".to_owned(),
                        RefOr::T(
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        ),
                    );
                }
            }
        }
    }
}

/// This API's OpenAPI 3 document.
#[utoipa::path(tag = "meta", responses((status = 200, description = "OpenAPI 3 JSON")))]
#[get("/api/v1/openapi.json")]
pub async fn document(doc: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
