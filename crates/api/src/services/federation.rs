//! Trust between instances: B's side of accept and the outbound PeerClient (handshakes and
//! heartbeats over mTLS, SPEC §3–§5).

use powernode_client::FederationClient;
use powernode_client::federation::{AcceptAnswer, HandshakeRequest, HeartbeatRequest};
use powernode_client::worker::{PeerCallFailure, PeerRun};
use powernode_domain::liveness::{CONTACTED_STATUSES, OutboundCall, outbound_call};

use diesel::PgConnection;
use openssl::x509::X509;
use powernode_domain::events::{EventKind, EventSource, Severity};
use powernode_domain::token;
use powernode_domain::{PeerKind, PeerOrigin, PeerStatus, SpawnMode, SpawnRole};
use powernode_store::StoreError;
use powernode_store::certificates::{self, NewCertificate, OUTBOUND};
use powernode_store::events::{self as fleet, NewEvent};
use powernode_store::peers::{self, NewPeer, Peer, RemoteFacts, Sealed};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::ca::{self, CLIENT_KEY_CONTEXT, Issued, OpenCa};
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::observability;
use crate::services::Ctx;

/// `federation.certificate.<verb>` (source `internal_ca`) for a certificate we issued.
pub fn certificate_event(
    conn: &mut PgConnection,
    peer_id: Uuid,
    issued: &Issued,
    verb: &str,
) -> Result<(), StoreError> {
    let kind = match verb {
        "renewed" => EventKind::CertificateRenewed,
        _ => EventKind::CertificateIssued,
    };
    let payload = json!({
        "serial": issued.serial_hex,
        "subject": issued.subject,
        "fingerprint_sha256": issued.fingerprint_sha256,
        "not_after": issued.not_after.format(&time::format_description::well_known::Rfc3339).ok(),
    });
    fleet::insert(
        conn,
        &NewEvent {
            kind,
            severity: Severity::Low,
            source: EventSource::InternalCa,
            peer_id: Some(peer_id),
            payload: &payload,
            correlation_id: None,
        },
    )?;
    Ok(())
}

/// A failed call to a peer as our answer: its error envelope passed through unchanged, no
/// answer (or one that is not the contract) as 502.
fn peer_error(url: &str, e: powernode_client::Error) -> ApiError {
    use powernode_client::Error as E;
    match e {
        // A peer's own failure is not ours to pass on as a 5xx (SPEC §10): 502, with what it
        // said in `details`.
        E::Api { status, body } if status >= 500 => ApiError::PeerFailed {
            message: format!("peer at {url} answered {status}: {}", body.error),
            status,
            error: body.error,
        },
        E::Api { status, body } => ApiError::Remote {
            status,
            code: body.code,
            error: body.error,
        },
        E::NoAnswer { cause, .. } => ApiError::PeerUnreachable(format!(
            "peer at {url} is unreachable: {}",
            crate::error::one_line(&cause)
        )),
        other => ApiError::PeerUnreachable(format!("peer at {url} is unreachable: {other}")),
    }
}

/// What B takes from A's accept answer. Read before anything is stored.
struct AcceptFacts {
    client_cert_pem: String,
    their_csr: String,
    remote_instance_id: Uuid,
    peer_kind: PeerKind,
    spawn_role: Option<SpawnRole>,
    spawn_mode: Option<SpawnMode>,
}

fn read_accept_answer(base: &str, answer: AcceptAnswer) -> Result<AcceptFacts, ApiError> {
    // An enum value we do not know is refused, never guessed: nothing is stored.
    let peer_kind = match answer.peer_kind.as_deref() {
        None => PeerKind::Platform,
        Some(k) => PeerKind::parse(k).map_err(|_| unknown_value(base, "peer_kind", k))?,
    };
    let spawn_role = answer
        .spawn_role
        .as_deref()
        .map(|r| SpawnRole::parse(r).map_err(|_| unknown_value(base, "spawn_role", r)))
        .transpose()?
        .map(SpawnRole::mirrored);
    let spawn_mode = answer
        .spawn_mode
        .as_deref()
        .map(|m| SpawnMode::parse(m).map_err(|_| unknown_value(base, "spawn_mode", m)))
        .transpose()?;
    Ok(AcceptFacts {
        client_cert_pem: answer.client_cert_pem,
        their_csr: answer.csr_pem,
        remote_instance_id: answer.instance.instance_id,
        peer_kind,
        spawn_role,
        spawn_mode,
    })
}

/// A peer's answer we cannot use: 502, with the machine-readable reason in `details.reason`.
fn unknown_value(url: &str, field: &str, value: &str) -> ApiError {
    let reason = format!("unknown {field} {value}");
    ApiError::PeerAnswerInvalid {
        message: format!("peer at {url} answered with {reason}"),
        reason,
    }
}

