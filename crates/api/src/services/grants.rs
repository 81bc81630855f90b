//! Grants (SPEC §6) and the shared resources peers read and write under them: issue, list,
//! show, revoke, renew, explain; resource get/put/delete for operators.

use powernode_client::grants::{
    ExplainRequest, Explanation, GrantView, IssueRequest, IssuedGrant, ListQuery, RenewRequest,
    ResourceDeleted, ResourceView, RevokeRequest,
};
use std::net::IpAddr;

use powernode_domain::grant::{self, Context, GrantScope, Scope};
use powernode_domain::token::sha256_hex;
use powernode_domain::{PeerStatus, Permission};
use powernode_store::grants::{self as store, GrantRow, Lifecycle, NewGrant, texts};
use powernode_store::operators::Operator;
use serde_json::{Value, json};
use uuid::Uuid;

use powernode_domain::GrantId;

use powernode_domain::PeerId;

use super::{Ctx, require};
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};

const MAX_ID_LEN: usize = 64;

pub fn grant_view(g: GrantRow) -> GrantView {
    GrantView {
        id: g.id,
        peer_id: g.peer_id,
        resource_kind: g.resource_kind,
        resource_id: g.resource_id,
        permission_scopes: texts(&g.permission_scopes),
        node_instance_ids: texts(&g.node_instance_ids),
        sdwan_network_ids: texts(&g.sdwan_network_ids),
        source_cidrs: g
            .source_cidrs
            .iter()
            .map(|n| n.map_or_else(|| "(unreadable)".to_owned(), |n| n.to_string()))
            .collect(),
        expires_at: g.expires_at,
        auto_renew: g.auto_renew,
        revoked_at: g.revoked_at,
        revocation_reason: g.revocation_reason,
        created_at: g.created_at,
    }
}

/// The domain's view of a stored grant. An allowlist entry that could not be read makes the
/// grant deny every source (and is logged), never allow any.
pub fn scope_of(g: &GrantRow) -> GrantScope {
    let source_cidrs_unreadable = g.source_cidrs.iter().any(Option::is_none);
    if source_cidrs_unreadable {
        tracing::error!(grant_id = %g.id, peer_id = %g.peer_id, "grant has an unreadable source_cidrs entry; denying every source");
    }
    GrantScope {
        resource_kind: g.resource_kind.clone(),
        resource_id: g.resource_id.clone(),
        permission_scopes: texts(&g.permission_scopes)
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        node_instance_ids: texts(&g.node_instance_ids),
        sdwan_network_ids: texts(&g.sdwan_network_ids),
        source_cidrs: g.source_cidrs.iter().flatten().copied().collect(),
        source_cidrs_unreadable,
        expires_at: g.expires_at,
        revoked: g.revoked_at.is_some(),
    }
}

/// Ids in allowlists and resource ids: 1–64 characters (the columns' CHECK).
pub(crate) fn ids(field: &str, values: &[String]) -> Result<(), ApiError> {
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

/// The lifetime asked for, or the default (`POWERNODE_GRANT_TTL_DAYS_*`).
fn ttl(ctx: &Ctx, days: Option<u32>) -> Result<u32, ApiError> {
    ctx.settings
        .grant_lifetimes
        .resolve(days)
        .map_err(|message| ApiError::validation("ttl_days", message))
}

/// A kind operators and peers may use: one of `POWERNODE_FEDERATION_RESOURCE_KINDS`.
pub fn known_kind(ctx: &Ctx, kind: &str) -> Result<(), ApiError> {
    if ctx.settings.resource_kinds.iter().any(|k| k == kind) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "resource_kind",
            format!("{kind} is not a declared resource kind"),
        )
        .with_message(format!("unknown resource kind {kind}")))
    }
}

