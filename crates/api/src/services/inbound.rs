//! The inbound side of the federation protocol (SPEC §3–§6), as the federation listener's
//! handlers call it: A's side of accept, the handshake, heartbeats, certificate renewal and
//! resource calls under a grant. Each function owns its transaction; the caller's identity
//! (its client certificate, authenticated by `federation::auth`) comes in as an argument.

use openssl::x509::X509;
use powernode_client::federation::{
    AcceptAnswer, AcceptRequest, HandshakeAnswer, HandshakeRequest, HeartbeatAnswer,
    HeartbeatRequest, Instance, RenewAnswer, RenewRequest, ResourceView,
};
use powernode_domain::PeerStatus;
use powernode_domain::peer::CONTRACT_VERSION;
use powernode_store::certificates::{self, INBOUND, NewCertificate, OUTBOUND};
use powernode_store::peers::{self, Peer, RemoteFacts, Sealed};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ca::{self, CLIENT_KEY_CONTEXT, OpenCa};
use crate::db::{self, Context as _};
use crate::error::{ApiError, internal};
use crate::federation::PeerCert;
use crate::federation::batch::{HeartbeatBatcher, LookupBatcher};
use crate::observability;
use crate::services::Ctx;

/// Our CA certificate, DER: a caller checks that its SHA-256 equals the token's `ca_sha256`.
pub async fn ca_certificate(ctx: &Ctx) -> Result<Vec<u8>, ApiError> {
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    X509::from_pem(identity.ca_cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| internal("CA certificate unreadable", e))
}

/// Validates a peer's CA: exactly one self-signed certificate whose basicConstraints say CA,
/// currently valid.
pub fn validate_ca_pem(pem: &str) -> Result<(X509, String), String> {
    let certs = X509::stack_from_pem(pem.as_bytes()).map_err(|_| "not PEM".to_owned())?;
    if certs.is_empty() {
        return Err("not PEM".to_owned());
    }
    let [cert] = certs.as_slice() else {
        return Err(format!(
            "expected exactly one certificate, got {}",
            certs.len()
        ));
    };
    if !is_ca(cert) {
        return Err("not a CA certificate (basicConstraints CA:TRUE missing)".to_owned());
    }
    let public = cert
        .public_key()
        .map_err(|_| "unreadable public key".to_owned())?;
    if !cert.verify(&public).unwrap_or(false) || cert.issuer_name_hash() != cert.subject_name_hash()
    {
        return Err("not self-signed".to_owned());
    }
    let now = openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| e.to_string())?;
    if cert.not_before() > now || cert.not_after() < now {
        return Err("not currently valid".to_owned());
    }
    let sha = ca::fingerprint(cert).map_err(|e| e.to_string())?;
    Ok((cert.clone(), sha))
}

