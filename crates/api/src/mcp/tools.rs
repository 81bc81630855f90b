//! SPEC §10's eleven MCP tools. Each is an adapter like a REST handler: the operator from the
//! request, the arguments as a `powernode-client` type, one call to the REST route's service
//! (through `idempotency::once` with the route's own action name for mutating tools), and the
//! answer as structured content — or, for a refusal, `isError` with `<status> <CODE>: <error>`
//! and the API's error body.

use crate::auth::Operator;
use actix_web::web;
use powernode_client::ErrorBody;
use powernode_client::approvals::ApprovalView;
use powernode_client::governance::{DiagnosisView, ReportView};
use powernode_client::mcp::{
    AcceptPeerArgs, ApprovalArgs, ApprovalList, ClaimArgs, DiagnoseArgs, EventList,
    ListApprovalsArgs, ListPeersArgs, PeerArgs, PeerPage, PeerResult, ProposePeerArgs,
    ProposeResult, RecentEventsArgs, RevokePeerArgs, ScanArgs,
};
use powernode_client::peers::{AcceptRequest, ListQuery, PeerView, ProposeRequest, ReasonRequest};
use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use rmcp_actix_web::transport::on_request_extensions;
use serde::Serialize;

use crate::error::ApiError;
use crate::services::approvals::Gated;
use crate::services::governance::Trigger;
use crate::services::idempotency::{IdempotencyKey, once};
use crate::services::{approvals, doctor, events, governance, peers};
use crate::startup::AppState;

/// The MCP server: one per request (stateless), sharing the application state.
#[derive(Clone)]
pub struct Federation {
    state: web::Data<AppState>,
    tool_router: ToolRouter<Federation>,
}

/// The operator `mcp::authenticate` put on the request.
fn operator(ctx: &RequestContext<RoleServer>) -> Result<Operator, McpError> {
    on_request_extensions(&ctx.extensions)
        .and_then(|e| e.get::<Operator>())
        .cloned()
        .ok_or_else(|| McpError::invalid_request("Operator token required", None))
}

fn key(raw: Option<&str>) -> Result<Option<IdempotencyKey>, ApiError> {
    raw.map(IdempotencyKey::parse).transpose()
}

/// A service's answer as a tool result.
fn render<T: Serialize>(answer: Result<T, ApiError>) -> Result<CallToolResult, McpError> {
    match answer {
        Ok(value) => serde_json::to_value(value)
            .map(CallToolResult::structured)
            .map_err(|e| McpError::internal_error(format!("result encoding: {e}"), None)),
        Err(e) => {
            // Logs an internal cause once, like a REST answer would.
            let line = e.report_line();
            let (_, code, error, details) = e.parts();
            let body = ErrorBody {
                success: false,
                error,
                code,
                details,
            };
            let mut result =
                CallToolResult::structured_error(serde_json::to_value(body).unwrap_or_default());
            result.content = vec![ContentBlock::text(line)];
            Ok(result)
        }
    }
}

fn queued(request: ApprovalView) -> (String, ApprovalView) {
    (format!("Approval required: {}", request.action), request)
}

fn peer_result(outcome: Gated<PeerView>) -> PeerResult {
    match outcome {
        Gated::Done(peer) => PeerResult {
            approval_required: false,
            message: None,
            approval_request: None,
            peer: Some(peer),
        },
        Gated::Queued(request) => {
            let (message, request) = queued(*request);
            PeerResult {
                approval_required: true,
                message: Some(message),
                approval_request: Some(request),
                peer: None,
            }
        }
    }
}