/// B's checks before accepting (SPEC §3), also run when the accept is only being queued for
/// approval: the token parses; no live peer already pins its CA; the CA served at the token's
/// URL (fetched without verification) has the token's SHA-256. Returns the claims, A's base
/// URL and its CA (PEM) to pin.
pub async fn pin_remote_ca(
    ctx: &Ctx,
    acceptance_token: &SecretString,
) -> Result<(token::TokenClaims, String, String), ApiError> {
    let claims = token::parse(acceptance_token.expose_secret()).map_err(|e| {
        ApiError::validation("acceptance_token", "malformed").with_message(e.to_string())
    })?;
    let base = claims.url.trim_end_matches('/').to_owned();
    // Refuse before calling A: once A accepts, its side is committed (SPEC §3).
    let pinned = claims.ca_sha256.clone();
    if db::run(&ctx.db, move |conn| {
        peers::ca_pinned_by_live_peer(conn, &pinned)
    })
    .await
    .context("peer lookup failed")?
    {
        return Err(ApiError::Conflict(format!(
            "instance at {base} is already federated"
        )));
    }
    // The one call made without verifying the server: the body's hash is the check.
    let bootstrap = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(ctx.settings.peer_timeout)
        .build()
        .map_err(|e| internal("http client", e))?;
    let der = FederationClient::new(bootstrap, &base)
        .ca()
        .await
        .map_err(|e| peer_error(&base, e))?;
    let got = token::sha256_hex(&der);
    if got != claims.ca_sha256 {
        return Err(
            ApiError::validation("acceptance_token", "CA mismatch").with_message(format!(
                "CA fingerprint mismatch: expected {}, got {got}",
                claims.ca_sha256
            )),
        );
    }
    let remote_ca = X509::from_der(&der)
        .map_err(|_| ApiError::PeerUnreachable("peer served an unreadable CA".to_owned()))?;
    let remote_ca_pem =
        String::from_utf8_lossy(&remote_ca.to_pem().map_err(|e| internal("pem", e))?).into_owned();
    Ok((claims, base, remote_ca_pem))
}