/// Whether the certificate's basicConstraints extension marks it as a CA (read as the
/// extension, not from a text dump, which a subject could imitate).
fn is_ca(cert: &X509) -> bool {
    let Ok(der) = cert.to_der() else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    matches!(parsed.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// A's side of accept (SPEC §3): every check in order before anything is written, then in one
/// transaction: accepted, digest cleared, B's certificate issued, B's CA pinned, A's pending
/// key sealed on the row, events.
pub async fn accept(ctx: &Ctx, source: &str, req: AcceptRequest) -> Result<AcceptAnswer, ApiError> {
    // SPEC §3: failed attempts per (source address, peer_id), counted in PostgreSQL so every
    // replica sees them; at the limit the pair gets 429 until the window passes.
    let policy = ctx.settings.accept_failures;
    let (pair_source, peer_id) = (source.to_owned(), req.peer_id);
    let locked = db::run(&ctx.db, move |conn| {
        powernode_store::accept_failures::locked_for(conn, &pair_source, peer_id, policy)
    })
    .await
    .context("accept failure lookup")?;
    if let Some(retry_after) = locked {
        tracing::warn!(peer_id = %peer_id, source, "accept refused: too many failed attempts for this pair");
        return Err(ApiError::RateLimited(retry_after));
    }
    let result = attempt_accept(ctx, req).await;
    if let Err(e) = &result
        && counts_as_failed_attempt(e)
    {
        let source = source.to_owned();
        if let Err(e) = db::run(&ctx.db, move |conn| {
            powernode_store::accept_failures::record(conn, &source, peer_id, policy)
        })
        .await
        .context("recording a failed accept")
        {
            // The refusal stands; only its counting failed.
            e.report();
        }
    }
    result
}

/// A refusal of the caller's request (4xx), as opposed to our own trouble (5xx, 503).
fn counts_as_failed_attempt(e: &ApiError) -> bool {
    use actix_web::ResponseError;
    let status = e.status_code();
    status.is_client_error() && status != actix_web::http::StatusCode::TOO_MANY_REQUESTS
}

async fn attempt_accept(ctx: &Ctx, req: AcceptRequest) -> Result<AcceptAnswer, ApiError> {
    if req.contract_version != CONTRACT_VERSION {
        return Err(ApiError::validation(
            "contract_version",
            format!("{} is unsupported; supported: [1]", req.contract_version),
        )
        .with_message(format!(
            "Unsupported contract_version {}; supported: [1]",
            req.contract_version
        )));
    }
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    let open = OpenCa::open(&identity, &ctx.settings.master_key)
        .map_err(|e| internal("CA unavailable", e))?;
    let (our_key, our_csr) = ca::key_and_csr().map_err(|e| internal("key generation", e))?;
    let sealed_key = ctx
        .settings
        .master_key
        .seal(
            CLIENT_KEY_CONTEXT,
            &our_key
                .private_key_to_pem_pkcs8()
                .map_err(|e| internal("key encoding", e))?,
        )
        .map_err(|e| internal("sealing", e))?;
    let drill_allowed = ctx.settings.drill_allowed();
    let peer_id = req.peer_id;
    let request = req;
    let csr_for_b = our_csr.clone();
    let ca_chain_pem = identity.ca_cert_pem.clone();
    let cert_days = ctx.settings.client_cert_days;
    // The chaos harness kills a replica at each of these points (see `scripts/dev chaos`).
    crate::failpoint::point("accept-received");
    let result = db::transaction(&ctx.db, move |conn| {
        let (peer, now, verified) = peers::lock_verified(
            conn,
            peer_id,
            request.acceptance_token.as_deref(),
            drill_allowed,
        )?;
        let url = powernode_domain::InstanceUrl::parse(&request.instance.url)
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        if url != peer.remote_instance_url {
            return Err(
                ApiError::validation("instance", "url does not match proposed peer")
                    .with_message("instance url does not match proposed peer".to_owned()),
            );
        }
        let remote = request.instance.instance_id;
        if peers::instance_bound_elsewhere(conn, remote, peer.id)
            .map_err(|e| internal("lookup", e))?
        {
            return Err(ApiError::Conflict(format!(
                "instance {remote} is already federated"
            )));
        }
        let issued = open
            .sign_client_csr(&request.csr_pem, peer.id, remote, now, cert_days)
            .map_err(|e| {
                ApiError::validation("csr_pem", e.to_string()).with_message(e.to_string())
            })?;
        let (_, ca_sha) = validate_ca_pem(&request.ca_pem).map_err(|reason| {
            ApiError::validation("ca_pem", format!("invalid CA certificate: {reason}"))
                .with_message(format!("invalid CA certificate: {reason}"))
        })?;
        peers::set_remote_facts(
            conn,
            peer.id,
            &RemoteFacts {
                remote_instance_id: Some(remote),
                remote_ca_pem: Some(&request.ca_pem),
                remote_ca_sha256: Some(&ca_sha),
                contract_version_agreed: Some(CONTRACT_VERSION),
                capabilities: request.capabilities.clone(),
                extension_slugs: request.extension_slugs.clone(),
                endpoints: request.endpoints.clone(),
                pending_outbound_key: Some(Some(&sealed_key)),
            },
        )
        .map_err(|e| {
            // A concurrent accept bound the same instance first: the unique index decides.
            if powernode_store::is_unique_violation(&e) {
                ApiError::Conflict(format!("instance {remote} is already federated"))
            } else {
                internal("peer update", e)
            }
        })?;
        ca::record_issued(conn, peer.id, &issued).map_err(|e| internal("certificate insert", e))?;
        super::federation::certificate_event(conn, peer.id, &issued, "issued")
            .map_err(|e| internal("event", e))?;
        let payload = json!({
            "drill": verified == powernode_domain::token::Verified::Drill,
            "certificate_serial": issued.serial_hex,
            "remote_instance_id": remote,
            "client_cert_pem": issued.pem,
        });
        let moved = peers::apply(
            conn,
            &peer,
            powernode_domain::PeerEvent::Accept,
            None,
            None,
            payload,
        )?;
        // The chaos harness kills a replica here: nothing of the accept may survive it.
        crate::failpoint::point("accept-before-commit");
        Ok(moved)
    })
    .await;
    let outcome = match &result {
        Ok(_) => Some("accepted"),
        Err(ApiError::Token(r)) => Some(match r {
            powernode_domain::token::TokenRejection::NotRecognized => "not_recognized",
            powernode_domain::token::TokenRejection::Mismatch => "mismatch",
            powernode_domain::token::TokenRejection::Required => "required",
            powernode_domain::token::TokenRejection::Expired(_) => "expired",
        }),
        Err(ApiError::Internal { .. }) => None,
        Err(_) => Some("refused"),
    };
    if let Some(outcome) = outcome {
        observability::token_check(outcome);
    }
    let moved = result?;
    crate::failpoint::point("accept-after-commit");
    observability::transition(moved.from, moved.status, 1);
    let client_cert_pem = db::run(&ctx.db, move |conn| {
        certificates::for_peer(conn, peer_id, INBOUND)
    })
    .await
    .context("certificate read")?
    .into_iter()
    .next()
    .and_then(|c| c.cert_pem)
    .unwrap_or_default();
    tracing::info!(peer_id = %peer_id, "peer accepted over the federation API");
    Ok(AcceptAnswer {
        peer_id,
        status: moved.status.to_string(),
        client_cert_pem,
        ca_chain_pem,
        csr_pem: csr_for_b,
        instance: Instance {
            instance_id: identity.instance_id,
            url: ctx.settings.federation_public_url.as_str().to_owned(),
        },
        peer_kind: Some(moved.peer_kind.as_str().to_owned()),
        spawn_role: moved.spawn_role.map(|r| r.as_str().to_owned()),
        spawn_mode: moved.spawn_mode.map(|m| m.as_str().to_owned()),
    })
}

/// The handshake (SPEC §4): the certificate the caller issued to us must chain to its pinned
/// CA and carry our pending key; stored with that key as our outbound certificate; accepted →
/// enrolled. A repeat once enrolled answers the same and changes nothing.
pub async fn handshake(
    ctx: &Ctx,
    peer: &Peer,
    req: HandshakeRequest,
) -> Result<HandshakeAnswer, ApiError> {
    let peer_id = peer.id;
    let master = ctx.settings.master_key.clone();
    let moved = db::transaction(&ctx.db, move |conn| {
        let peer = peers::lock_for_update(conn, peer_id)?;
        let reject = |field: &str, reason: &str| {
            ApiError::validation(field, format!("handshake certificate rejected: {reason}"))
                .with_message(format!("handshake certificate rejected: {reason}"))
        };
        let ca_chain = X509::from_pem(req.ca_chain_pem.as_bytes())
            .map_err(|_| reject("ca_chain_pem", "ca_chain_pem is not PEM"))?;
        let ca_chain_sha =
            ca::fingerprint(&ca_chain).map_err(|_| reject("ca_chain_pem", "digest"))?;
        if peer.remote_ca_sha256.as_deref() != Some(ca_chain_sha.as_str()) {
            return Err(reject(
                "ca_chain_pem",
                "ca_chain_pem is not the CA pinned for this peer",
            ));
        }
        let reject = |reason: &str| reject("client_cert_pem", reason);
        let cert = X509::from_pem(req.client_cert_pem.as_bytes()).map_err(|_| reject("not PEM"))?;
        let ca = peer
            .remote_ca_pem
            .as_deref()
            .and_then(|p| X509::from_pem(p.as_bytes()).ok())
            .ok_or_else(|| reject("no pinned CA for this peer"))?;
        let ca_key = ca
            .public_key()
            .map_err(|_| reject("pinned CA unreadable"))?;
        if !cert.verify(&ca_key).unwrap_or(false) {
            return Err(reject("does not chain to the pinned CA"));
        }
        let fingerprint = ca::fingerprint(&cert).map_err(|_| reject("digest"))?;
        // A repeat (after a resume, or once enrolled) must present a certificate it delivered
        // before: it is already our outbound certificate, so only the status moves (or
        // nothing, once enrolled).
        let known =
            certificates::by_fingerprint(conn, &fingerprint).map_err(|e| internal("lookup", e))?;
        if known.is_some_and(|c| {
            c.peer_id == peer_id && c.direction == OUTBOUND && c.revoked_at.is_none()
        }) {
            return Ok(peers::handshake_locked(conn, &peer)?);
        }
        if peer.status != PeerStatus::Accepted {
            return Err(reject("not a certificate of this federation"));
        }
        let sealed = peer
            .pending_outbound_key
            .clone()
            .ok_or_else(|| reject("no pending key"))?;
        let key_pem = master
            .open(CLIENT_KEY_CONTEXT, &sealed.0)
            .map_err(|_| reject("pending key unreadable"))?;
        let key = openssl::pkey::PKey::private_key_from_pem(secrecy::ExposeSecret::expose_secret(
            &key_pem,
        ))
        .map_err(|_| reject("pending key unreadable"))?;
        let cert_key = cert
            .public_key()
            .map_err(|_| reject("unreadable public key"))?;
        if !key.public_eq(&cert_key) {
            return Err(reject("does not carry our pending key"));
        }
        let (not_before, not_after) = ca::validity(&cert);
        let serial = ca::serial_hex(&cert).map_err(|_| reject("serial"))?;
        certificates::insert(
            conn,
            &NewCertificate {
                peer_id,
                direction: OUTBOUND,
                serial: &serial,
                subject: &format!("{:?}", cert.subject_name()),
                fingerprint_sha256: &fingerprint,
                cert_pem: &req.client_cert_pem,
                key_sealed: Some(&Sealed(sealed.0.clone())),
                not_before,
                not_after,
            },
        )
        .map_err(|e| internal("certificate insert", e))?;
        peers::set_remote_facts(
            conn,
            peer_id,
            &RemoteFacts {
                remote_instance_id: None,
                remote_ca_pem: None,
                remote_ca_sha256: None,
                contract_version_agreed: None,
                capabilities: req.capabilities.clone(),
                extension_slugs: req.extension_slugs.clone(),
                endpoints: req.endpoints.clone(),
                pending_outbound_key: Some(None),
            },
        )
        .map_err(|e| internal("peer update", e))?;
        let peer = peers::lock_for_update(conn, peer_id)?;
        let moved = peers::handshake_locked(conn, &peer)?;
        // The chaos harness kills a replica here: the certificate must not outlive the crash.
        crate::failpoint::point("handshake-before-commit");
        Ok(moved)
    })
    .await
    .context("handshake failed")?;
    crate::failpoint::point("handshake-after-commit");
    if moved.from != moved.status {
        observability::transition(moved.from, moved.status, 1);
        tracing::info!(peer_id = %peer_id, "handshake completed; peer enrolled");
        // Fast establishment (SPEC §4): our first heartbeat to the peer, without waiting.
        ctx.queue.contact(
            peer_id,
            crate::services::federation::CONTACT_AFTER_HANDSHAKE,
        );
    }
    Ok(HandshakeAnswer {
        peer_id,
        status: moved.status.to_string(),
        last_handshake_at: moved.last_handshake_at,
    })
}

/// An authenticated heartbeat: last_heartbeat_at, enrolled/degraded → active. `cert` has passed
/// the listener's admission (presented, within its rate limit).
pub async fn heartbeat(
    ctx: &Ctx,
    heartbeats: &HeartbeatBatcher,
    cert: PeerCert,
    req: HeartbeatRequest,
) -> Result<HeartbeatAnswer, ApiError> {
    // The common case — an active peer reporting nothing new — is batched with the other
    // heartbeats in flight into one statement; anything else (a transition, new facts, a
    // refusal) takes the full chain below.
    let carries_facts = req.capabilities.is_some()
        || req.endpoints.is_some()
        || req.extension_slugs.is_some()
        || req.sync_cursor.is_some();
    if !carries_facts {
        let beat = heartbeats
            .call(cert.fingerprint_sha256.clone())
            .await
            .context("heartbeat failed")?;
        if let Some(at) = beat {
            metrics::counter!("powernode_heartbeats_received_total").increment(1);
            return Ok(HeartbeatAnswer {
                status: PeerStatus::Active.to_string(),
                last_heartbeat_at: Some(at),
            });
        }
    }
    let auth = crate::federation::auth::lookup(ctx, cert, false).await?;
    let peer_id = auth.peer.id;
    let moved = db::transaction(&ctx.db, move |conn| {
        for (field, value) in [
            ("capabilities", &req.capabilities),
            ("extension_slugs", &req.extension_slugs),
            ("endpoints", &req.endpoints),
            ("sync_cursor", &req.sync_cursor),
        ] {
            if let Some(value) = value {
                super::check_storable(conn, field, value)?;
            }
        }
        Ok(peers::record_heartbeat(
            conn,
            peer_id,
            &RemoteFacts {
                remote_instance_id: None,
                remote_ca_pem: None,
                remote_ca_sha256: None,
                contract_version_agreed: None,
                capabilities: req.capabilities,
                extension_slugs: req.extension_slugs,
                endpoints: req.endpoints,
                pending_outbound_key: None,
            },
            req.sync_cursor,
        )?)
    })
    .await
    .context("heartbeat failed")?;
    metrics::counter!("powernode_heartbeats_received_total").increment(1);
    if moved.from != moved.status {
        observability::transition(moved.from, moved.status, 1);
    }
    Ok(HeartbeatAnswer {
        status: moved.status.to_string(),
        last_heartbeat_at: moved.last_heartbeat_at,
    })
}

/// Certificate rotation over the existing mTLS channel (SPEC §4): a new client certificate
/// for the caller from a new CSR, under the same rules; the old one keeps working until it
/// expires or is revoked.
pub async fn renew(ctx: &Ctx, peer: &Peer, req: RenewRequest) -> Result<RenewAnswer, ApiError> {
    let remote = peer
        .remote_instance_id
        .ok_or_else(|| internal("renew", "peer without remote_instance_id"))?;
    let identity = ca::ensure_identity(&ctx.db, &ctx.settings.master_key)
        .await
        .map_err(|e| e.into_api("instance identity unavailable"))?;
    let open = OpenCa::open(&identity, &ctx.settings.master_key)
        .map_err(|e| internal("CA unavailable", e))?;
    let csr = req.csr_pem;
    let peer_id = peer.id;
    let cert_days = ctx.settings.client_cert_days;
    let issued = db::transaction(&ctx.db, move |conn| {
        let now = powernode_store::database_now(conn).map_err(|e| internal("clock", e))?;
        let issued = open
            .sign_client_csr(&csr, peer_id, remote, now, cert_days)
            .map_err(|e| {
                ApiError::validation("csr_pem", e.to_string()).with_message(e.to_string())
            })?;
        ca::record_issued(conn, peer_id, &issued).map_err(|e| internal("certificate insert", e))?;
        super::federation::certificate_event(conn, peer_id, &issued, "renewed")
            .map_err(|e| internal("event", e))?;
        Ok(issued)
    })
    .await
    .context("renew failed")?;
    tracing::info!(peer_id = %peer_id, serial = %issued.serial_hex, "client certificate renewed");
    Ok(RenewAnswer {
        client_cert_pem: issued.pem,
        ca_chain_pem: identity.ca_cert_pem,
        not_after: Some(issued.not_after),
    })
}

/// What the listener extracted from a resource call: the admitted client certificate, the
/// bearer token, the `X-SDWAN-Network` header and the addresses it came from.
pub struct ResourceCaller {
    pub cert: PeerCert,
    pub bearer: Option<String>,
    pub network: Option<String>,
    /// The TCP peer.
    pub tcp_peer: Option<std::net::IpAddr>,
    /// `X-Forwarded-For`'s readable entries nearest to us (left to right as sent); believed
    /// only as far as trusted proxies vouch for them.
    pub forwarded_for: Vec<std::net::IpAddr>,
}

/// What a resource call needs, read in one statement (`federation_resource_lookup_batch`, with
/// the other calls in flight): the certificate with its peer's status, the presented grant (if
/// its token is well formed), the database clock, and the resource. The checks run here, in
/// SPEC §4 then §6 order.
struct ResourceCall {
    peer_id: Uuid,
    grant: Option<powernode_store::grants::GrantRow>,
    now: time::OffsetDateTime,
    resource: Option<powernode_store::grants::LookupResource>,
}

async fn resource_call(
    ctx: &Ctx,
    lookups: &LookupBatcher,
    caller: &ResourceCaller,
    kind: &str,
    id: &str,
    fetch_resource: bool,
) -> Result<ResourceCall, ApiError> {
    // A token that is not `fg-<uuid>` cannot be ours: no lookup.
    let digest = caller
        .bearer
        .as_deref()
        .filter(|t| {
            t.strip_prefix("fg-")
                .and_then(|u| Uuid::parse_str(u).ok())
                .is_some()
        })
        .map(|t| powernode_domain::token::sha256_hex(t.as_bytes()));
    let found = lookups
        .call(powernode_store::grants::LookupRequest {
            fingerprint: caller.cert.fingerprint_sha256.clone(),
            grant_digest: digest,
            kind: kind.to_owned(),
            resource_id: fetch_resource.then(|| id.to_owned()),
        })
        .await
        .context("resource lookup failed")?;
    let facts = match &found.certificate {
        None => None,
        Some(c) => Some(crate::federation::auth::ChainFacts {
            revoked: c.revoked,
            inbound: c.direction == INBOUND,
            peer_status: c
                .peer_status
                .as_deref()
                .map(|s| {
                    s.parse::<PeerStatus>()
                        .map_err(|_| internal("resource lookup", format!("unknown status {s}")))
                })
                .transpose()?,
        }),
    };
    crate::federation::auth::check_chain(facts, false)?;
    let certificate = found
        .certificate
        .ok_or_else(|| internal("resource lookup", "chain passed without a certificate"))?;
    let resolution = time::Duration::seconds(certificates::LAST_USED_RESOLUTION_SECS.into());
    if certificate
        .last_used_at
        .is_none_or(|at| at < found.now - resolution)
    {
        // It authenticated this call: a re-handshake picks the certificate in use (SPEC §4).
        let fingerprint = caller.cert.fingerprint_sha256.clone();
        db::run(&ctx.db, move |conn| {
            certificates::mark_used(conn, &fingerprint)
        })
        .await
        .context("certificate use")?;
    }
    let peer_id = certificate.peer_id;
    Ok(ResourceCall {
        peer_id,
        grant: found.grant,
        now: found.now,
        resource: found.resource,
    })
}

/// The caller's address (`powernode_domain::grant::client_address`).
fn source_ip(ctx: &Ctx, caller: &ResourceCaller) -> Option<std::net::IpAddr> {
    let tcp = caller.tcp_peer?;
    Some(powernode_domain::grant::client_address(
        tcp,
        &caller.forwarded_for,
        &ctx.settings.trusted_proxies,
    ))
}

/// Authorises a resource call in SPEC §6 order (after the mTLS chain): bearer, grant resolves,
/// grant bound to this peer, declared kind (422), then the scope dimensions (403).
fn authorize(
    ctx: &Ctx,
    caller: &ResourceCaller,
    call: &ResourceCall,
    kind: &str,
    id: &str,
    scope: powernode_domain::grant::Scope,
) -> Result<(), ApiError> {
    use powernode_domain::grant;
    let peer_id = call.peer_id;
    if caller.bearer.is_none() {
        return Err(ApiError::Unauthorized("Bearer grant token required"));
    }
    let row = call
        .grant
        .as_ref()
        .ok_or(ApiError::Unauthorized("Grant token does not resolve"))?;
    if row.peer_id != peer_id {
        return Err(ApiError::Unauthorized(
            "Grant belongs to a different federation peer",
        ));
    }
    if !ctx.settings.resource_kinds.iter().any(|k| k == kind) {
        return Err(ApiError::validation("kind", "unknown")
            .with_message(format!("unknown resource kind {kind}")));
    }
    // The calling instance is the URI SAN of the client certificate we issued to the caller.
    let ip = source_ip(ctx, caller).ok_or_else(|| internal("grant", "no peer address"))?;
    let call_ctx = grant::Context {
        resource_kind: kind,
        resource_id: id,
        scope,
        instance_id: caller.cert.instance_id.as_deref(),
        network: caller.network.as_deref(),
        source_ip: ip,
        now: call.now,
    };
    let g = super::grants::scope_of(row);
    match grant::decide(&g, &call_ctx) {
        Ok(()) => {
            metrics::counter!("powernode_grant_decisions_total", "result" => "allowed", "dimension" => "none").increment(1);
            Ok(())
        }
        Err(denial) => {
            metrics::counter!("powernode_grant_decisions_total", "result" => "denied", "dimension" => denial.dimension.as_ref().to_owned()).increment(1);
            let checks: Vec<String> = grant::explain(&g, &call_ctx)
                .into_iter()
                .map(|c| {
                    format!(
                        "{}={} ({})",
                        c.dimension,
                        if c.ok { "ok" } else { "failed" },
                        c.why
                    )
                })
                .collect();
            tracing::warn!(
                grant_id = %row.id,
                peer_id = %peer_id,
                kind,
                id,
                scope = %scope,
                checks = %checks.join("; "),
                "grant denied: {denial}"
            );
            Err(ApiError::GrantScope(denial))
        }
    }
}

/// `authorize`, recording a refusal on the grant it concerns (`last_denied_at`, `last_denial`:
/// the doctor's evidence). Recording is best effort: the caller gets the refusal either way.
async fn authorize_recorded(
    ctx: &Ctx,
    caller: &ResourceCaller,
    call: &ResourceCall,
    kind: &str,
    id: &str,
    scope: powernode_domain::grant::Scope,
) -> Result<(), ApiError> {
    let result = authorize(ctx, caller, call, kind, id, scope);
    if let (Err(e @ (ApiError::GrantScope(_) | ApiError::Unauthorized(_))), Some(row)) =
        (&result, &call.grant)
    {
        let (grant_id, message) = (row.id, format!("{scope} {kind}/{id}: {e}"));
        if let Err(failed) = db::run(&ctx.db, move |conn| {
            powernode_store::grants::record_denial(conn, grant_id, &message)
        })
        .await
        {
            tracing::warn!(grant_id = %grant_id, "could not record the grant denial: {}", failed.detail());
        }
    }
    result
}

/// A peer reads a shared resource under a grant with `read` (one blocking hop: chain, grant,
/// clock and the resource itself).
pub async fn read_resource(
    ctx: &Ctx,
    lookups: &LookupBatcher,
    caller: ResourceCaller,
    kind: String,
    id: String,
) -> Result<ResourceView, ApiError> {
    let call = resource_call(ctx, lookups, &caller, &kind, &id, true).await?;
    authorize_recorded(
        ctx,
        &caller,
        &call,
        &kind,
        &id,
        powernode_domain::grant::Scope::Read,
    )
    .await?;
    let found = call
        .resource
        .ok_or_else(|| ApiError::NotFound(format!("resource {kind}/{id} not found")))?;
    Ok(ResourceView {
        kind: found.kind,
        id: found.id,
        version: i64::from(found.version),
        document: Some(found.document),
    })
}

/// A peer writes a shared resource under a grant with `write` (new version + event).
pub async fn write_resource(
    ctx: &Ctx,
    lookups: &LookupBatcher,
    caller: ResourceCaller,
    kind: String,
    id: String,
    doc: Value,
) -> Result<ResourceView, ApiError> {
    let call = resource_call(ctx, lookups, &caller, &kind, &id, false).await?;
    authorize_recorded(
        ctx,
        &caller,
        &call,
        &kind,
        &id,
        powernode_domain::grant::Scope::Write,
    )
    .await?;
    super::grants::ids("id", std::slice::from_ref(&id))?;
    let peer_id = call.peer_id;
    let stored = db::transaction(&ctx.db, move |conn| {
        super::check_storable(conn, "document", &doc)?;
        let stored = powernode_store::grants::put_resource(conn, &kind, &id, &doc, Some(peer_id))
            .map_err(|e| internal("resource write failed", e))?;
        let payload = serde_json::to_value(super::grants::resource_view(&stored))
            .map_err(|e| internal("resource event", e))?;
        powernode_store::events::insert(
            conn,
            &powernode_store::events::NewEvent {
                kind: powernode_domain::events::EventKind::ResourceUpdated,
                severity: powernode_domain::events::Severity::Low,
                source: powernode_domain::events::EventSource::FederationGrant,
                peer_id: Some(peer_id),
                payload: &payload,
                correlation_id: None,
            },
        )
        .map_err(|e| internal("resource write failed", e))?;
        Ok(stored)
    })
    .await?;
    Ok(super::grants::resource_view(&stored))
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::BasicConstraints;
    use openssl::x509::{X509, X509NameBuilder};

    use super::validate_ca_pem;

    /// A self-signed certificate; `ca` sets basicConstraints CA:TRUE.
    fn self_signed(common_name: &str, ca: bool) -> String {
        let key = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, common_name)
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
        } else {
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
        }
        b.sign(&key, MessageDigest::sha256()).unwrap();
        String::from_utf8(b.build().to_pem().unwrap()).unwrap()
    }

    #[test]
    fn a_ca_is_recognised_by_its_basic_constraints_not_by_text() {
        assert!(validate_ca_pem(&self_signed("Peer CA", true)).is_ok());
        // The old text match saw "CA:TRUE" in the subject of a leaf certificate.
        let imitation = self_signed("CA:TRUE", false);
        assert_eq!(
            validate_ca_pem(&imitation).unwrap_err(),
            "not a CA certificate (basicConstraints CA:TRUE missing)"
        );
    }
}
