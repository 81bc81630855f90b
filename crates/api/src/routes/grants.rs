//! Grants (SPEC §6) on the operator API: issue, list, show, revoke, renew, explain; and the
//! shared resources peers read and write under them.

use std::net::IpAddr;

use actix_web::{HttpResponse, delete, get, post, put, web};
use powernode_domain::Permission;
use powernode_domain::grant::{self, Check, Context, GrantScope, Scope};
use powernode_domain::token::sha256_hex;
use powernode_store::grants::{self as store, GrantRow, Lifecycle, NewGrant, texts};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::OperatorAuth;
use crate::db;
use crate::error::{ApiError, created, internal, ok};
use crate::startup::AppState;

const DEFAULT_TTL_DAYS: u32 = 30;
const MAX_TTL_DAYS: u32 = 365;
const MAX_ID_LEN: usize = 64;

/// A grant as operators see it (never its token).
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: Uuid,
    pub peer_id: Uuid,
    pub resource_kind: String,
    pub resource_id: Option<String>,
    pub permission_scopes: Vec<String>,
    pub node_instance_ids: Vec<String>,
    pub sdwan_network_ids: Vec<String>,
    pub source_cidrs: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub auto_renew: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<GrantRow> for GrantView {
    fn from(g: GrantRow) -> Self {
        GrantView {
            id: g.id,
            peer_id: g.peer_id,
            resource_kind: g.resource_kind,
            resource_id: g.resource_id,
            permission_scopes: texts(&g.permission_scopes),
            node_instance_ids: texts(&g.node_instance_ids),
            sdwan_network_ids: texts(&g.sdwan_network_ids),
            source_cidrs: texts(&g.source_cidrs),
            expires_at: g.expires_at,
            auto_renew: g.auto_renew,
            revoked_at: g.revoked_at,
            revocation_reason: g.revocation_reason,
            created_at: g.created_at,
        }
    }
}

/// The domain's view of a stored grant.
pub fn scope_of(g: &GrantRow) -> GrantScope {
    GrantScope {
        resource_kind: g.resource_kind.clone(),
        resource_id: g.resource_id.clone(),
        permission_scopes: texts(&g.permission_scopes)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        node_instance_ids: texts(&g.node_instance_ids),
        sdwan_network_ids: texts(&g.sdwan_network_ids),
        source_cidrs: texts(&g.source_cidrs)
            .iter()
            .filter_map(|c| grant::parse_cidr(c).ok())
            .collect(),
        expires_at: g.expires_at,
        revoked: g.revoked_at.is_some(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub resource_kind: String,
    pub resource_id: Option<String>,
    /// Subset of `read`, `write`.
    pub permission_scopes: Vec<String>,
    #[serde(default)]
    pub node_instance_ids: Vec<String>,
    #[serde(default)]
    pub sdwan_network_ids: Vec<String>,
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    /// Default 30, at most 365.
    pub ttl_days: Option<u32>,
    #[serde(default)]
    pub auto_renew: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedGrant {
    pub grant: GrantView,
    /// `fg-<uuid v4>`: the bearer token, shown once.
    pub token: String,
}

fn ids(field: &str, values: &[String]) -> Result<(), ApiError> {
    if values
        .iter()
        .any(|v| v.trim().is_empty() || v.chars().count() > MAX_ID_LEN)
    {
        return Err(ApiError::validation(
            field,
            format!("items must be 1-{MAX_ID_LEN} characters"),
        ));
    }
    Ok(())
}

fn ttl(days: Option<u32>) -> Result<u32, ApiError> {
    let days = days.unwrap_or(DEFAULT_TTL_DAYS);
    if !(1..=MAX_TTL_DAYS).contains(&days) {
        return Err(ApiError::validation(
            "ttl_days",
            format!("must be between 1 and {MAX_TTL_DAYS}"),
        ));
    }
    Ok(days)
}

fn known_kind(state: &AppState, kind: &str) -> Result<(), ApiError> {
    if state.settings.resource_kinds.iter().any(|k| k == kind) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "resource_kind",
            format!("{kind} is not a declared resource kind"),
        )
        .with_message(format!("unknown resource kind {kind}")))
    }
}