/// B's operator accept (SPEC §3): parse the token, fetch and pin A's CA by fingerprint, send
/// our CSR to A, then in one transaction record our row for A as `accepted`, our client
/// certificate with its sealed key, and the certificate we issue to A from A's CSR.
pub async fn accept_remote(
    ctx: &Ctx,
    acceptance_token: SecretString,
    actor: Uuid,
) -> Result<Peer, ApiError> {
    let (claims, base, remote_ca_pem) = pin_remote_ca(ctx, &acceptance_token).await?;

    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    let (our_key, our_csr) = ca::key_and_csr().map_err(|e| internal("key generation", e))?;
    let pinned = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(remote_ca_pem.as_bytes())
            .map_err(|e| internal("pin", e))?])
        .timeout(ctx.settings.peer_timeout)
        .build()
        .map_err(|e| internal("http client", e))?;
    let request = powernode_client::federation::AcceptRequest {
        peer_id: claims.peer_id,
        acceptance_token: Some(acceptance_token.expose_secret().to_owned()),
        contract_version: powernode_domain::peer::CONTRACT_VERSION,
        instance: powernode_client::federation::Instance {
            instance_id: identity.instance_id,
            url: ctx.settings.federation_public_url.as_str().to_owned(),
        },
        csr_pem: our_csr.clone(),
        ca_pem: identity.ca_cert_pem.clone(),
        capabilities: Some(json!([])),
        extension_slugs: Some(json!([])),
        endpoints: Some(json!([])),
    };
    crate::failpoint::point("accept-remote-before-call");
    let answer = FederationClient::new(pinned, &base)
        .accept(&request)
        .await
        .map_err(|e| peer_error(&base, e))?;

    let AcceptFacts {
        client_cert_pem,
        their_csr,
        remote_instance_id,
        peer_kind,
        spawn_role,
        spawn_mode,
    } = read_accept_answer(&base, answer)?;
    let cert = X509::from_pem(client_cert_pem.as_bytes()).map_err(|_| {
        ApiError::PeerUnreachable("peer issued an unreadable certificate".to_owned())
    })?;
    let fingerprint = ca::fingerprint(&cert).map_err(|e| internal("digest", e))?;
    let (cert_from, cert_to) = ca::validity(&cert);
    let sealed = Sealed(
        ctx.settings
            .master_key
            .seal(
                CLIENT_KEY_CONTEXT,
                &our_key
                    .private_key_to_pem_pkcs8()
                    .map_err(|e| internal("key", e))?,
            )
            .map_err(|e| internal("seal", e))?,
    );
    let open = OpenCa::open(&identity, &ctx.settings.master_key)
        .map_err(|e| internal("CA unavailable", e))?;
    let remote_ca_sha = claims.ca_sha256.clone();
    let url = base.clone();
    let cert_days = ctx.settings.client_cert_days;
    // The peer has accepted; nothing of ours is stored yet (the chaos harness kills here).
    crate::failpoint::point("accept-remote-before-commit");
    let peer = db::transaction(&ctx.db, move |conn| {
        let id = Uuid::new_v4();
        let now = powernode_store::database_now(conn).map_err(|e| internal("clock", e))?;
        if peers::instance_bound_elsewhere(conn, remote_instance_id, id)
            .map_err(|e| internal("lookup", e))?
        {
            return Err(ApiError::Conflict(format!(
                "instance {remote_instance_id} is already federated"
            )));
        }
        let issued_to_them = open
            .sign_client_csr(&their_csr, id, remote_instance_id, now, cert_days)
            .map_err(|e| ApiError::PeerUnreachable(format!("peer's CSR refused: {e}")))?;
        let peer = peers::insert_accepted_here(
            conn,
            &NewPeer {
                id,
                origin: PeerOrigin::AcceptedHere.as_str(),
                remote_instance_url: &url,
                peer_kind: peer_kind.as_str(),
                spawn_role: spawn_role.map(SpawnRole::as_str),
                spawn_mode: spawn_mode.map(SpawnMode::as_str),
                remote_prefix_advertisement: None,
                status: PeerStatus::Accepted.as_str(),
                metadata: json!({}),
                endpoints: json!([]),
                extension_slugs: json!([]),
                capabilities: json!([]),
                last_heartbeat_at: None,
                acceptance_token_digest: None,
                acceptance_token_expires_at: None,
            },
            &RemoteFacts {
                remote_instance_id: Some(remote_instance_id),
                remote_ca_pem: Some(&remote_ca_pem),
                remote_ca_sha256: Some(&remote_ca_sha),
                contract_version_agreed: Some(powernode_domain::peer::CONTRACT_VERSION),
                capabilities: None,
                extension_slugs: None,
                endpoints: None,
                pending_outbound_key: None,
            },
        )
        .map_err(|e| internal("peer insert", e))?;
        let serial = ca::serial_hex(&cert).map_err(|e| internal("serial", e))?;
        certificates::insert(
            conn,
            &NewCertificate {
                peer_id: id,
                direction: OUTBOUND,
                serial: &serial,
                subject: &format!("CN=fed:{}", claims.peer_id),
                fingerprint_sha256: &fingerprint,
                cert_pem: &client_cert_pem,
                key_sealed: Some(&sealed),
                not_before: cert_from,
                not_after: cert_to,
            },
        )
        .map_err(|e| internal("certificate insert", e))?;
        ca::record_issued(conn, id, &issued_to_them)
            .map_err(|e| internal("certificate insert", e))?;
        certificate_event(conn, id, &issued_to_them, "issued").map_err(|e| internal("event", e))?;
        Ok(peer)
    })
    .await
    .context("accept failed")?;
    tracing::info!(peer_id = %peer.id, remote = %peer.remote_instance_url, operator_id = %actor, "accepted a peer's acceptance token");
    // Fast establishment (SPEC §4): the handshake need not wait for the next tick.
    ctx.queue.contact(peer.id, CONTACT_AFTER_ACCEPT);
    Ok(peer)
}

/// Our newest non-revoked outbound certificate row for a peer and what of it is usable.
enum OutboundPair {
    Complete {
        row: Box<certificates::PeerCertificate>,
        cert: String,
        key: secrecy::SecretBox<Vec<u8>>,
    },
    /// The certificate, the key, or both are missing (or the key does not open).
    Partial { has_cert: bool, has_key: bool },
}

/// The refusal to renew with half a pair (the forced re-mint's 409 and the doctor's
/// `peer.certificates` evidence).
pub fn partial_message(peer_id: Uuid, has_cert: bool, has_key: bool) -> String {
    format!(
        "outbound certificate for peer {peer_id} is partial (cert_pem={has_cert}, key_pem={has_key}): revoke and re-propose"
    )
}

