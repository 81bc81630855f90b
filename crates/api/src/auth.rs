//! Worker authentication: `X-Worker-Token` or `Authorization: Bearer`, compared in constant time.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::startup::AppState;

pub const WORKER_TOKEN_HEADER: &str = "X-Worker-Token";

/// Proof that the request carried the worker token.
#[derive(Debug)]
pub struct WorkerAuth;

fn presented_token(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req.headers().get(WORKER_TOKEN_HEADER) {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
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
            tracing::error!("AppState missing from app data");
            return ready(Err(ApiError::Internal));
        };
        let result = match presented_token(req) {
            None => Err(ApiError::Unauthorized("Worker token required")),
            Some(t) if tokens_match(t, state.settings.worker_token.expose_secret()) => {
                Ok(WorkerAuth)
            }
            Some(_) => {
                tracing::warn!(path = req.path(), "worker API call with an invalid token");
                Err(ApiError::Unauthorized("Invalid or inactive worker token"))
            }
        };
        ready(result)
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