/// Issue a grant to a peer; the bearer token is shown once.
#[utoipa::path(
    tag = "grants",
    params(("id" = Uuid, Path, description = "peer id")),
    request_body = IssueRequest,
    responses((status = 201, body = IssuedGrant), (status = 404), (status = 409), (status = 422), (status = 401), (status = 403)),
    security(("operator_token" = []))
)]
#[post("/peers/{id}/grants")]
pub async fn issue(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<IssueRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let req = body.into_inner();
    known_kind(&state, &req.resource_kind)?;
    if let Some(rid) = &req.resource_id {
        ids("resource_id", std::slice::from_ref(rid))?;
    }
    if req.permission_scopes.is_empty()
        || req
            .permission_scopes
            .iter()
            .any(|s| s.parse::<Scope>().is_err())
    {
        return Err(ApiError::validation(
            "permission_scopes",
            "must be a non-empty subset of read, write",
        ));
    }
    ids("node_instance_ids", &req.node_instance_ids)?;
    ids("sdwan_network_ids", &req.sdwan_network_ids)?;
    for c in &req.source_cidrs {
        grant::parse_cidr(c).map_err(|e| ApiError::validation("source_cidrs", e.to_string()))?;
    }
    let ttl_days = ttl(req.ttl_days)?;
    let peer_id = *id;
    let peer = crate::services::peers::find(&state, peer_id).await?;
    if peer.status == powernode_domain::PeerStatus::Revoked {
        return Err(ApiError::Conflict(format!("peer {peer_id} is revoked")));
    }
    let token = format!("fg-{}", Uuid::new_v4());
    let digest = sha256_hex(token.as_bytes());
    let actor = auth.id();
    let row = db::run(&state.pool, move |conn| {
        store::issue(
            conn,
            &NewGrant {
                peer_id,
                token_digest: &digest,
                resource_kind: &req.resource_kind,
                resource_id: req.resource_id.as_deref(),
                permission_scopes: &req.permission_scopes,
                node_instance_ids: &req.node_instance_ids,
                sdwan_network_ids: &req.sdwan_network_ids,
                source_cidrs: &req.source_cidrs,
                ttl_days,
                auto_renew: req.auto_renew,
                created_by: Some(actor),
            },
        )
    })
    .await
    .map_err(|e| internal("grant issue failed", e))?;
    tracing::info!(grant_id = %row.id, peer_id = %peer_id, operator_id = %actor, "grant issued");
    Ok(created(IssuedGrant {
        grant: row.into(),
        token,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub peer_id: Option<Uuid>,
    /// `active`, `expired` or `revoked`.
    pub lifecycle: Option<String>,
}

/// List grants, newest first.
#[utoipa::path(tag = "grants", params(ListQuery), responses((status = 200, body = Vec<GrantView>)), security(("operator_token" = [])))]
#[get("/grants")]
pub async fn list(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let lifecycle = match query.lifecycle.as_deref() {
        None => None,
        Some("active") => Some(Lifecycle::Active),
        Some("expired") => Some(Lifecycle::Expired),
        Some("revoked") => Some(Lifecycle::Revoked),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "lifecycle must be active, expired or revoked (got {other:?})"
            )));
        }
    };
    let peer = query.peer_id;
    let rows = db::run(&state.pool, move |conn| store::list(conn, peer, lifecycle))
        .await
        .map_err(|e| internal("grant list failed", e))?;
    Ok(ok(rows
        .into_iter()
        .map(GrantView::from)
        .collect::<Vec<_>>()))
}

async fn load(state: &AppState, id: Uuid) -> Result<GrantRow, ApiError> {
    db::run(&state.pool, move |conn| store::find(conn, id))
        .await
        .map_err(|e| internal("grant lookup failed", e))?
        .ok_or_else(|| ApiError::NotFound(format!("grant {id} not found")))
}

