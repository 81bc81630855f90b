//! `Idempotency-Key` (SPEC §10) for every mutating operator action, once, in the service
//! layer: REST passes the header, MCP its `idempotency_key` argument, the UI its form token.
//!
//! A key is scoped to the operator and kept 24 h in PostgreSQL (replicas share it). The first
//! call with a key runs the action; its outcome — the answer, or a 4xx refusal — is stored
//! sealed with the master key (it may carry a once-only secret, e.g. an acceptance token) and
//! replayed to the same operator for the same request. The same key with another request is
//! refused (422); while the first call runs, another is refused (409). A 5xx is not stored:
//! the caller may retry with the same key.

use std::future::Future;

use powernode_domain::token::sha256_hex;
use powernode_store::idempotency::{self, Begun};
use powernode_store::operators::Operator;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::Ctx;

/// The header operators send.
pub const HEADER: &str = "Idempotency-Key";

/// A caller's idempotency key: 1–255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err(ApiError::validation(
                HEADER,
                "must be 1-255 visible ASCII characters",
            ))
        }
    }
}

/// A stored first outcome.
#[derive(Serialize, Deserialize)]
enum Stored {
    Answer(Value),
    Refusal {
        status: u16,
        code: String,
        error: String,
        details: Value,
    },
}

/// Runs `action` (named `name`, on `request`) at most once per `key` of this operator; without
/// a key it simply runs.
pub async fn once<R, T, F, Fut>(
    ctx: &Ctx,
    operator: &Operator,
    key: Option<&IdempotencyKey>,
    name: &'static str,
    request: R,
    action: F,
) -> Result<T, ApiError>
where
    R: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    once_telling(ctx, operator, key, name, request, action)
        .await
        .map(|(answer, _)| answer)
}

/// As [`once`], also saying whether the answer is a replay of the first run (the web UI shows a
/// once-only token only on the run that minted it).
pub async fn once_telling<R, T, F, Fut>(
    ctx: &Ctx,
    operator: &Operator,
    key: Option<&IdempotencyKey>,
    name: &'static str,
    request: R,
    action: F,
) -> Result<(T, bool), ApiError>
where
    R: Serialize,
    T: Serialize + DeserializeOwned,
    F: FnOnce(R) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let Some(key) = key else {
        return action(request).await.map(|a| (a, false));
    };
    let body =
        serde_json::to_vec(&(name, &request)).map_err(|e| internal("idempotency digest", e))?;
    let digest = sha256_hex(&body);
    let (operator_id, k) = (operator.id, key.0.clone());
    let begun = db::run(&ctx.db, move |conn| {
        idempotency::begin(conn, operator_id, &k, &digest)
    })
    .await
    .context("idempotency key")?;
    let context = format!("idempotency:{operator_id}:{}", key.0);
    match begun {
        Begun::Mismatch => Err(ApiError::Unprocessable {
            field: HEADER.to_owned(),
            error: "Idempotency-Key reused with a different request".to_owned(),
        }),
        Begun::InProgress => Err(ApiError::Conflict(
            "request with this Idempotency-Key is in progress".to_owned(),
        )),
        Begun::Done(sealed) => {
            let plain = ctx
                .settings
                .master_key
                .open(context.as_bytes(), &sealed)
                .map_err(|e| internal("idempotency replay", e))?;
            match serde_json::from_slice(plain.expose_secret())
                .map_err(|e| internal("idempotency replay", e))?
            {
                Stored::Answer(value) => serde_json::from_value(value)
                    .map(|a| (a, true))
                    .map_err(|e| internal("idempotency replay", e)),
                Stored::Refusal {
                    status,
                    code,
                    error,
                    details,
                } => Err(ApiError::Replayed {
                    status,
                    code,
                    error,
                    details,
                }),
            }
        }
        Begun::Run => {
            let outcome = action(request).await;
            record(ctx, operator_id, key, &context, &outcome).await;
            outcome.map(|a| (a, false))
        }
    }
}

/// Stores the outcome (an answer or a 4xx), or forgets the key after a 5xx. A failure to
/// record is logged; the caller still gets the outcome.
async fn record<T: Serialize>(
    ctx: &Ctx,
    operator_id: uuid::Uuid,
    key: &IdempotencyKey,
    context: &str,
    outcome: &Result<T, ApiError>,
) {
    let stored = match outcome {
        Ok(answer) => serde_json::to_value(answer).ok().map(Stored::Answer),
        Err(e) => {
            let (status, code, error, details) = e.parts();
            (400..500).contains(&status).then_some(Stored::Refusal {
                status,
                code,
                error,
                details,
            })
        }
    };
    let sealed = stored
        .and_then(|s| serde_json::to_vec(&s).ok())
        .and_then(|plain| {
            ctx.settings
                .master_key
                .seal(context.as_bytes(), &plain)
                .ok()
        });
    let k = key.0.clone();
    let recorded = db::run(&ctx.db, move |conn| match sealed {
        Some(sealed) => idempotency::finish(conn, operator_id, &k, &sealed),
        None => idempotency::forget(conn, operator_id, &k),
    })
    .await;
    if let Err(e) = recorded.context("recording an idempotent outcome") {
        e.report();
    }
}
