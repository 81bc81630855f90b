//! Worker authentication: `X-Worker-Token` or `Authorization: Bearer`, compared in constant time.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::LocalBoxFuture;
use powernode_domain::token::sha256_hex;
/// The authenticated operator (re-exported so that handlers and MCP tools name it without
/// naming the store).
pub use powernode_store::operators::Operator;
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::random_bytes;
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::startup::AppState;

pub const WORKER_TOKEN_HEADER: &str = "X-Worker-Token";

/// Operator tokens: prefix, then 32 random bytes as unpadded base64url (256 bits).
pub const OPERATOR_TOKEN_PREFIX: &str = "pnop_";

/// Proof that the request carried the worker token.
#[derive(Debug)]
pub struct WorkerAuth(pub crate::services::Worker);

fn presented_token(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req.headers().get(WORKER_TOKEN_HEADER) {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    bearer(req)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares digests, not the strings: equal lengths always, so no length leak and no
/// `memcmp::eq` panic on different lengths.
fn tokens_match(presented: &str, expected: &str) -> bool {
    let a = openssl::sha::sha256(presented.as_bytes());
    let b = openssl::sha::sha256(expected.as_bytes());
    openssl::memcmp::eq(&a, &b)
}

impl FromRequest for WorkerAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(internal(
                "worker auth",
                "AppState missing from app data",
            )));
        };
        let result = match presented_token(req) {
            None => Err(ApiError::Unauthorized("Worker token required")),
            Some(t) if tokens_match(t, state.settings.worker_token.expose_secret()) => {
                Ok(WorkerAuth(crate::services::Worker::authenticated()))
            }
            Some(_) => {
                tracing::warn!(path = req.path(), "worker API call with an invalid token");
                Err(ApiError::Unauthorized("Invalid or inactive worker token"))
            }
        };
        ready(result)
    }
}

/// The authenticated operator of a request; services check its permissions.
#[derive(Debug, Clone)]
pub struct OperatorAuth(pub Operator);

/// Mints an operator token and its digest; the token is shown once and never stored.
pub fn mint_operator_token() -> Result<(SecretString, String), ApiError> {
    let bytes = random_bytes::<32>().map_err(|e| internal("operator token", e))?;
    let token = format!("{OPERATOR_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = sha256_hex(token.as_bytes());
    Ok((token.into(), digest))
}

/// The operator a presented bearer token belongs to (REST and MCP share this check).
pub async fn authenticate_operator(
    state: &AppState,
    token: Option<String>,
) -> Result<Operator, ApiError> {
    let token = token.ok_or(ApiError::Unauthorized("Operator token required"))?;
    let digest = sha256_hex(token.as_bytes());
    let found = db::run(&state.db, move |conn| {
        powernode_store::operators::authenticate(conn, &digest)
    })
    .await
    .context("operator lookup failed")?;
    found.ok_or(ApiError::Unauthorized("Invalid or disabled operator token"))
}

impl FromRequest for OperatorAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| internal("operator auth", "AppState missing"))?;
            authenticate_operator(&state, token).await.map(OperatorAuth)
        })
    }
}

/// The optional `Idempotency-Key` header of a mutating operator call (SPEC §10); a malformed one
/// is refused (422) before anything runs.
pub struct Idempotency(pub Option<crate::services::idempotency::IdempotencyKey>);

impl Idempotency {
    pub fn key(&self) -> Option<&crate::services::idempotency::IdempotencyKey> {
        self.0.as_ref()
    }
}

impl FromRequest for Idempotency {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use crate::services::idempotency::{HEADER, IdempotencyKey};
        std::future::ready(match req.headers().get(HEADER) {
            None => Ok(Idempotency(None)),
            Some(value) => value
                .to_str()
                .map_err(|_| ApiError::validation(HEADER, "must be 1-255 visible ASCII characters"))
                .and_then(IdempotencyKey::parse)
                .map(|k| Idempotency(Some(k))),
        })
    }
}

/// The optional `X-Powernode-Tick` header of a scheduled worker call (`<schedule>:<tick>`); a
/// malformed one is refused (422) before anything runs.
pub struct Tick(pub Option<crate::services::ticks::TickKey>);

impl Tick {
    pub fn key(&self) -> Option<&crate::services::ticks::TickKey> {
        self.0.as_ref()
    }
}

impl FromRequest for Tick {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use crate::services::ticks::{HEADER, TickKey};
        std::future::ready(match req.headers().get(HEADER) {
            None => Ok(Tick(None)),
            Some(value) => value
                .to_str()
                .map_err(|_| ApiError::validation(HEADER, "must be <schedule>:<unix second>"))
                .and_then(TickKey::parse)
                .map(|k| Tick(Some(k))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_not_length() {
        assert!(tokens_match(
            "a".repeat(40).as_str(),
            "a".repeat(40).as_str()
        ));
        assert!(!tokens_match("a", "a".repeat(40).as_str()));
        assert!(!tokens_match("", "x"));
    }
}