#[tool_router(router = tool_router)]
impl Federation {
    pub fn new(state: web::Data<AppState>) -> Self {
        Federation {
            state,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "system_sdwan_propose_federation_peer",
        description = "Propose federating with another instance (step 1, on A). Returns the peer and its single-use acceptance_token (shown once) to hand to the other instance's operator, or approval_required with the approval request when policy gates proposals.",
        output_schema = schema_for_output::<ProposeResult>()
    )]
    async fn propose(
        &self,
        Parameters(args): Parameters<ProposePeerArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let state = &self.state;
        render(
            async {
                let key = key(args.idempotency_key.as_deref())?;
                let request = ProposeRequest {
                    remote_instance_url: args.remote_instance_url,
                    peer_kind: args.peer_kind,
                    spawn_role: args.spawn_role,
                    spawn_mode: args.spawn_mode,
                    remote_prefix_advertisement: args.remote_prefix_advertisement,
                    endpoints: args.endpoints,
                    extension_slugs: args.extension_slugs,
                    capabilities: args.capabilities,
                    ttl_seconds: args.ttl_seconds,
                    drill: None,
                };
                let outcome = once(state, &op, key.as_ref(), "peers.propose", request, |req| {
                    peers::propose(state, &op, req)
                })
                .await?;
                Ok(match outcome {
                    Gated::Done(p) => ProposeResult {
                        approval_required: false,
                        message: None,
                        approval_request: None,
                        peer: Some(p.peer),
                        acceptance_token: p.acceptance_token,
                        acceptance_token_expires_at: p.acceptance_token_expires_at,
                    },
                    Gated::Queued(request) => {
                        let (message, request) = queued(*request);
                        ProposeResult {
                            approval_required: true,
                            message: Some(message),
                            approval_request: Some(request),
                            peer: None,
                            acceptance_token: None,
                            acceptance_token_expires_at: None,
                        }
                    }
                })
            }
            .await,
        )
    }