/// Reads our outbound pair for `peer_id` and the database clock.
async fn outbound_pair(
    ctx: &Ctx,
    peer_id: Uuid,
) -> Result<(OutboundPair, time::OffsetDateTime), ApiError> {
    // Rotation is judged by the database clock, like every other threshold.
    let (rows, now) = db::run(
        &ctx.db,
        move |conn| -> Result<_, powernode_store::StoreError> {
            Ok((
                certificates::for_peer(conn, peer_id, OUTBOUND)?,
                powernode_store::database_now(conn)?,
            ))
        },
    )
    .await
    .context("outbound certificate lookup failed")?;
    let row = rows.into_iter().find(|c| c.revoked_at.is_none());
    let cert = row.as_ref().and_then(|r| r.cert_pem.clone());
    let key = row
        .as_ref()
        .and_then(|r| r.key_sealed.as_ref())
        .and_then(|k| ctx.settings.master_key.open(CLIENT_KEY_CONTEXT, k).ok());
    let pair = match (row, cert, key) {
        (Some(row), Some(cert), Some(key)) => OutboundPair::Complete {
            row: Box::new(row),
            cert,
            key,
        },
        (_, cert, key) => OutboundPair::Partial {
            has_cert: cert.is_some(),
            has_key: key.is_some(),
        },
    };
    Ok((pair, now))
}

/// How long an idle keep-alive connection to a peer is kept: beyond one 60-s tick, so the next
/// tick's heartbeat reuses it.
pub const PEER_IDLE_SECS: u64 = 90;

/// How a peer is reached: its pinned CA, our identity for it, the configured bounds.
fn peer_tls<'a>(
    ctx: &Ctx,
    ca_pem: &'a str,
    identity: Option<(&'a str, &'a [u8])>,
) -> crate::peer_clients::PeerTls<'a> {
    crate::peer_clients::PeerTls {
        ca_pem,
        identity,
        connect_timeout: ctx.settings.peer_connect_timeout,
        timeout: ctx.settings.peer_timeout,
        idle: std::time::Duration::from_secs(PEER_IDLE_SECS),
    }
}

/// An mTLS client for a peer: its pinned CA only, our client identity; connecting (TCP and TLS)
/// bounded apart from the whole call; kept between ticks with one idle connection.
fn mtls_client(
    ctx: &Ctx,
    peer: &Peer,
    cert: &str,
    key: &secrecy::SecretBox<Vec<u8>>,
) -> Result<FederationClient, String> {
    let ca = peer.remote_ca_pem.as_deref().ok_or("no pinned CA")?;
    let built_from =
        token::sha256_hex(format!("{cert}\n{ca}\n{}", peer.remote_instance_url).as_bytes());
    let client = ctx.peer_clients.get_or_build(peer.id, &built_from, || {
        crate::peer_clients::PeerTransport::new(&peer_tls(
            ctx,
            ca,
            Some((cert, key.expose_secret())),
        ))
        .map(std::sync::Arc::new)
    })?;
    Ok(FederationClient::with_transport(
        client,
        &peer.remote_instance_url,
    ))
}

/// Our client certificate and key for a peer (and whether it is due for rotation), or an
/// error after logging SPEC §4's partial-config warning and refusal.
async fn client_for(ctx: &Ctx, peer: &Peer) -> Result<(FederationClient, bool), String> {
    let (pair, now) = outbound_pair(ctx, peer.id).await.map_err(|e| e.report())?;
    let (row, cert, key) = match pair {
        OutboundPair::Complete { row, cert, key } => (row, cert, key),
        OutboundPair::Partial { has_cert, has_key } => {
            tracing::warn!(
                peer_id = %peer.id,
                "[PeerClient] partial mTLS config — cert_pem={has_cert}, key_pem={has_key}; falling back to plaintext"
            );
            if ctx.settings.plaintext_fallback_allowed() {
                // "Plaintext": TLS to the pinned CA, without a client certificate.
                let ca = peer.remote_ca_pem.as_deref().ok_or("no pinned CA")?;
                let transport = crate::peer_clients::PeerTransport::new(&peer_tls(ctx, ca, None))?;
                return Ok((
                    FederationClient::with_transport(
                        std::sync::Arc::new(transport),
                        &peer.remote_instance_url,
                    ),
                    false,
                ));
            }
            tracing::warn!(
                "[PeerClient] plaintext fallback disabled; call to peer {} refused",
                peer.id
            );
            return Err(format!(
                "partial mTLS config (cert_pem={has_cert}, key_pem={has_key}); plaintext fallback disabled"
            ));
        }
    };
    let client = mtls_client(ctx, peer, &cert, &key)?;
    let due = row.not_before.zip(row.not_after).is_some_and(|(from, to)| {
        powernode_domain::certificate::due_for_rotation(
            from,
            to,
            now,
            ctx.settings.cert_rotation_percent,
        )
    });
    Ok((client, due))
}