/// Show a grant (never its token).
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), responses((status = 200, body = GrantView), (status = 404)), security(("operator_token" = [])))]
#[get("/grants/{id}")]
pub async fn show(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    Ok(ok(GrantView::from(load(&state, *id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub reason: String,
}

/// Revoke a grant (a second revoke is 409); calls with its token are refused at once.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body = RevokeRequest, responses((status = 200, body = GrantView), (status = 404), (status = 409)), security(("operator_token" = [])))]
#[post("/grants/{id}/revoke")]
pub async fn revoke(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let reason = crate::services::peers::reason(&body.reason)?;
    let (gid, actor) = (*id, auth.id());
    match db::run(&state.pool, move |conn| {
        store::revoke(conn, gid, &reason, Some(actor))
    })
    .await
    .map_err(|e| internal("grant revoke failed", e))?
    {
        None => Err(ApiError::NotFound(format!("grant {gid} not found"))),
        Some(Err(_)) => Err(ApiError::Conflict(format!(
            "grant {gid} is already revoked"
        ))),
        Some(Ok(row)) => Ok(ok(GrantView::from(row))),
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub ttl_days: Option<u32>,
}

/// Renew a live grant: its expiry becomes `ttl_days` (default 30) from now.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body(content = RenewRequest, description = "optional"), responses((status = 200, body = GrantView), (status = 404), (status = 409)), security(("operator_token" = [])))]
#[post("/grants/{id}/renew")]
pub async fn renew(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let req: RenewRequest = crate::routes::optional_json(&body)?;
    let days = ttl(req.ttl_days)?;
    let (gid, actor) = (*id, auth.id());
    let existing = load(&state, gid).await?;
    if existing.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!("grant {gid} is revoked")));
    }
    let row = db::run(&state.pool, move |conn| {
        store::renew(conn, gid, days, Some(actor))
    })
    .await
    .map_err(|e| internal("grant renew failed", e))?
    .ok_or_else(|| ApiError::Conflict(format!("grant {gid} is revoked")))?;
    Ok(ok(GrantView::from(row)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub resource_kind: String,
    pub resource_id: String,
    /// `read` or `write`.
    pub scope: String,
    pub instance_id: Option<String>,
    pub network: Option<String>,
    pub source_ip: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub allowed: bool,
    pub denial: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    pub checks: Vec<Check>,
}

/// Every check of the grant against a calling context, with ok/failed and why (the
/// runbook's `applies_to?`), evaluated exactly as the live decision.
#[utoipa::path(tag = "grants", params(("id" = Uuid, Path)), request_body = ExplainRequest, responses((status = 200, body = Explanation), (status = 404), (status = 422)), security(("operator_token" = [])))]
#[post("/grants/{id}/explain")]
pub async fn explain(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ExplainRequest>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let req = body.into_inner();
    let scope: Scope = req
        .scope
        .parse()
        .map_err(|_| ApiError::validation("scope", "must be read or write"))?;
    let source_ip: IpAddr = req
        .source_ip
        .parse()
        .map_err(|_| ApiError::validation("source_ip", "must be an IP address"))?;
    let row = load(&state, *id).await?;
    let now = crate::services::peers::database_now(&state).await?;
    let ctx = Context {
        resource_kind: &req.resource_kind,
        resource_id: &req.resource_id,
        scope,
        instance_id: req.instance_id.as_deref(),
        network: req.network.as_deref(),
        source_ip,
        now,
    };
    let g = scope_of(&row);
    let decision = grant::decide(&g, &ctx);
    Ok(ok(Explanation {
        allowed: decision.is_ok(),
        denial: decision
            .err()
            .map(|d| json!({ "dimension": d.dimension, "error": d.to_string() })),
        checks: grant::explain(&g, &ctx),
    }))
}

/// A resource as answered: with its document, or (after a write) without.
pub fn resource_json(r: &store::Resource, with_document: bool) -> Value {
    let mut v = json!({ "kind": r.kind, "id": r.id, "version": r.version });
    if with_document {
        v["document"] = r.document.clone();
    }
    v
}

/// Read a shared resource (operator).
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), responses((status = 200), (status = 404), (status = 422)), security(("operator_token" = [])))]
#[get("/resources/{kind}/{id}")]
pub async fn get_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationRead)?;
    let (kind, id) = path.into_inner();
    known_kind(&state, &kind)?;
    let (k, i) = (kind.clone(), id.clone());
    let found = db::run(&state.pool, move |conn| store::get_resource(conn, &k, &i))
        .await
        .map_err(|e| internal("resource read failed", e))?
        .ok_or_else(|| ApiError::NotFound(format!("resource {kind}/{id} not found")))?;
    Ok(ok(crate::routes::grants::resource_json(&found, true)))
}

/// Publish (create or replace) a shared resource (JSON ≤ 64 KiB).
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), request_body = Object, responses((status = 200), (status = 422)), security(("operator_token" = [])))]
#[put("/resources/{kind}/{id}")]
pub async fn put_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let (kind, id) = path.into_inner();
    known_kind(&state, &kind)?;
    ids("id", std::slice::from_ref(&id))?;
    let doc = body.into_inner();
    let stored = db::run(&state.pool, move |conn| {
        store::put_resource(conn, &kind, &id, &doc, None)
    })
    .await
    .map_err(|e| internal("resource write failed", e))?;
    Ok(ok(crate::routes::grants::resource_json(&stored, false)))
}

/// Delete a shared resource.
#[utoipa::path(tag = "resources", params(("kind" = String, Path), ("id" = String, Path)), responses((status = 200), (status = 404)), security(("operator_token" = [])))]
#[delete("/resources/{kind}/{id}")]
pub async fn delete_resource(
    auth: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::FederationManage)?;
    let (kind, id) = path.into_inner();
    known_kind(&state, &kind)?;
    let (k, i) = (kind.clone(), id.clone());
    let deleted = db::run(&state.pool, move |conn| {
        store::delete_resource(conn, &k, &i)
    })
    .await
    .map_err(|e| internal("resource delete failed", e))?;
    if deleted {
        Ok(ok(json!({ "kind": kind, "id": id, "deleted": true })))
    } else {
        Err(ApiError::NotFound(format!(
            "resource {kind}/{id} not found"
        )))
    }
}
