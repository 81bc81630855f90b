//! The mTLS authentication chain of SPEC §4, in order, each with its exact 401 message.
//! Looked up on every request, so a revocation takes effect on the next one.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use powernode_store::certificates::{self, INBOUND, PeerCertificate};
use powernode_store::peers::{self, Peer};

use super::PeerCert;
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::services::Ctx;
use crate::startup::AppState;

/// A peer authenticated by the client certificate we issued to it.
#[derive(Debug, Clone)]
pub struct AuthedPeer {
    pub peer: Peer,
    pub certificate: PeerCertificate,
}

async fn authenticate(
    state: web::Data<AppState>,
    cert: Option<PeerCert>,
    allow_accepted: bool,
) -> Result<AuthedPeer, ApiError> {
    let cert = admit(&state, cert)?;
    lookup(&state.ctx, cert, allow_accepted).await
}

/// The first steps of the chain, without the database: a client certificate was presented
/// and its fingerprint is within its rate limit.
pub fn admit(state: &AppState, cert: Option<PeerCert>) -> Result<PeerCert, ApiError> {
    let cert = cert.ok_or(ApiError::Unauthorized("mTLS client certificate required"))?;
    crate::ratelimit::check(&state.limits.federation, &cert.fingerprint_sha256)?;
    Ok(cert)
}

/// The rest of the chain for an admitted certificate, with SPEC §4's exact 401s.
pub async fn lookup(
    ctx: &Ctx,
    cert: PeerCert,
    allow_accepted: bool,
) -> Result<AuthedPeer, ApiError> {
    let fingerprint = cert.fingerprint_sha256;
    let (row, peer) = db::run(&ctx.db, move |conn| -> Result<_, ApiError> {
        let Some(row) = certificates::by_fingerprint(conn, &fingerprint)? else {
            check_chain(None, allow_accepted)?;
            return Ok((None, None));
        };
        let peer = peers::find(conn, row.peer_id)?;
        check_chain(
            Some(ChainFacts {
                revoked: row.revoked_at.is_some(),
                inbound: row.direction == INBOUND,
                peer_status: peer.as_ref().map(|p| p.status),
            }),
            allow_accepted,
        )?;
        // It authenticated this request: a re-handshake picks the certificate in use.
        certificates::mark_used(conn, &fingerprint)?;
        Ok((Some(row), peer))
    })
    .await
    .context("mTLS lookup failed")?;
    let (Some(row), Some(peer)) = (row, peer) else {
        return Err(internal("mTLS lookup", "chain passed without a row"));
    };
    Ok(AuthedPeer {
        peer,
        certificate: row,
    })
}

pub use powernode_domain::chain::ChainFacts;

/// SPEC §4's chain (the domain's decision) as the API's 401s.
pub fn check_chain(cert: Option<ChainFacts>, allow_accepted: bool) -> Result<(), ApiError> {
    powernode_domain::chain::check(cert, allow_accepted)?;
    Ok(())
}

/// An enrolled, active or degraded peer.
pub struct PeerAuth(pub AuthedPeer);

/// As `PeerAuth`, also allowing `accepted` (the handshake).
pub struct HandshakeAuth(pub AuthedPeer);

fn parts(req: &HttpRequest) -> (Option<web::Data<AppState>>, Option<PeerCert>) {
    (
        req.app_data::<web::Data<AppState>>().cloned(),
        req.conn_data::<PeerCert>().cloned(),
    )
}

impl FromRequest for PeerAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, cert) = parts(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| internal("peer auth", "AppState missing"))?;
            authenticate(state, cert, false).await.map(PeerAuth)
        })
    }
}

impl FromRequest for HandshakeAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, cert) = parts(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| internal("peer auth", "AppState missing"))?;
            authenticate(state, cert, true).await.map(HandshakeAuth)
        })
    }
}