/// The forced re-mint (SPEC §10 `peer cert renew`; the runbook's "re-mint and re-store"):
/// renews our outbound client certificate for a peer now, through the rotation's own path.
pub async fn renew_now(
    ctx: &Ctx,
    operator: &powernode_store::operators::Operator,
    id: powernode_domain::PeerId,
) -> Result<powernode_client::governance::RenewedCertificateView, ApiError> {
    crate::services::require(operator, powernode_domain::Permission::FederationManage)?;
    let peer_id = id.uuid();
    let peer = db::run(&ctx.db, move |conn| peers::find(conn, peer_id))
        .await
        .context("peer lookup failed")?
        .ok_or_else(|| ApiError::NotFound(format!("peer {peer_id} not found")))?;
    if !matches!(
        peer.status,
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded
    ) {
        return Err(ApiError::Conflict(format!(
            "peer {peer_id} is {}: our client certificate is renewed over mTLS only while the peer is enrolled, active or degraded",
            peer.status
        )));
    }
    let (pair, _) = outbound_pair(ctx, peer_id).await?;
    let (cert, key) = match pair {
        OutboundPair::Complete { cert, key, .. } => (cert, key),
        OutboundPair::Partial { has_cert, has_key } => {
            return Err(ApiError::Conflict(partial_message(
                peer_id, has_cert, has_key,
            )));
        }
    };
    let client = mtls_client(ctx, &peer, &cert, &key).map_err(|e| {
        ApiError::Conflict(format!(
            "outbound certificate for peer {peer_id} cannot be used ({e}): revoke and re-propose"
        ))
    })?;
    match renew(ctx, &client, &peer).await {
        Ok(Some(view)) => {
            tracing::info!(peer_id = %peer_id, operator_id = %operator.id, serial = %view.serial, "client certificate renewed on an operator's request");
            Ok(view)
        }
        Ok(None) => Err(ApiError::Conflict(format!(
            "a renewal or handshake with peer {peer_id} is in progress: retry in {} s",
            lease_secs(ctx)
        ))),
        Err(RenewError::Remote(e)) => Err(peer_error(&peer.remote_instance_url, e)),
        Err(RenewError::Local(e)) => Err(e),
    }
}

/// How long a handshake or renewal lease holds the peer row: three peer calls' timeouts, well
/// beyond one call, short enough that a crashed caller's lease lapses soon.
fn lease_secs(ctx: &Ctx) -> u32 {
    u32::try_from(ctx.settings.peer_timeout.as_secs().saturating_mul(3)).unwrap_or(u32::MAX)
}

/// A lease on a peer row (SPEC §4): taken in a short transaction, no row lock held while the
/// remote call runs (the remote side may be renewing towards us at the same moment).
struct Lease {
    peer_id: Uuid,
    token: Uuid,
}

impl Lease {
    /// `None` when another caller holds the peer (it is doing the same work).
    async fn take(ctx: &Ctx, peer_id: Uuid) -> Result<Option<Lease>, ApiError> {
        let secs = lease_secs(ctx);
        let token = db::run(&ctx.db, move |conn| peers::lease(conn, peer_id, secs))
            .await
            .context("peer lease failed")?;
        Ok(token.map(|token| Lease { peer_id, token }))
    }

    /// Ends the lease without writing anything.
    async fn release(self, ctx: &Ctx) {
        let Lease { peer_id, token } = self;
        if let Err(e) = db::run(&ctx.db, move |conn| {
            peers::release_lease(conn, peer_id, token)
        })
        .await
        {
            // It lapses on its own (`lease_secs`).
            e.report();
        }
    }

    /// Writes what the remote call produced and ends the lease, in one transaction.
    async fn finish<F>(self, ctx: &Ctx, write: F) -> Result<(), ApiError>
    where
        F: FnOnce(&mut PgConnection) -> Result<(), ApiError> + Send + 'static,
    {
        let Lease { peer_id, token } = self;
        db::transaction(&ctx.db, move |conn| {
            write(conn)?;
            peers::release_lease(conn, peer_id, token)?;
            Ok(())
        })
        .await
        .context("recording the peer call failed")
    }
}

/// Why a renewal produced no certificate: the peer's refusal (or no answer), or ours.
enum RenewError {
    Remote(powernode_client::Error),
    Local(ApiError),
}

