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

/// Makes the rendered document say what the API really answers, for every operation at once
/// (registration only knows each handler's own statuses and the bare `data` type):
///
/// - 2xx JSON bodies are the success envelope `{"success": true, "data": <schema>}`;
/// - the answers any operation of its kind can give are listed with `ErrorBody`: 400 (path,
///   query or body refused by its extractor, NUL characters in the path), 404 (an id that does
///   not exist), 503 `database unavailable` / `busy` (every operation that reads the database);
///   with a body or as a mutating POST: 409 (state conflicts, an `Idempotency-Key` in use), 413,
///   422; behind a token: 401 (and 403 for operator permissions);
/// - the federation listener's operations carry their own `servers` entry (they are served on
///   `federation_url`, not on this listener) and the tag `federation`.
pub fn make_true(
    mut doc: serde_json::Value,
    federation_url: &str,
    resource_kinds: &[String],
) -> serde_json::Value {
    use serde_json::{Value, json};
    let constraints = parameter_constraints(resource_kinds);
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let federation = path.contains("/federation_api/");
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        if federation {
            item.insert(
                "servers".to_owned(),
                json!([{"url": federation_url, "description": "the federation (mTLS) listener"}]),
            );
        }
        let raw = matches!(path.as_str(), "/metrics" | "/api/v1/openapi.json");
        let database = !matches!(
            path.as_str(),
            "/healthz" | "/metrics" | "/api/v1/openapi.json" | "/readyz"
        );
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            if federation {
                op.insert("tags".to_owned(), json!(["federation"]));
            }
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            let operator = op
                .get("security")
                .is_some_and(|s| s.to_string().contains("operator_token"));
            let mutating = method != "get" || op.contains_key("requestBody");
            // The values the services accept, from the same enums and limits they check.
            if let Some(parameters) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for parameter in parameters {
                    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                    let extra = constraints
                        .iter()
                        .find(|(n, scope, _)| *n == name && path.contains(scope))
                        .map(|(_, _, schema)| schema);
                    if let (Some(extra), Some(schema)) = (
                        extra,
                        parameter.get_mut("schema").and_then(Value::as_object_mut),
                    ) && let Some(extra) = extra.as_object()
                    {
                        schema.extend(extra.clone());
                    }
                }
            }
            // Handlers reading their body with `optional_json` mark it "optional": an empty
            // body is the type's default.
            if let Some(body) = op.get_mut("requestBody").and_then(Value::as_object_mut)
                && body.get("description").and_then(Value::as_str) == Some("optional")
            {
                body.insert("required".to_owned(), json!(false));
            }
            // Every mutating operator POST (explain only reads).
            if operator && method == "post" && !path.ends_with("/explain") {
                let parameters = op.entry("parameters").or_insert_with(|| json!([]));
                if let Some(parameters) = parameters.as_array_mut() {
                    parameters.push(json!({
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "description": "Runs this call at most once per operator and key for 24 h; \
                            a repeat replays the first answer (SPEC §10).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                   "pattern": "^[!-~]+$"},
                    }));
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                if !status.starts_with('2') || raw {
                    continue;
                }
                let data = response
                    .pointer("/content/application~1json/schema")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                // The CA certificate is DER, not JSON.
                if response
                    .pointer("/content/application~1pkix-cert")
                    .is_some()
                    || path.ends_with("/federation_api/ca")
                {
                    continue;
                }
                response["content"] = json!({"application/json": {"schema": {
                    "type": "object",
                    "required": ["success", "data"],
                    "properties": {"success": {"const": true}, "data": data},
                }}});
            }
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| json!({"description": description, "content": error}));
            };
            if raw {
                continue;
            }
            add("400", "Path, query or body refused (`BAD_REQUEST`)");
            add("404", "Not found (`NOT_FOUND`)");
            if database {
                add(
                    "503",
                    "`database unavailable` or `busy` (`SERVICE_UNAVAILABLE`, with `Retry-After`)",
                );
            }
            if mutating {
                add(
                    "409",
                    "State conflict, or an `Idempotency-Key` still in use (`CONFLICT`)",
                );
                add("413", "Body over 65536 bytes (`PAYLOAD_TOO_LARGE`)");
                add("422", "Validation failed (`VALIDATION_FAILED`)");
            }
            if secured {
                add("401", "Missing or invalid credentials (`UNAUTHORIZED`)");
            }
            if operator {
                add("403", "Missing permission (`FORBIDDEN`)");
            }
        }
    }
    doc
}

/// Parameter constraints by (name, a path fragment that scopes it), from the domain's enums
/// and the services' limits.
fn parameter_constraints(
    resource_kinds: &[String],
) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use powernode_domain::PeerStatus;
    use powernode_domain::approval::{ApprovalStatus, GatedAction, SDWAN_MANAGER_AGENT};
    use serde_json::json;
    use strum::IntoEnumIterator;
    let names = |values: Vec<&str>| json!(values);
    let peer_statuses: Vec<&str> = PeerStatus::iter().map(PeerStatus::as_str).collect();
    let approval_statuses: Vec<&'static str> = ApprovalStatus::iter().map(Into::into).collect();
    let actions: Vec<&'static str> = GatedAction::iter().map(Into::into).collect();
    vec![
        (
            "status",
            "/federation/peers",
            json!({"enum": names(peer_statuses)}),
        ),
        (
            "status",
            "/approvals",
            json!({"enum": names(approval_statuses)}),
        ),
        ("action", "/policies/", json!({"enum": names(actions)})),
        ("name", "/agents/", json!({"enum": [SDWAN_MANAGER_AGENT]})),
        (
            "lifecycle",
            "/grants",
            json!({"enum": ["active", "expired", "revoked"]}),
        ),
        ("kind", "/resources/", json!({"enum": resource_kinds})),
        (
            "id",
            "/resources/",
            json!({"minLength": 1, "maxLength": 64, "pattern": "\\S"}),
        ),
        (
            "limit",
            "/approvals",
            json!({"minimum": 1, "maximum": crate::services::approvals::queue::MAX_LIST}),
        ),
        (
            "limit",
            "/events",
            json!({"minimum": 1, "maximum": crate::services::events::MAX_LIMIT}),
        ),
        ("since", "/events", json!({"format": "date-time"})),
    ]
}

/// This API's OpenAPI 3 document.
#[utoipa::path(tag = "meta", responses((status = 200, description = "OpenAPI 3 JSON")))]
#[get("/api/v1/openapi.json")]
pub async fn document(doc: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
