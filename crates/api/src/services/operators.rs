//! Operators and their tokens (SPEC §10).

use powernode_domain::Permission;
use powernode_store::operators::{self, NewOperator, Operator};
use secrecy::SecretString;
use uuid::Uuid;

use crate::auth::mint_operator_token;
use crate::db::{self, DbError};
use crate::error::{ApiError, internal};
use crate::startup::AppState;

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

fn is_unique_violation(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Store(powernode_store::StoreError::Database(
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            )
        ))
    )
}

/// Creates an operator; the token is returned once and only its digest is stored.
pub async fn create(
    state: &AppState,
    name: String,
    permissions: Vec<Permission>,
    created_by: Option<Uuid>,
) -> Result<(Operator, SecretString), ApiError> {
    let (token, digest) = mint_operator_token()?;
    let shown = name.clone();
    let result = db::run(&state.pool, move |conn| {
        operators::insert(
            conn,
            &NewOperator {
                name: &name,
                token_digest: &digest,
                permissions: &permissions,
                created_by,
            },
        )
    })
    .await;
    match result {
        Ok(op) => {
            tracing::info!(operator_id = %op.id, name = %op.name, created_by = ?created_by, "operator created");
            Ok((op, token))
        }
        Err(e) if is_unique_violation(&e) => Err(ApiError::Conflict(format!(
            "an enabled operator named {shown:?} already exists"
        ))),
        Err(e) => Err(internal("operator create failed", e)),
    }
}

pub async fn list(state: &AppState) -> Result<Vec<Operator>, ApiError> {
    db::run(&state.pool, operators::list)
        .await
        .map_err(|e| internal("operator list failed", e))
}

pub async fn disable(state: &AppState, id: Uuid, actor: Uuid) -> Result<Operator, ApiError> {
    let disabled = db::run(&state.pool, move |conn| operators::disable(conn, id))
        .await
        .map_err(|e| internal("operator disable failed", e))?;
    if let Some(op) = disabled {
        tracing::info!(operator_id = %id, disabled_by = %actor, "operator disabled");
        return Ok(op);
    }
    let exists = db::run(&state.pool, move |conn| operators::find(conn, id))
        .await
        .map_err(|e| internal("operator lookup failed", e))?;
    Err(match exists {
        Some(_) => ApiError::Conflict(format!("operator {id} is already disabled")),
        None => ApiError::NotFound(format!("operator {id} not found")),
    })
}