/// Rotation at 75 % of the lifetime (and the operator's forced re-mint): a new key and CSR,
/// sent over the current mTLS channel; the new certificate and its sealed key are stored
/// together. The old one stays valid. `None` when another caller holds the peer's lease.
async fn renew(
    ctx: &Ctx,
    client: &FederationClient,
    peer: &Peer,
) -> Result<Option<powernode_client::governance::RenewedCertificateView>, RenewError> {
    let (key, csr) =
        ca::key_and_csr().map_err(|e| RenewError::Local(internal("key generation", e)))?;
    let Some(lease) = Lease::take(ctx, peer.id).await.map_err(RenewError::Local)? else {
        tracing::debug!(peer_id = %peer.id, "renewal already in progress elsewhere");
        return Ok(None);
    };
    let answer = match client
        .renew(&powernode_client::federation::RenewRequest { csr_pem: csr })
        .await
    {
        Ok(a) => a,
        Err(e) => {
            lease.release(ctx).await;
            return Err(RenewError::Remote(e));
        }
    };
    let stored = read_renewed(ctx, &key, answer.client_cert_pem);
    let (cert, pem, fingerprint, serial, sealed) = match stored {
        Ok(parts) => parts,
        Err(e) => {
            lease.release(ctx).await;
            return Err(RenewError::Local(ApiError::PeerUnreachable(format!(
                "peer at {} issued an unusable certificate: {e}",
                peer.remote_instance_url
            ))));
        }
    };
    let id = peer.id;
    let (not_before, not_after) = ca::validity(&cert);
    let view = powernode_client::governance::RenewedCertificateView {
        peer_id: id,
        serial: serial.clone(),
        fingerprint_sha256: fingerprint.clone(),
        not_before,
        not_after,
    };
    lease
        .finish(ctx, move |conn| {
            certificates::insert(
                conn,
                &NewCertificate {
                    peer_id: id,
                    direction: OUTBOUND,
                    serial: &serial,
                    subject: &format!("{:?}", cert.subject_name()),
                    fingerprint_sha256: &fingerprint,
                    cert_pem: &pem,
                    key_sealed: Some(&sealed),
                    not_before,
                    not_after,
                },
            )
            .map(|_| ())
            .map_err(ApiError::from)
        })
        .await
        .map_err(RenewError::Local)?;
    tracing::info!(peer_id = %id, "[PeerClient] client certificate renewed");
    Ok(Some(view))
}

/// The renewed certificate's parts, its key sealed.
type Renewed = (X509, String, String, String, Sealed);