/// Validated allowlist networks (host bits cleared, a bare address as /32 or /128: how they
/// always matched) and the TTL.
fn validate_issue(ctx: &Ctx, req: &IssueRequest) -> Result<(Vec<ipnet::IpNet>, u32), ApiError> {
    known_kind(ctx, &req.resource_kind)?;
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
    let networks = req
        .source_cidrs
        .iter()
        .map(|c| {
            grant::parse_cidr(c)
                .map(|n| n.trunc())
                .map_err(|e| ApiError::validation("source_cidrs", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((networks, ttl(ctx, req.ttl_days)?))
}

/// Issues a grant to a peer that is not revoked: the peer row is locked (`FOR SHARE`) while
/// the grant is inserted, in one transaction, so a concurrent revoke cannot slip between.
pub async fn issue(
    ctx: &Ctx,
    operator: &Operator,
    peer_id: PeerId,
    req: IssueRequest,
) -> Result<IssuedGrant, ApiError> {
    let peer_id = peer_id.uuid();
    require(operator, Permission::FederationManage)?;
    let (networks, ttl_days) = validate_issue(ctx, &req)?;
    let token = format!("fg-{}", Uuid::new_v4());
    let digest = sha256_hex(token.as_bytes());
    let actor = operator.id;
    let row = db::transaction(&ctx.db, move |conn| {
        let status = powernode_store::peers::status_for_share(conn, peer_id)
            .map_err(|e| internal("peer lookup failed", e))?
            .ok_or_else(|| ApiError::NotFound(format!("peer {peer_id} not found")))?;
        if status == PeerStatus::Revoked {
            return Err(ApiError::Conflict(format!("peer {peer_id} is revoked")));
        }
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
                source_cidrs: &networks,
                ttl_days,
                auto_renew: req.auto_renew,
                created_by: Some(actor),
            },
        )
        .map_err(|e| internal("grant issue failed", e))
    })
    .await?;
    tracing::info!(grant_id = %row.id, peer_id = %peer_id, operator_id = %actor, "grant issued");
    Ok(IssuedGrant {
        grant: grant_view(row),
        token,
    })
}

/// Grants, newest first, by peer and lifecycle.
pub async fn list(
    ctx: &Ctx,
    operator: &Operator,
    query: ListQuery,
) -> Result<Vec<GrantView>, ApiError> {
    require(operator, Permission::FederationRead)?;
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
    let rows = db::run(&ctx.db, move |conn| store::list(conn, peer, lifecycle))
        .await
        .context("grant list failed")?;
    Ok(rows.into_iter().map(grant_view).collect())
}

async fn load(ctx: &Ctx, id: Uuid) -> Result<GrantRow, ApiError> {
    db::run(&ctx.db, move |conn| store::find(conn, id))
        .await
        .context("grant lookup failed")?
        .ok_or_else(|| ApiError::NotFound(format!("grant {id} not found")))
}

/// One grant (never its token).
pub async fn show(ctx: &Ctx, operator: &Operator, id: GrantId) -> Result<GrantView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationRead)?;
    Ok(grant_view(load(ctx, id).await?))
}

/// Revokes a live grant (a second revoke is 409); calls with its token are refused at once.
pub async fn revoke(
    ctx: &Ctx,
    operator: &Operator,
    id: GrantId,
    req: RevokeRequest,
) -> Result<GrantView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let reason = super::peers::lifecycle::reason(&req.reason)?;
    let actor = operator.id;
    db::transaction(&ctx.db, move |conn| {
        match store::revoke(conn, id, &reason, Some(actor))
            .map_err(|e| internal("grant revoke failed", e))?
        {
            None => Err(ApiError::NotFound(format!("grant {id} not found"))),
            Some(Err(_)) => Err(ApiError::Conflict(format!("grant {id} is already revoked"))),
            Some(Ok(row)) => Ok(grant_view(row)),
        }
    })
    .await
}

/// Renews a live grant: its expiry becomes `ttl_days` (default 30) from now.
pub async fn renew(
    ctx: &Ctx,
    operator: &Operator,
    id: GrantId,
    req: RenewRequest,
) -> Result<GrantView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationManage)?;
    let days = ttl(ctx, req.ttl_days)?;
    let actor = operator.id;
    db::transaction(&ctx.db, move |conn| {
        let existing = store::find(conn, id)
            .map_err(|e| internal("grant lookup failed", e))?
            .ok_or_else(|| ApiError::NotFound(format!("grant {id} not found")))?;
        if existing.revoked_at.is_some() {
            return Err(ApiError::Conflict(format!("grant {id} is revoked")));
        }
        store::renew(conn, id, days, Some(actor))
            .map_err(|e| internal("grant renew failed", e))?
            .map(grant_view)
            .ok_or_else(|| ApiError::Conflict(format!("grant {id} is revoked")))
    })
    .await
}

