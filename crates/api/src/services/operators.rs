//! Operators and their tokens (SPEC §10).

use powernode_client::operators::{CreateOperatorRequest, OperatorView, OperatorWithToken};
use powernode_domain::Permission;
use powernode_store::operators::{self, NewOperator, Operator};
use secrecy::ExposeSecret;

use powernode_domain::OperatorId;

use crate::auth::mint_operator_token;
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::{Ctx, require};

pub fn operator_view(o: Operator) -> OperatorView {
    OperatorView {
        id: o.id,
        name: o.name,
        permissions: o.permissions,
        created_by: o.created_by,
        created_at: o.created_at,
        disabled_at: o.disabled_at,
        last_used_at: o.last_used_at,
    }
}

pub fn validate_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '@' | '-'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::validation(
            "name",
            "must be 1-64 letters, digits, spaces or . _ @ -",
        ))
    }
}

pub fn parse_permissions(raw: &[String]) -> Result<Vec<Permission>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::validation("permissions", "can't be empty"));
    }
    let mut out = Vec::new();
    for p in raw {
        let parsed: Permission = p.parse().map_err(|_| {
            ApiError::validation("permissions", format!("contains unknown permission {p:?}"))
        })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    out.sort();
    Ok(out)
}

/// Creates an operator (admin only); the token is returned once and only its digest is
/// stored.
pub async fn create(
    ctx: &Ctx,
    operator: &Operator,
    req: CreateOperatorRequest,
) -> Result<OperatorWithToken, ApiError> {
    require(operator, Permission::OperatorsAdmin)?;
    let name = validate_name(&req.name)?;
    let permissions = parse_permissions(&req.permissions)?;
    let created_by = Some(operator.id);
    let (token, digest) = mint_operator_token()?;
    let shown = name.clone();
    let op = db::run(&ctx.db, move |conn| {
        let new = NewOperator {
            name: &name,
            token_digest: &digest,
            permissions: &permissions,
            created_by,
        };
        operators::insert(conn, &new).map_err(|e| {
            if powernode_store::is_unique_violation(&e) {
                ApiError::Conflict(format!(
                    "an enabled operator named {shown:?} already exists"
                ))
            } else {
                internal("operator create failed", e)
            }
        })
    })
    .await?;
    tracing::info!(operator_id = %op.id, name = %op.name, created_by = ?created_by, "operator created");
    Ok(OperatorWithToken {
        operator: operator_view(op),
        token: token.expose_secret().to_owned(),
    })
}

/// Every operator, enabled and disabled (admin only).
pub async fn list(ctx: &Ctx, operator: &Operator) -> Result<Vec<OperatorView>, ApiError> {
    require(operator, Permission::OperatorsAdmin)?;
    let all = db::run(&ctx.db, operators::list)
        .await
        .context("operator list failed")?;
    Ok(all.into_iter().map(operator_view).collect())
}

/// The operator behind the presented token.
pub fn me(operator: &Operator) -> OperatorView {
    operator_view(operator.clone())
}

/// Disables an operator (admin only); its token stops working on the next request.
pub async fn disable(
    ctx: &Ctx,
    operator: &Operator,
    id: OperatorId,
) -> Result<OperatorView, ApiError> {
    let id = id.uuid();
    require(operator, Permission::OperatorsAdmin)?;
    let actor = operator.id;
    let disabled = db::run(&ctx.db, move |conn| operators::disable(conn, id))
        .await
        .context("operator disable failed")?;
    if let Some(op) = disabled {
        tracing::info!(operator_id = %id, disabled_by = %actor, "operator disabled");
        return Ok(operator_view(op));
    }
    let exists = db::run(&ctx.db, move |conn| operators::find(conn, id))
        .await
        .context("operator lookup failed")?;
    Err(match exists {
        Some(_) => ApiError::Conflict(format!("operator {id} is already disabled")),
        None => ApiError::NotFound(format!("operator {id} not found")),
    })
}

/// The operator of a web UI session: enabled, and the session's epoch still current (signing
/// out or disabling ends every copy of the cookie). `None` → sign in again.
pub async fn session_operator(
    ctx: &Ctx,
    id: uuid::Uuid,
    epoch: i32,
) -> Result<Option<Operator>, ApiError> {
    let found = db::run(&ctx.db, move |conn| {
        powernode_store::operators::find_enabled(conn, id)
    })
    .await
    .context("session lookup failed")?;
    Ok(found.filter(|o| o.session_epoch == epoch))
}

/// Signs the operator out of every web UI session.
pub async fn end_sessions(ctx: &Ctx, operator: &Operator) -> Result<(), ApiError> {
    let id = operator.id;
    db::run(&ctx.db, move |conn| {
        powernode_store::operators::bump_session_epoch(conn, id)
    })
    .await
    .context("sign-out failed")
}