fn read_renewed(
    ctx: &Ctx,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    pem: String,
) -> Result<Renewed, String> {
    let cert = X509::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let fingerprint = ca::fingerprint(&cert).map_err(|e| e.to_string())?;
    let serial = ca::serial_hex(&cert).map_err(|e| e.to_string())?;
    let sealed = Sealed(
        ctx.settings
            .master_key
            .seal(
                CLIENT_KEY_CONTEXT,
                &key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?,
    );
    Ok((cert, pem, fingerprint, serial, sealed))
}

/// What a failed peer call records (`last_outbound_error`, the run's failures): one line, the
/// remote's `<status> <CODE>: <error>` when it answered, else the transport error.
fn refusal_text(e: &powernode_client::Error) -> String {
    match e {
        powernode_client::Error::Api { status, body } => {
            crate::error::one_line(&format!("{status} {}: {}", body.code, body.error))
        }
        other => crate::error::one_line(other),
    }
}

/// How the peer sees us, when it refused us by the mTLS chain (`details.peer_status`).
fn peer_status_of(e: &powernode_client::Error) -> Option<PeerStatus> {
    e.body()?.details.get("peer_status")?.as_str()?.parse().ok()
}

/// One PeerClient pass: pending handshakes (our accepted_here rows in accepted), then
/// heartbeats to every enrolled/active/degraded peer — except peers still backing off after
/// repeated failures — at a concurrency that grows with the peer count, each call bounded by
/// the connect and peer timeouts. Dead peers therefore cannot stretch a tick past a few
/// connect timeouts.
pub async fn run_peer_heartbeats(
    ctx: &Ctx,
    _worker: &crate::services::Worker,
) -> Result<PeerRun, ApiError> {
    use futures::StreamExt;
    let (targets, backing_off, ran_at) =
        db::run(&ctx.db, |conn| -> Result<_, powernode_store::StoreError> {
            let skipped: std::collections::HashSet<Uuid> =
                peers::backing_off(conn)?.into_iter().collect();
            let mut targets = Vec::new();
            let mut backing_off = 0;
            for status in CONTACTED_STATUSES {
                for p in peers::list(conn, Some(status))? {
                    let Some(call) = outbound_call(p.status, p.origin, p.peer_kind) else {
                        continue;
                    };
                    if skipped.contains(&p.id) {
                        backing_off += 1;
                    } else {
                        targets.push((p, call));
                    }
                }
            }
            Ok((targets, backing_off, powernode_store::database_now(conn)?))
        })
        .await
        .context("peer heartbeat targets")?;
    let concurrency =
        powernode_domain::liveness::fan_out(targets.len(), ctx.settings.peer_concurrency_max);
    let results: Vec<(Uuid, Result<(), Failure>)> = futures::stream::iter(targets)
        .map(|(peer, call)| async move {
            let id = peer.id;
            let result = contact(ctx, peer, call).await;
            let (error, retry_after) = match &result {
                Ok(()) => (None, None),
                Err(f) => {
                    // A failing peer keeps no kept-connection slot from the live ones.
                    ctx.peer_clients.forget(id);
                    (Some(f.text.clone()), f.retry_after)
                }
            };
            // Recording what we saw must not stop the run; a failure is logged.
            if let Err(e) = db::run(&ctx.db, move |conn| {
                peers::record_outbound(conn, id, error.as_deref(), retry_after)
            })
            .await
            .context("recording the outbound call failed")
            {
                e.report();
            }
            (id, result)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut sent = 0;
    let mut failed = Vec::new();
    for (id, r) in results {
        match r {
            Ok(()) => sent += 1,
            Err(f) => {
                tracing::warn!(peer_id = %id, "[PeerClient] call failed: {}", f.text);
                failed.push(PeerCallFailure {
                    peer_id: id,
                    error: f.text,
                });
            }
        }
    }
    Ok(PeerRun {
        sent,
        failed,
        backing_off,
        ran_at,
    })
}

/// A failed peer call: one line for `last_outbound_error`, and how long the peer asked us to
/// wait (its 429 or 503 `busy` `Retry-After`), which the backoff honours.
struct Failure {
    text: String,
    retry_after: Option<u32>,
}

impl From<String> for Failure {
    fn from(text: String) -> Self {
        Failure {
            text,
            retry_after: None,
        }
    }
}

impl From<&powernode_client::Error> for Failure {
    fn from(e: &powernode_client::Error) -> Self {
        let retry_after = e
            .body()
            .and_then(|b| b.details.get("retry_after_seconds"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|s| u32::try_from(s).ok());
        Failure {
            text: refusal_text(e),
            retry_after,
        }
    }
}

async fn contact(ctx: &Ctx, peer: Peer, call: OutboundCall) -> Result<(), Failure> {
    let (client, due) = client_for(ctx, &peer).await?;
    if call == OutboundCall::Handshake {
        return handshake(ctx, &client, &peer).await;
    }
    if due {
        renew(ctx, &client, &peer).await.map_err(|e| match e {
            RenewError::Remote(e) => Failure::from(&e),
            RenewError::Local(e) => Failure::from(e.report()),
        })?;
    }
    heartbeat(ctx, &client, &peer).await
}

async fn heartbeat(ctx: &Ctx, client: &FederationClient, peer: &Peer) -> Result<(), Failure> {
    let result = client.heartbeat(&HeartbeatRequest::default()).await;
    // The other side was resumed (back to accepted): the side that accepted repeats the
    // handshake, no status change here. The proposer never handshakes: its heartbeat simply
    // arrived before the accepting side recorded its own handshake.
    if let Err(e) = &result
        && peer_status_of(e) == Some(PeerStatus::Accepted)
        && peer.origin == PeerOrigin::AcceptedHere
    {
        return handshake(ctx, client, peer).await;
    }
    result.map(|_| ()).map_err(|e| Failure::from(&e))
}

/// Why a contact job was enqueued: B's accept committed (handshake, then B's first heartbeat).
pub const CONTACT_AFTER_ACCEPT: &str = "accept";
/// A accepted B's handshake (A's first heartbeat to B).
pub const CONTACT_AFTER_HANDSHAKE: &str = "handshake";

/// Fast establishment (SPEC §4), the worker's `FederationPeerContactJob`: what the next tick
/// would do for this one peer, now — the handshake when it is ours to do, then a heartbeat.
/// A peer call that fails is 502 `PEER_UNREACHABLE` (the job retries); a peer with nothing to
/// do (suspended, revoked, an sdwan_only peer, already handshaken elsewhere) is a 200 saying so.
pub async fn contact_now(
    ctx: &Ctx,
    _worker: &crate::services::Worker,
    peer_id: Uuid,
    reason: &str,
) -> Result<powernode_client::worker::ContactOutcome, ApiError> {
    if ![CONTACT_AFTER_ACCEPT, CONTACT_AFTER_HANDSHAKE].contains(&reason) {
        return Err(ApiError::validation(
            "reason",
            format!("must be {CONTACT_AFTER_ACCEPT} or {CONTACT_AFTER_HANDSHAKE}"),
        ));
    }
    let load = move || async move {
        db::run(&ctx.db, move |conn| peers::find(conn, peer_id))
            .await
            .context("peer lookup failed")?
            .ok_or_else(|| ApiError::NotFound(format!("peer {peer_id} not found")))
    };
    let peer = load().await?;
    let Some(call) = outbound_call(peer.status, peer.origin, peer.peer_kind) else {
        return Ok(powernode_client::worker::ContactOutcome {
            peer_id,
            outcome: format!("nothing to do ({})", peer.status),
            status: peer.status.to_string(),
        });
    };
    let result = async {
        let (client, _) = client_for(ctx, &peer).await?;
        let mut done = Vec::new();
        if call == OutboundCall::Handshake {
            handshake(ctx, &client, &peer).await?;
            done.push("handshake completed");
        }
        heartbeat(ctx, &client, &peer).await?;
        done.push("heartbeat sent");
        Ok::<_, Failure>(done.join(", "))
    }
    .await;
    let (error, retry_after) = match &result {
        Ok(_) => (None, None),
        Err(f) => (Some(f.text.clone()), f.retry_after),
    };
    db::run(&ctx.db, move |conn| {
        peers::record_outbound(conn, peer_id, error.as_deref(), retry_after)
    })
    .await
    .context("recording the outbound call failed")?;
    let outcome = result.map_err(|f| {
        ApiError::PeerUnreachable(format!("contact with peer {peer_id} failed: {}", f.text))
    })?;
    let peer = load().await?;
    Ok(powernode_client::worker::ContactOutcome {
        peer_id,
        status: peer.status.to_string(),
        outcome,
    })
}

async fn handshake(ctx: &Ctx, client: &FederationClient, peer: &Peer) -> Result<(), Failure> {
    let id = peer.id;
    // The certificate the peer was last seen using (or the one issued at accept), never a
    // renewal whose answer it may not have received (SPEC §4).
    let issued = db::run(&ctx.db, move |conn| certificates::for_rehandshake(conn, id))
        .await
        .map_err(|e| e.report())?
        .and_then(|c| c.cert_pem)
        .ok_or_else(|| "no certificate issued to this peer".to_owned())?;
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable").report())?;
    let body = HandshakeRequest {
        client_cert_pem: issued,
        ca_chain_pem: identity.ca_cert_pem,
        capabilities: Some(json!([])),
        extension_slugs: Some(json!([])),
        endpoints: Some(json!([])),
    };
    let Some(lease) = Lease::take(ctx, id).await.map_err(|e| e.report())? else {
        tracing::debug!(peer_id = %id, "handshake already in progress elsewhere");
        return Ok(());
    };
    crate::failpoint::point("handshake-after-lease");
    if let Err(e) = client.handshake(&body).await {
        lease.release(ctx).await;
        return Err(Failure::from(&e));
    }
    crate::failpoint::point("handshake-before-record");
    lease
        .finish(ctx, move |conn| {
            let peer = peers::lock_for_update(conn, id)?;
            let moved = peers::handshake_locked(conn, &peer)?;
            if moved.from != moved.status {
                observability::transition(moved.from, moved.status, 1);
                tracing::info!(peer_id = %id, "handshake completed; peer enrolled");
            }
            Ok(())
        })
        .await
        .map_err(|e| Failure::from(e.report()))?;
    // Recorded; the first heartbeat not sent yet (the job's next step, or the next tick's).
    crate::failpoint::point("handshake-after-record");
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use serde_json::json;

    use super::*;

    fn answer(peer_kind: &str) -> AcceptAnswer {
        serde_json::from_value(json!({
            "peer_id": Uuid::nil(), "status": "accepted",
            "client_cert_pem": "x", "ca_chain_pem": "z", "csr_pem": "y",
            "instance": {"instance_id": Uuid::nil(), "url": "https://a.example"},
            "peer_kind": peer_kind, "spawn_role": "child", "spawn_mode": null,
        }))
        .unwrap()
    }

    #[actix_web::test]
    async fn an_unknown_enum_value_in_the_accept_answer_is_a_502_with_its_reason() {
        let Err(e) = read_accept_answer("https://a.example", answer("quantum")) else {
            panic!("an unknown peer_kind must be refused");
        };
        let response = e.error_response();
        assert_eq!(response.status(), 502);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "PEER_UNREACHABLE");
        assert_eq!(
            body["details"],
            json!({"reason": "unknown peer_kind quantum"})
        );
        assert_eq!(
            body["error"],
            "peer at https://a.example answered with unknown peer_kind quantum"
        );
        let mut odd_role = answer("platform");
        odd_role.spawn_role = Some("grandparent".to_owned());
        assert!(matches!(
            read_accept_answer("https://a.example", odd_role),
            Err(ApiError::PeerAnswerInvalid { reason, .. }) if reason == "unknown spawn_role grandparent"
        ));
        let ok = read_accept_answer("https://a.example", answer("sdwan_only")).unwrap();
        assert_eq!(ok.peer_kind, PeerKind::SdwanOnly);
        assert_eq!(ok.spawn_role, Some(SpawnRole::Parent));
    }
}
