//! MCP at `/mcp` on the operator listener (SPEC §10): rmcp through rmcp-actix-web, stateless
//! JSON mode, so any replica answers. Operator-token authentication is actix middleware (the
//! same lookup as the REST extractor); a refused token is HTTP 401 with `WWW-Authenticate` and a
//! JSON-RPC error `-32001` carrying the API's message. Everything else — our refusals and a
//! remote instance's relayed ones — is a tool result with `isError: true`. The tools are in
//! `tools.rs`: each one extracts its arguments, calls the REST route's service, and renders.

mod tools;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpResponse, web};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

pub use tools::Federation;

/// What an agent reads first: the federation flow and which tool to use when.
pub const INSTRUCTIONS: &str = "Powernode Federation links two platform instances, A and B.\n\
1. On A: system_sdwan_propose_federation_peer (remote_instance_url of B's federation listener, spawn_role) \
returns an acceptance_token, shown once. Hand it to B's operator (or agent).\n\
2. On B: system_sdwan_accept_federation_peer with that acceptance_token. Both sides are then `accepted`; \
B's worker sends the handshake (`enrolled`) and heartbeats make them `active` within a minute or two.\n\
3. Gated actions (propose, accept, revoke under the instance's policies) return approval_required: true and \
an approval_request instead of acting: a human approves it (UI, CLI, API); then the SDWAN Manager executes it. \
After an approved propose executes, its requester collects the token with system_sdwan_claim_approval_result.\n\
4. Health: system_sdwan_list_federation_peers / system_sdwan_get_federation_peer (status, heartbeat_stale, \
degraded_reason); system_sdwan_diagnose_federation (with peer_id for one peer) says why something is wrong \
and what to run next; system_sdwan_federation_scan lists governance findings; platform_recent_events shows \
what happened (filter by source, kind, peer_id, since).\n\
A refusal is a tool result with isError: true and text `<status> <CODE>: <error>`. Pass idempotency_key on \
mutating tools to make a retry safe.";

/// The MCP service, built once and mounted in every worker thread's app.
pub type Service = StreamableHttpService<Federation, LocalSessionManager>;

pub fn service(state: web::Data<AppState>) -> Service {
    let hosts = state.settings.mcp_allowed_hosts.clone();
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(Federation::new(state.clone()))))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .stateful_mode(false)
        .json_response(true)
        .allowed_hosts(hosts)
        // The authenticated operator (set by `authenticate`) travels to the tool.
        .on_request_fn(|request, extensions| {
            if let Some(operator) = request.extensions().get::<crate::auth::Operator>() {
                extensions.insert(operator.clone());
            }
        })
        .build()
}

/// Mounts `service` at `/mcp` behind operator authentication.
pub fn scope(
    service: Service,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<EitherBody<impl MessageBody>>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    service.scope_with_path("/mcp").wrap(from_fn(authenticate))
}

/// The operator token check of every MCP request (the REST extractor's lookup): 401 with
/// `WWW-Authenticate: Bearer realm="mcp"` and a JSON-RPC body the SDK clients surface as error
/// `-32001` with our message.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let token = crate::auth::bearer(req.request()).map(str::to_owned);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let found = match state {
        Some(state) => crate::auth::authenticate_operator(&state, token).await,
        None => Err(crate::error::internal("mcp auth", "AppState missing")),
    };
    match found {
        Ok(operator) => {
            req.extensions_mut().insert(operator);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(req.into_response(refusal(&e)).map_into_right_body()),
    }
}

fn refusal(e: &ApiError) -> HttpResponse {
    let (status, code, message, _) = e.parts();
    if status == 401 {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer realm=\"mcp\""))
            .json(json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": -32001, "message": message, "data": {"code": code}},
            }));
    }
    // The database behind the token lookup did not answer: the REST answer (503 with
    // `Retry-After`), as a JSON-RPC error too.
    let mut response = actix_web::ResponseError::error_response(e);
    let status = response.status();
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32603, "message": message, "data": {"code": code}},
    });
    let retry = response.headers_mut().remove("retry-after").next();
    let mut built = HttpResponse::build(status);
    if let Some(retry) = retry {
        built.insert_header(("Retry-After", retry));
    }
    built.json(body)
}
