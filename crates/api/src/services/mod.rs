//! Service functions: load, apply the domain rule, persist and record the event in one
//! transaction. Handlers (REST, the federation listener, the worker API, later MCP and the UI)
//! call exactly one of these; each checks its caller's permission itself, so no surface can
//! forget it.

pub mod approvals;
pub mod doctor;
pub mod events;
pub mod federation;
pub mod governance;
pub mod grants;
pub mod health;
pub mod idempotency;
pub mod inbound;
pub mod operators;
pub mod peers;
pub mod ticks;
pub mod worker;

use powernode_domain::Permission;
use powernode_store::operators::Operator;

use crate::error::ApiError;
use crate::settings::Settings;

/// What a service may use: the database, the settings (with the master key) and the worker
/// queue it offers fast-establishment jobs on. Not the HTTP layer's metrics handle, Redis
/// client or batcher threads; time comes from the database.
pub struct Ctx {
    pub db: crate::db::Database,
    pub settings: Settings,
    pub queue: std::sync::Arc<crate::queue::JobQueue>,
    /// The PeerClient's mTLS clients, kept between ticks (keep-alive connections reused).
    pub peer_clients:
        crate::peer_clients::PeerClients<std::sync::Arc<crate::peer_clients::PeerTransport>>,
}

/// The worker acting through the worker API: made only by the worker-token extractor, so a
/// worker-API service cannot be called without it.
#[derive(Debug)]
pub struct Worker(());

impl Worker {
    pub(crate) fn authenticated() -> Self {
        Worker(())
    }
}

/// A JSON value about to be stored as `jsonb` must read back: PostgreSQL renders a number such
/// as `1.7976931348623157e308` as a 309-digit integer that no JSON reader here accepts, which
/// would poison the row for every later read. Refused (422) before anything is written.
pub fn check_storable(
    conn: &mut diesel::PgConnection,
    field: &str,
    value: &serde_json::Value,
) -> Result<(), ApiError> {
    let text = powernode_store::jsonb_text(conn, value)
        .map_err(|e| crate::error::internal("jsonb check", e))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map(|_| ())
        .map_err(|_| {
            let message = format!("{field} contains a number outside the supported range");
            ApiError::validation(field, "contains a number outside the supported range")
                .with_message(message)
        })
}

/// The operator a service acts for must hold `permission` (403 naming it otherwise).
pub fn require(operator: &Operator, permission: Permission) -> Result<(), ApiError> {
    if operator.has(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            permission: permission.as_str(),
        })
    }
}