    #[tool(
        name = "system_sdwan_accept_federation_peer",
        description = "Accept another instance's acceptance token (step 2, on B): pins its CA, exchanges certificates; both sides become `accepted`, then the handshake and heartbeats make them active. Returns this side's new peer, or approval_required with the approval request. A refusal by the other instance comes back as isError with its status, code and message.",
        output_schema = schema_for_output::<PeerResult>()
    )]
    async fn accept(
        &self,
        Parameters(args): Parameters<AcceptPeerArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let state = &self.state;
        render(
            async {
                let key = key(args.idempotency_key.as_deref())?;
                let request = AcceptRequest {
                    acceptance_token: args.acceptance_token,
                };
                let outcome = once(state, &op, key.as_ref(), "peers.accept", request, |req| {
                    peers::accept(state, &op, req)
                })
                .await?;
                Ok(peer_result(outcome))
            }
            .await,
        )
    }

    #[tool(
        name = "system_sdwan_revoke_federation_peer",
        description = "Revoke a federation peer for good (its certificates too). Returns the revoked peer, or approval_required with the approval request when policy gates revocation (a human decides it).",
        output_schema = schema_for_output::<PeerResult>()
    )]
    async fn revoke(
        &self,
        Parameters(args): Parameters<RevokePeerArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let state = &self.state;
        render(
            async {
                let key = key(args.idempotency_key.as_deref())?;
                let request = (
                    args.peer_id.into(),
                    ReasonRequest {
                        reason: args.reason,
                    },
                );
                let outcome = once(
                    state,
                    &op,
                    key.as_ref(),
                    "peers.revoke",
                    request,
                    |(id, req)| peers::revoke(state, &op, id, req),
                )
                .await?;
                Ok(peer_result(outcome))
            }
            .await,
        )
    }

    #[tool(
        name = "system_sdwan_list_federation_peers",
        description = "List federation peers, oldest first, a page at a time, with status, heartbeat_stale and degraded_reason. Pass next_cursor back as cursor for the next page.",
        output_schema = schema_for_output::<PeerPage>()
    )]
    async fn list_peers(
        &self,
        Parameters(args): Parameters<ListPeersArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        render(
            async {
                let status = args
                    .status
                    .as_deref()
                    .map(|s| {
                        s.parse().map_err(|_| {
                            ApiError::validation(
                                "status",
                                "must be proposed, accepted, enrolled, active, degraded, suspended or revoked",
                            )
                        })
                    })
                    .transpose()?;
                let query = ListQuery {
                    status,
                    limit: args.limit,
                    cursor: args.cursor,
                };
                peers::list(&self.state, &op, query).await
            }
            .await,
        )
    }

    #[tool(
        name = "system_sdwan_get_federation_peer",
        description = "One federation peer as `powernodectl peer show` gives it: status, allowed_transitions, heartbeat_stale, degraded_reason, last outbound call and error, certificates.",
        output_schema = schema_for_output::<PeerView>()
    )]
    async fn get_peer(
        &self,
        Parameters(args): Parameters<PeerArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        render(peers::show(&self.state, &op, args.peer_id.into()).await)
    }

    #[tool(
        name = "system_sdwan_federation_scan",
        description = "Run a governance scan now: findings (stale accepted peers, stale heartbeats, capability drift, overlapping prefixes, expiring certificates and grants, expiring approvals, expired tokens) by severity, with what is new and what resolved since the last report.",
        output_schema = schema_for_output::<ReportView>()
    )]
    async fn scan(
        &self,
        Parameters(args): Parameters<ScanArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let state = &self.state;
        render(
            async {
                let key = key(args.idempotency_key.as_deref())?;
                once(state, &op, key.as_ref(), "governance.scan", (), |()| {
                    governance::scan_for(state, &op, Trigger::Mcp)
                })
                .await
            }
            .await,
        )
    }

    #[tool(
        name = "system_sdwan_diagnose_federation",
        description = "The doctor: run the runbook's diagnostic steps for the instance (no peer_id) or one peer, each check ok/warn/fail with evidence, the runbook section and the command to run next.",
        output_schema = schema_for_output::<DiagnosisView>()
    )]
    async fn diagnose(
        &self,
        Parameters(args): Parameters<DiagnoseArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        render(match args.peer_id {
            Some(id) => doctor::peer(&self.state, &op, id.into()).await,
            None => doctor::instance(&self.state, &op, self.state.probes()).await,
        })
    }

    #[tool(
        name = "system_sdwan_list_approvals",
        description = "Approval requests (pending by default), newest first. Deciding them stays with humans (UI, CLI, API).",
        output_schema = schema_for_output::<ApprovalList>()
    )]
    async fn list_approvals(
        &self,
        Parameters(args): Parameters<ListApprovalsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let query = powernode_client::approvals::ListQuery {
            status: args.status,
            limit: None,
        };
        render(
            approvals::queue::list(&self.state, &op, query)
                .await
                .map(|approvals| ApprovalList { approvals }),
        )
    }

    #[tool(
        name = "system_sdwan_get_approval",
        description = "One approval request, with its status, decision and execution_status / execution_error once the SDWAN Manager ran it.",
        output_schema = schema_for_output::<ApprovalView>()
    )]
    async fn get_approval(
        &self,
        Parameters(args): Parameters<ApprovalArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        render(approvals::queue::show(&self.state, &op, args.approval_request_id.into()).await)
    }

    #[tool(
        name = "system_sdwan_claim_approval_result",
        description = "Collect what your executed request produced — an approved propose's acceptance_token — once; only the requester may.",
        output_schema = schema_for_output::<powernode_client::approvals::ClaimedResultView>()
    )]
    async fn claim_result(
        &self,
        Parameters(args): Parameters<ClaimArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let state = &self.state;
        render(
            async {
                let key = key(args.idempotency_key.as_deref())?;
                let id: powernode_domain::ApprovalId = args.approval_request_id.into();
                once(
                    state,
                    &op,
                    key.as_ref(),
                    "approvals.claim_result",
                    id,
                    |id| approvals::queue::claim_result(state, &op, id),
                )
                .await
            }
            .await,
        )
    }

    #[tool(
        name = "platform_recent_events",
        description = "Recent fleet events, newest first, filtered by source (e.g. federation_heartbeat_sweep, federation_peer, accept_controller, governance), kind, peer_id and since (RFC 3339).",
        output_schema = schema_for_output::<EventList>()
    )]
    async fn recent_events(
        &self,
        Parameters(args): Parameters<RecentEventsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let op = operator(&ctx)?;
        let query = powernode_client::events::EventsQuery {
            source: args.source,
            kind: args.kind,
            peer_id: args.peer_id,
            since: args.since,
            before: None,
            limit: args.limit,
        };
        render(
            events::list(&self.state, &op, query)
                .await
                .map(|events| EventList { events }),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Federation {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "powernode-federation",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(super::INSTRUCTIONS)
    }
}