/// Every check of the grant against a calling context, with ok/failed and why (the runbook's
/// `applies_to?`), evaluated by the same domain function as the live decision.
pub async fn explain(
    ctx: &Ctx,
    operator: &Operator,
    id: GrantId,
    req: ExplainRequest,
) -> Result<Explanation, ApiError> {
    let id = id.uuid();
    require(operator, Permission::FederationRead)?;
    let scope: Scope = req
        .scope
        .parse()
        .map_err(|_| ApiError::validation("scope", "must be read or write"))?;
    let source_ip: IpAddr = req
        .source_ip
        .parse()
        .map_err(|_| ApiError::validation("source_ip", "must be an IP address"))?;
    let (row, now) = db::transaction(&ctx.db, move |conn| {
        let row = store::find(conn, id)
            .map_err(|e| internal("grant lookup failed", e))?
            .ok_or_else(|| ApiError::NotFound(format!("grant {id} not found")))?;
        let now = powernode_store::database_now(conn)
            .map_err(|e| internal("database clock unavailable", e))?;
        Ok((row, now))
    })
    .await?;
    let call = Context {
        resource_kind: &req.resource_kind,
        resource_id: &req.resource_id,
        scope,
        instance_id: req.instance_id.as_deref(),
        network: req.network.as_deref(),
        source_ip,
        now,
    };
    let g = scope_of(&row);
    let decision = grant::decide(&g, &call);
    Ok(Explanation {
        allowed: decision.is_ok(),
        denial: decision
            .err()
            .map(|d| json!({ "dimension": d.dimension, "error": d.to_string() })),
        checks: grant::explain(&g, &call),
    })
}

/// A resource as answered: with its document, or (after a write) without.
/// A stored resource without its document (what a write answers).
pub fn resource_view(r: &store::Resource) -> ResourceView {
    ResourceView {
        kind: r.kind.clone(),
        id: r.id.clone(),
        version: i64::from(r.version),
        document: None,
    }
}

/// An operator reads a shared resource.
pub async fn get_resource(
    ctx: &Ctx,
    operator: &Operator,
    kind: String,
    id: String,
) -> Result<ResourceView, ApiError> {
    require(operator, Permission::FederationRead)?;
    known_kind(ctx, &kind)?;
    let (k, i) = (kind.clone(), id.clone());
    let found = db::run(&ctx.db, move |conn| store::get_resource(conn, &k, &i))
        .await
        .context("resource read failed")?
        .ok_or_else(|| ApiError::NotFound(format!("resource {kind}/{id} not found")))?;
    let document = serde_json::value::to_raw_value(&found.document)
        .map_err(|e| internal("resource document", e))?;
    Ok(ResourceView {
        document: Some(document),
        ..resource_view(&found)
    })
}

/// An operator publishes (creates or replaces) a shared resource.
pub async fn put_resource(
    ctx: &Ctx,
    operator: &Operator,
    kind: String,
    id: String,
    document: Value,
) -> Result<ResourceView, ApiError> {
    require(operator, Permission::FederationManage)?;
    known_kind(ctx, &kind)?;
    ids("id", std::slice::from_ref(&id))?;
    let stored = db::transaction(&ctx.db, move |conn| {
        super::check_storable(conn, "document", &document)?;
        store::put_resource(conn, &kind, &id, &document, None)
            .map_err(|e| internal("resource write failed", e))
    })
    .await?;
    Ok(resource_view(&stored))
}

/// An operator deletes a shared resource.
pub async fn delete_resource(
    ctx: &Ctx,
    operator: &Operator,
    kind: String,
    id: String,
) -> Result<ResourceDeleted, ApiError> {
    require(operator, Permission::FederationManage)?;
    known_kind(ctx, &kind)?;
    let (k, i) = (kind.clone(), id.clone());
    let deleted = db::run(&ctx.db, move |conn| store::delete_resource(conn, &k, &i))
        .await
        .context("resource delete failed")?;
    if deleted {
        Ok(ResourceDeleted {
            kind,
            id,
            deleted: true,
        })
    } else {
        Err(ApiError::NotFound(format!(
            "resource {kind}/{id} not found"
        )))
    }
}
