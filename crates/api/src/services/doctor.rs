//! The doctor (SPEC §9.3): the runbook's diagnostic steps, run. Each check says what was
//! observed (numbers and times by the database clock), which runbook section it belongs to,
//! and the command that fixes or narrows it. Reads only.

use std::time::{Duration, Instant};

use powernode_client::governance::{CheckStatus, CheckView, DiagnosisView};
use powernode_domain::governance::{human_duration, precise_duration};
use powernode_domain::schedule::SCHEDULES;
use powernode_domain::{PeerId, PeerKind, PeerOrigin, PeerStatus, Permission};
use powernode_store::certificates::PeerCertificate;
use powernode_store::diagnosis::{self, InstanceFacts, PeerFacts};
use powernode_store::operators::Operator;
use powernode_store::worker_status::ScheduleStatus;
use time::OffsetDateTime;

use crate::ca::CLIENT_KEY_CONTEXT;
use crate::db::{self, Context as _};
use crate::error::ApiError;
use crate::services::{Ctx, require};

/// Runbook sections the checks point to (`docs/runbook.md` headings; a test checks each one
/// exists).
pub mod runbook {
    pub const SCHEDULES: &str = "docs/runbook.md#symptom-a-worker-schedule-does-not-run";
    pub const STUCK_ACCEPTED: &str = "docs/runbook.md#symptom-peer-stuck-in-accepted";
    pub const DEGRADED: &str = "docs/runbook.md#symptom-peer-flipped-to-degraded";
    pub const PARTIAL: &str = "docs/runbook.md#symptom-mtls-partial-config-warning-in-logs";
    pub const CERTIFICATES: &str =
        "docs/runbook.md#certificates-where-they-are-and-when-they-rotate";
    pub const REFUSED: &str =
        "docs/runbook.md#symptom-federation-api-returns-401-even-with-a-valid-certificate";
    pub const GRANTS: &str =
        "docs/runbook.md#symptom-grant-rejected-at-the-remote-with-grant-scope-mismatch";
    pub const APPROVALS: &str =
        "docs/runbook.md#symptom-systemfederation_peer_-actions-blocked-in-the-approval-queue";
    pub const MANAGER: &str = "docs/runbook.md#escalation-pause-the-sdwan-manager-if-its-executions-are-making-things-worse";
    pub const POLICIES: &str =
        "docs/runbook.md#faster-path-for-emergencies-lower-the-policy-for-a-bounded-window";
    pub const DATABASE: &str = "docs/runbook.md#symptom-requests-answer-503-service_unavailable-database-unavailable-or-busy";
    pub const REDIS: &str = "docs/runbook.md#symptom-redis-is-unreachable";
    pub const LISTENER: &str =
        "docs/runbook.md#symptom-the-federation-listener-is-down-or-its-certificate-expires";
    pub const TOKEN: &str =
        "docs/runbook.md#symptom-the-acceptance-token-expired-before-the-accept";
    pub const SUSPENDED: &str = "docs/runbook.md#symptom-a-peer-is-suspended-or-revoked";

    pub const ALL: &[&str] = &[
        SCHEDULES,
        STUCK_ACCEPTED,
        DEGRADED,
        PARTIAL,
        CERTIFICATES,
        REFUSED,
        GRANTS,
        APPROVALS,
        MANAGER,
        POLICIES,
        DATABASE,
        REDIS,
        LISTENER,
        TOKEN,
        SUSPENDED,
    ];
}

/// What the instance diagnosis needs from outside the database (the HTTP layer's handles).
pub struct Probes<'a> {
    pub redis: &'a redis::Client,
    pub federation_listener_up: bool,
    /// When this API process started (a schedule no worker reported yet is `warn` for two
    /// default intervals after it, then `fail`).
    pub started: Instant,
}

fn check(
    check: impl Into<String>,
    status: CheckStatus,
    evidence: impl Into<String>,
    runbook: &str,
    next_step: Option<String>,
) -> CheckView {
    CheckView {
        check: check.into(),
        status,
        evidence: evidence.into(),
        runbook: runbook.to_owned(),
        next_step,
    }
}

fn diagnosis(
    peer_id: Option<uuid::Uuid>,
    checks: Vec<CheckView>,
    ran_at: OffsetDateTime,
) -> DiagnosisView {
    DiagnosisView {
        peer_id,
        status: checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(CheckStatus::Ok),
        checks,
        ran_at,
    }
}

fn secs(from: OffsetDateTime, to: OffsetDateTime) -> i64 {
    (to - from).whole_seconds()
}

fn hhmm(t: OffsetDateTime) -> String {
    format!("{:02}:{:02} UTC", t.hour(), t.minute())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

const WORKER_LOG: &str = "journalctl -u powernode-worker@default";

// ---------------------------------------------------------------------------------------------
// Instance.

/// `GET /api/v1/system/federation/diagnosis`.
pub async fn instance(
    ctx: &Ctx,
    operator: &Operator,
    probes: Probes<'_>,
) -> Result<DiagnosisView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let host = crate::federation::public_host(&ctx.settings);
    let within = ctx.settings.governance.approval_expiring_secs;
    let started = Instant::now();
    let facts = db::run(&ctx.db, move |conn| {
        diagnosis::instance(conn, &host, within)
    })
    .await
    .context("diagnosis failed");
    let db_elapsed = started.elapsed();
    let redis = redis_check(probes.redis).await;
    let (mut checks, now) = match facts {
        Ok(facts) => {
            let now = facts.now;
            let mut checks = schedule_checks(&facts, probes.started.elapsed());
            checks.push(manager_check(&facts));
            checks.push(policies_check(&facts));
            checks.push(approvals_check(ctx, &facts));
            checks.push(listener_check(ctx, &facts, probes.federation_listener_up));
            checks.push(check(
                "postgresql",
                CheckStatus::Ok,
                format!(
                    "answered the diagnosis reads in {} ms",
                    db_elapsed.as_millis()
                ),
                runbook::DATABASE,
                None,
            ));
            (checks, now)
        }
        Err(e) => {
            let (status, code, error, _) = e.parts();
            (
                vec![check(
                    "postgresql",
                    CheckStatus::Fail,
                    format!("{status} {code}: {error}"),
                    runbook::DATABASE,
                    Some(
                        "pg_isready -d \"$POWERNODE_DATABASE_URL\"; journalctl -u postgresql"
                            .to_owned(),
                    ),
                )],
                OffsetDateTime::now_utc(),
            )
        }
    };
    checks.push(redis);
    Ok(diagnosis(None, checks, now))
}

fn schedule_checks(facts: &InstanceFacts, uptime: Duration) -> Vec<CheckView> {
    SCHEDULES
        .iter()
        .map(|spec| {
            let reported = facts.schedules.iter().find(|s| s.schedule == spec.name);
            schedule_check(spec, reported, facts.now, uptime)
        })
        .collect()
}

fn schedule_check(
    spec: &powernode_domain::schedule::ScheduleSpec,
    reported: Option<&ScheduleStatus>,
    now: OffsetDateTime,
    uptime: Duration,
) -> CheckView {
    let name = format!("schedule.{}", spec.name);
    let grep = Some(format!("{WORKER_LOG} | grep {}", spec.job));
    let Some(s) = reported else {
        let grace = 2 * u64::from(spec.interval_secs);
        let (status, wait) = if uptime.as_secs() < grace {
            (CheckStatus::Warn, " yet")
        } else {
            (CheckStatus::Fail, "")
        };
        return check(
            name,
            status,
            format!(
                "no worker has reported {}{wait} (API up {}, interval {} s)",
                spec.job,
                precise_duration(i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX)),
                spec.interval_secs
            ),
            runbook::SCHEDULES,
            Some(
                "systemctl status powernode-worker@default; powernode-worker schedules".to_owned(),
            ),
        );
    };
    let interval = s
        .interval_secs
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(spec.interval_secs);
    let last_failure = match (&s.last_failure_at, &s.last_error) {
        (Some(at), Some(err)) if s.last_outcome == "failed" => format!(
            "; last run failed {} ago: {err}",
            precise_duration(secs(*at, now))
        ),
        _ => String::new(),
    };
    match s.last_success_at {
        Some(at) if secs(at, now) <= 2 * i64::from(interval) => check(
            name,
            CheckStatus::Ok,
            format!(
                "last {} success {} ago (interval {interval} s){last_failure}",
                spec.job,
                precise_duration(secs(at, now))
            ),
            runbook::SCHEDULES,
            None,
        ),
        Some(at) => check(
            name,
            CheckStatus::Fail,
            format!(
                "last {} success {} ago, more than 2 intervals (interval {interval} s){last_failure}",
                spec.job,
                precise_duration(secs(at, now))
            ),
            runbook::SCHEDULES,
            grep,
        ),
        None => check(
            name,
            CheckStatus::Fail,
            format!(
                "{} has never succeeded (interval {interval} s){last_failure}",
                spec.job
            ),
            runbook::SCHEDULES,
            grep,
        ),
    }
}

fn manager_check(facts: &InstanceFacts) -> CheckView {
    match &facts.manager {
        Some(agent) if agent.paused() => check(
            "sdwan_manager",
            CheckStatus::Warn,
            format!(
                "SDWAN Manager paused {} ago{}{}: approved requests wait until it resumes",
                precise_duration(secs(agent.updated_at, facts.now)),
                agent
                    .status_changed_by
                    .map(|by| format!(" by operator {by}"))
                    .unwrap_or_default(),
                agent
                    .status_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
            ),
            runbook::MANAGER,
            Some("powernodectl agent resume \"SDWAN Manager\"".to_owned()),
        ),
        Some(_) => check(
            "sdwan_manager",
            CheckStatus::Ok,
            "SDWAN Manager active",
            runbook::MANAGER,
            None,
        ),
        None => check(
            "sdwan_manager",
            CheckStatus::Fail,
            "no SDWAN Manager agent row: approved requests are never executed",
            runbook::MANAGER,
            Some("powernode-api migrate".to_owned()),
        ),
    }
}

fn policies_check(facts: &InstanceFacts) -> CheckView {
    let lowered: Vec<String> = facts
        .policies
        .iter()
        .filter_map(|p| {
            let l = p.state.active_lowering(facts.now)?;
            Some(format!(
                "{} lowered to {} until {} (in {}){}",
                p.state.action,
                l.to,
                hhmm(l.until),
                precise_duration(secs(facts.now, l.until)),
                p.lowered_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
        })
        .collect();
    if lowered.is_empty() {
        return check(
            "policies",
            CheckStatus::Ok,
            format!("{} policies, none lowered", facts.policies.len()),
            runbook::POLICIES,
            None,
        );
    }
    let first = facts
        .policies
        .iter()
        .find(|p| p.state.active_lowering(facts.now).is_some())
        .map(|p| p.state.action.clone())
        .unwrap_or_default();
    check(
        "policies",
        CheckStatus::Warn,
        lowered.join("; "),
        runbook::POLICIES,
        Some(format!("powernodectl policy restore {first}")),
    )
}

fn approvals_check(ctx: &Ctx, facts: &InstanceFacts) -> CheckView {
    match facts.expiring.first() {
        Some(soonest) => check(
            "approvals",
            CheckStatus::Warn,
            format!(
                "{} pending approval request(s) expire within {}; the first, {} ({}), in {}",
                facts.expiring.len(),
                human_duration(i64::from(ctx.settings.governance.approval_expiring_secs)),
                soonest.id,
                soonest.action,
                precise_duration(secs(facts.now, soonest.expires_at))
            ),
            runbook::APPROVALS,
            Some(format!(
                "powernodectl approvals show {} (then approve or reject it)",
                soonest.id
            )),
        ),
        None => check(
            "approvals",
            CheckStatus::Ok,
            format!("{} pending, none about to expire", facts.pending),
            runbook::APPROVALS,
            None,
        ),
    }
}

fn listener_check(ctx: &Ctx, facts: &InstanceFacts, up: bool) -> CheckView {
    let restart = Some("journalctl -u powernode-api | grep -i federation".to_owned());
    if !up {
        return check(
            "federation_listener",
            CheckStatus::Fail,
            format!(
                "the federation listener ({}) is not serving: peers cannot reach us",
                ctx.settings.federation_listen
            ),
            runbook::LISTENER,
            restart,
        );
    }
    // Our own files when configured, else the certificate the CA issued the listener.
    let validity = match &ctx.settings.federation_tls_files {
        Some((cert, _)) => std::fs::read(cert)
            .ok()
            .and_then(|pem| openssl::x509::X509::from_pem(&pem).ok())
            .map(|c| crate::ca::validity(&c)),
        None => facts
            .listener_certificate
            .as_ref()
            .map(|c| (c.not_before, c.not_after)),
    };
    let Some((from, to)) = validity else {
        return check(
            "federation_listener",
            CheckStatus::Warn,
            format!(
                "serving on {}; its certificate could not be read",
                ctx.settings.federation_listen
            ),
            runbook::LISTENER,
            restart,
        );
    };
    let left = secs(facts.now, to);
    if left <= 0 {
        return check(
            "federation_listener",
            CheckStatus::Fail,
            format!(
                "serving on {} with a certificate that expired {} ago",
                ctx.settings.federation_listen,
                human_duration(left)
            ),
            runbook::LISTENER,
            Some("systemctl restart powernode-api (re-issues it at start)".to_owned()),
        );
    }
    let due = powernode_domain::certificate::due_for_rotation(
        from,
        to,
        facts.now,
        ctx.settings.cert_rotation_percent,
    );
    check(
        "federation_listener",
        if due {
            CheckStatus::Warn
        } else {
            CheckStatus::Ok
        },
        format!(
            "serving on {}; certificate valid until {} ({} left){}",
            ctx.settings.federation_listen,
            rfc3339(to),
            human_duration(left),
            if due {
                format!(
                    ", past {} % of its lifetime",
                    ctx.settings.cert_rotation_percent
                )
            } else {
                String::new()
            }
        ),
        runbook::LISTENER,
        due.then(|| "systemctl restart powernode-api (re-issues it at start)".to_owned()),
    )
}

async fn redis_check(client: &redis::Client) -> CheckView {
    let started = Instant::now();
    match crate::services::health::ping_redis(client).await {
        Ok(()) => check(
            "redis",
            CheckStatus::Ok,
            format!("PING answered in {} ms", started.elapsed().as_millis()),
            runbook::REDIS,
            None,
        ),
        Err(e) => check(
            "redis",
            CheckStatus::Fail,
            format!("Redis does not answer: {e}; workers cannot schedule ticks"),
            runbook::REDIS,
            Some(
                "redis-cli -u \"$POWERNODE_REDIS_URL\" ping; systemctl status redis-server"
                    .to_owned(),
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// One peer.

/// `GET /api/v1/system/federation/peers/{id}/diagnosis`.
pub async fn peer(ctx: &Ctx, operator: &Operator, id: PeerId) -> Result<DiagnosisView, ApiError> {
    require(operator, Permission::FederationRead)?;
    let peer_id = id.uuid();
    let facts = db::run(&ctx.db, move |conn| diagnosis::peer(conn, peer_id))
        .await
        .context("diagnosis failed")?
        .ok_or_else(|| ApiError::NotFound(format!("peer {peer_id} not found")))?;
    let checks = vec![
        status_check(ctx, &facts),
        handshake_check(ctx, &facts),
        inbound_check(ctx, &facts),
        outbound_check(&facts),
        certificates_check(ctx, &facts),
        grants_check(&facts),
        peer_approvals_check(ctx, &facts),
    ];
    Ok(diagnosis(Some(peer_id), checks, facts.now))
}

fn status_check(ctx: &Ctx, f: &PeerFacts) -> CheckView {
    let p = &f.peer;
    let id = p.id;
    let since = precise_duration(secs(p.status_changed_at, f.now));
    let by = f
        .last_status_event
        .as_ref()
        .and_then(|e| e.payload.get("operator_id")?.as_str().map(str::to_owned))
        .map(|op| format!(" by operator {op}"))
        .unwrap_or_default();
    let reason = |key: &str| {
        p.metadata
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    };
    match p.status {
        PeerStatus::Proposed => match p.acceptance_token_expires_at {
            Some(exp) if exp <= f.now => check(
                "peer.status",
                CheckStatus::Warn,
                format!(
                    "proposed {since} ago; its acceptance token expired {} ago, so the other instance's accept will be refused",
                    precise_duration(secs(exp, f.now))
                ),
                runbook::TOKEN,
                Some(format!("powernodectl peer token regenerate {id}")),
            ),
            Some(exp) => check(
                "peer.status",
                CheckStatus::Ok,
                format!(
                    "proposed {since} ago; waiting for the other instance's accept (token valid for {})",
                    precise_duration(secs(f.now, exp))
                ),
                runbook::TOKEN,
                None,
            ),
            None => check(
                "peer.status",
                CheckStatus::Ok,
                format!("proposed {since} ago (drill peer, no token)"),
                runbook::TOKEN,
                None,
            ),
        },
        PeerStatus::Degraded => check(
            "peer.status",
            CheckStatus::Fail,
            format!(
                "degraded for {since}{}",
                reason(powernode_domain::peer::DEGRADED_REASON)
            ),
            runbook::DEGRADED,
            Some(format!(
                "the peer's PeerClient must heartbeat us: on the other instance, powernodectl doctor <its id for us>; here, see peer.outbound (stale after {} s)",
                ctx.settings.stale_after_secs
            )),
        ),
        PeerStatus::Suspended => check(
            "peer.status",
            CheckStatus::Warn,
            format!(
                "suspended {since} ago{by}{}",
                reason(powernode_domain::peer::SUSPENSION_REASON)
            ),
            runbook::SUSPENDED,
            Some(format!("powernodectl peer resume {id} --reason \"…\"")),
        ),
        PeerStatus::Revoked => check(
            "peer.status",
            CheckStatus::Warn,
            format!(
                "revoked {since} ago{by}{} (terminal)",
                reason(powernode_domain::peer::REVOCATION_REASON)
            ),
            runbook::SUSPENDED,
            Some(format!(
                "powernodectl peer delete {id}, then propose again if the federation should resume"
            )),
        ),
        status => check(
            "peer.status",
            CheckStatus::Ok,
            format!("{status} for {since}"),
            runbook::DEGRADED,
            None,
        ),
    }
}

fn peer_client_evidence(f: &PeerFacts) -> String {
    match &f.peer_client_schedule {
        Some(s) => match s.last_success_at {
            Some(at) => format!(
                "last FederationPeerHeartbeatJob success {} ago",
                precise_duration(secs(at, f.now))
            ),
            None => "FederationPeerHeartbeatJob has never succeeded".to_owned(),
        },
        None => "no worker has reported FederationPeerHeartbeatJob".to_owned(),
    }
}

fn handshake_check(ctx: &Ctx, f: &PeerFacts) -> CheckView {
    let p = &f.peer;
    match p.status {
        PeerStatus::Accepted if p.peer_kind != PeerKind::Platform => check(
            "peer.handshake",
            CheckStatus::Ok,
            format!(
                "a {} peer stays accepted: no handshake is expected",
                p.peer_kind.as_str()
            ),
            runbook::STUCK_ACCEPTED,
            None,
        ),
        PeerStatus::Accepted => {
            let age = secs(p.status_changed_at, f.now);
            let overdue = age > i64::from(ctx.settings.governance.accepted_without_handshake_secs);
            let status = if overdue {
                CheckStatus::Fail
            } else {
                CheckStatus::Warn
            };
            let since = format!(
                "accepted {} ago (since {}) without a handshake",
                precise_duration(age),
                hhmm(p.status_changed_at)
            );
            if p.origin == PeerOrigin::AcceptedHere {
                let last = match (&p.last_outbound_error, p.last_outbound_heartbeat_at) {
                    (Some(e), Some(at)) => format!(
                        "; our last handshake attempt {} ago failed: {e}",
                        precise_duration(secs(at, f.now))
                    ),
                    (None, Some(at)) => format!(
                        "; our last attempt {} ago",
                        precise_duration(secs(at, f.now))
                    ),
                    _ => "; no attempt recorded yet".to_owned(),
                };
                check(
                    "peer.handshake",
                    status,
                    format!(
                        "{since}; we accepted its token, so our worker sends the handshake: {}{last}",
                        peer_client_evidence(f)
                    ),
                    runbook::STUCK_ACCEPTED,
                    Some(format!(
                        "{WORKER_LOG} | grep FederationPeerHeartbeatJob; powernodectl worker status"
                    )),
                )
            } else {
                check(
                    "peer.handshake",
                    status,
                    format!(
                        "{since}; the other instance accepted our token and must send the handshake: is its worker running?"
                    ),
                    runbook::STUCK_ACCEPTED,
                    Some(format!(
                        "on the other instance ({}): powernodectl worker status; powernodectl doctor <its id for us>",
                        p.remote_instance_url
                    )),
                )
            }
        }
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded => check(
            "peer.handshake",
            CheckStatus::Ok,
            match p.last_handshake_at {
                Some(at) => format!(
                    "handshake completed {} ago",
                    precise_duration(secs(at, f.now))
                ),
                None => "handshake completed".to_owned(),
            },
            runbook::STUCK_ACCEPTED,
            None,
        ),
        status => check(
            "peer.handshake",
            CheckStatus::Ok,
            format!("no handshake expected while {status}"),
            runbook::STUCK_ACCEPTED,
            None,
        ),
    }
}

fn inbound_check(ctx: &Ctx, f: &PeerFacts) -> CheckView {
    let p = &f.peer;
    let stale_after = i64::from(ctx.settings.stale_after_secs);
    let contacted = matches!(
        p.status,
        PeerStatus::Enrolled | PeerStatus::Active | PeerStatus::Degraded
    );
    if !contacted || p.peer_kind != PeerKind::Platform {
        return check(
            "peer.inbound_heartbeat",
            CheckStatus::Ok,
            format!(
                "no heartbeats expected from a {} peer that is {}",
                p.peer_kind.as_str(),
                p.status
            ),
            runbook::DEGRADED,
            None,
        );
    }
    let next = Some(format!(
        "on the other instance ({}): powernodectl doctor <its id for us>; {WORKER_LOG} | grep FederationPeerHeartbeatJob",
        p.remote_instance_url
    ));
    match p.last_heartbeat_at {
        Some(at) if secs(at, f.now) <= stale_after && p.status != PeerStatus::Degraded => check(
            "peer.inbound_heartbeat",
            CheckStatus::Ok,
            format!(
                "last heartbeat from the peer {} ago (stale after {})",
                precise_duration(secs(at, f.now)),
                precise_duration(stale_after)
            ),
            runbook::DEGRADED,
            None,
        ),
        Some(at) => check(
            "peer.inbound_heartbeat",
            CheckStatus::Fail,
            format!(
                "last heartbeat from the peer {} ago (since {}), beyond stale after {}",
                precise_duration(secs(at, f.now)),
                hhmm(at),
                precise_duration(stale_after)
            ),
            runbook::DEGRADED,
            next,
        ),
        None => {
            let age = secs(p.status_changed_at, f.now);
            check(
                "peer.inbound_heartbeat",
                if age <= stale_after {
                    CheckStatus::Warn
                } else {
                    CheckStatus::Fail
                },
                format!(
                    "no heartbeat from the peer yet, {} after it became {} (stale after {})",
                    precise_duration(age),
                    p.status,
                    precise_duration(stale_after)
                ),
                runbook::DEGRADED,
                next,
            )
        }
    }
}

/// The transport error, in the words of the runbook.
fn transport_meaning(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("connection refused") {
        "connection refused: nothing listens at that address"
    } else if e.contains("timed out") || e.contains("timeout") {
        "timed out: a firewall drops the packets or the host is down"
    } else if e.contains("dns") || e.contains("resolve") {
        "its host name does not resolve"
    } else if e.contains("hostname mismatch") || e.contains("ip address mismatch") {
        "the TLS handshake failed: the certificate it serves does not name the host in its URL"
    } else if e.contains("certificate has expired") || e.contains("certificate is not yet valid") {
        "the TLS handshake failed: the certificate it serves is outside its validity period"
    } else if e.contains("certificate") || e.contains("tls") || e.contains("ssl") {
        "the TLS handshake failed: the certificate it serves does not chain to the CA we pinned"
    } else {
        "no answer"
    }
}

fn outbound_check(f: &PeerFacts) -> CheckView {
    let p = &f.peer;
    let host = url::Url::parse(&p.remote_instance_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| p.remote_instance_url.clone());
    let Some(_) = powernode_domain::liveness::outbound_call(p.status, p.origin, p.peer_kind) else {
        return check(
            "peer.outbound",
            CheckStatus::Ok,
            format!(
                "we do not call a {} peer that is {} ({})",
                p.peer_kind.as_str(),
                p.status,
                p.origin.as_str()
            ),
            runbook::DEGRADED,
            None,
        );
    };
    let Some(last) = p.last_outbound_heartbeat_at else {
        return check(
            "peer.outbound",
            CheckStatus::Warn,
            format!("we have not called {host} yet: {}", peer_client_evidence(f)),
            runbook::SCHEDULES,
            Some("powernodectl worker status".to_owned()),
        );
    };
    let ago = precise_duration(secs(last, f.now));
    let Some(error) = &p.last_outbound_error else {
        return check(
            "peer.outbound",
            CheckStatus::Ok,
            format!("our last call to {host} {ago} ago succeeded"),
            runbook::DEGRADED,
            None,
        );
    };
    let since = p
        .outbound_failing_since
        .map(|at| {
            format!(
                " since {} ({})",
                hhmm(at),
                precise_duration(secs(at, f.now))
            )
        })
        .unwrap_or_default();
    // `<status> <CODE>: <message>`: the peer answered and refused; `HTTP <status> …`: something
    // answered that is not the federation protocol (a proxy's page).
    let refused = error.starts_with("HTTP ")
        || error
            .split_once(' ')
            .is_some_and(|(code, _)| code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()));
    if error.starts_with("partial mTLS config") {
        return check(
            "peer.outbound",
            CheckStatus::Fail,
            format!("we refuse to call {host}{since}: {error}"),
            runbook::PARTIAL,
            Some(format!(
                "see peer.certificates; powernodectl peer show {}",
                p.id
            )),
        );
    }
    // reqwest's transport failures read "error sending request for url (…)"; anything else is
    // our own side failing before or after the call (no pinned CA, an unusable renewal, the
    // database).
    if !refused && !error.contains("error sending request") {
        return check(
            "peer.outbound",
            CheckStatus::Fail,
            format!(
                "our side could not complete the call to {host}{since}: {error}; last attempt {ago} ago"
            ),
            runbook::CERTIFICATES,
            Some(format!(
                "powernodectl peer show {}; journalctl -u powernode-api | grep PeerClient",
                p.id
            )),
        );
    }
    if refused {
        let meaning = if error.starts_with("HTTP ") {
            "the answer is not the federation protocol: a proxy or another service at that URL?"
        } else if error.contains("revoked") {
            "it revoked the certificate it issued us"
        } else if error.starts_with("401") || error.starts_with("403") {
            "it does not accept our client certificate for this peer"
        } else {
            "it refuses the call"
        };
        return check(
            "peer.outbound",
            CheckStatus::Fail,
            format!(
                "{host} refuses our heartbeats{since}: {error} ({meaning}); last attempt {ago} ago"
            ),
            runbook::REFUSED,
            Some(format!(
                "on the other instance ({}): powernodectl peer show <its id for us>; if it revoked us: powernodectl peer revoke {} --reason \"revoked by the other side\", then propose again",
                p.remote_instance_url, p.id
            )),
        );
    }
    check(
        "peer.outbound",
        CheckStatus::Fail,
        format!(
            "{host}'s federation listener does not answer ({}){since}: {error}; last attempt {ago} ago",
            transport_meaning(error)
        ),
        runbook::DEGRADED,
        Some(format!(
            "curl -sk -o /dev/null -w '%{{http_code}}\\n' {}/api/v1/system/federation_api/ca",
            p.remote_instance_url.trim_end_matches('/')
        )),
    )
}

fn newest_live(rows: &[PeerCertificate]) -> Option<&PeerCertificate> {
    rows.iter().find(|c| c.revoked_at.is_none())
}

fn certificates_check(ctx: &Ctx, f: &PeerFacts) -> CheckView {
    let p = &f.peer;
    let id = p.id;
    if matches!(p.status, PeerStatus::Proposed | PeerStatus::Revoked) {
        return check(
            "peer.certificates",
            CheckStatus::Ok,
            format!("no live certificates expected while {}", p.status),
            runbook::CERTIFICATES,
            None,
        );
    }
    // Our half of the pair: what the PeerClient presents. The proposer's arrives with the
    // handshake, and we never call an sdwan_only peer.
    let out = newest_live(&f.outbound);
    let awaiting_handshake =
        p.status == PeerStatus::Accepted && p.origin == PeerOrigin::ProposedHere;
    let expects_outbound = p.peer_kind == PeerKind::Platform && !awaiting_handshake;
    let has_cert = out.is_some_and(|c| c.cert_pem.is_some());
    let has_key = out
        .and_then(|c| c.key_sealed.as_ref())
        .is_some_and(|k| ctx.settings.master_key.open(CLIENT_KEY_CONTEXT, k).is_ok());
    if expects_outbound && !(has_cert && has_key) {
        return check(
            "peer.certificates",
            CheckStatus::Fail,
            crate::services::federation::partial_message(id, has_cert, has_key),
            runbook::PARTIAL,
            Some(format!(
                "powernodectl peer revoke {id} --reason \"partial outbound certificate\", then propose again: powernodectl peer propose --remote-url …"
            )),
        );
    }
    let mut status = CheckStatus::Ok;
    let mut next = None;
    let mut parts = Vec::new();
    let mut checked = vec![(
        "the certificate we issued it",
        newest_live(&f.inbound),
        false,
    )];
    if expects_outbound {
        checked.insert(0, ("our client certificate", out, true));
    } else {
        parts.push(if p.peer_kind == PeerKind::Platform {
            "our client certificate arrives with the handshake".to_owned()
        } else {
            format!(
                "no client certificate of ours for a {} peer",
                p.peer_kind.as_str()
            )
        });
    }
    for (label, cert, ours) in checked {
        let Some(c) = cert else {
            status = status.max(CheckStatus::Warn);
            parts.push(format!("{label}: none"));
            next = Some(format!(
                "powernodectl peer show {id} (certificates); if one is gone: powernodectl peer revoke {id} --reason \"certificate missing\", then propose again"
            ));
            continue;
        };
        let (Some(from), Some(to)) = (c.not_before, c.not_after) else {
            status = CheckStatus::Fail;
            parts.push(format!("{label} (serial {}) has no validity", c.serial));
            continue;
        };
        let left = secs(f.now, to);
        if left <= 0 {
            status = CheckStatus::Fail;
            parts.push(format!(
                "{label} (serial {}) expired {} ago",
                c.serial,
                human_duration(left)
            ));
            if ours {
                next = Some(format!("powernodectl peer cert renew {id}"));
            }
        } else if powernode_domain::certificate::due_for_rotation(
            from,
            to,
            f.now,
            ctx.settings.cert_rotation_percent,
        ) {
            status = status.max(CheckStatus::Warn);
            parts.push(format!(
                "{label} (serial {}) is past {} % of its lifetime, {} left: rotation is due",
                c.serial,
                ctx.settings.cert_rotation_percent,
                human_duration(left)
            ));
            if ours {
                next = Some(format!("powernodectl peer cert renew {id}"));
            }
        } else {
            parts.push(format!(
                "{label} (serial {}) valid until {} ({} left)",
                c.serial,
                rfc3339(to),
                human_duration(left)
            ));
        }
    }
    check(
        "peer.certificates",
        status,
        parts.join("; "),
        runbook::CERTIFICATES,
        next,
    )
}

fn grants_check(f: &PeerFacts) -> CheckView {
    let day = time::Duration::days(1);
    let live: Vec<_> = f
        .grants
        .iter()
        .filter(|g| g.revoked_at.is_none() && g.expires_at > f.now)
        .collect();
    if let Some(g) = f
        .grants
        .iter()
        .filter(|g| g.revoked_at.is_none())
        .filter(|g| g.last_denied_at.is_some_and(|at| at > f.now - day))
        .max_by_key(|g| g.last_denied_at)
    {
        let at = g.last_denied_at.unwrap_or(f.now);
        return check(
            "peer.grants",
            CheckStatus::Warn,
            format!(
                "grant {} denied a call {} ago: {}",
                g.id,
                precise_duration(secs(at, f.now)),
                g.last_denial.as_deref().unwrap_or("(no message)")
            ),
            runbook::GRANTS,
            Some(format!(
                "powernodectl grant explain {} --kind {} --resource-id <id> --scope <read|write> --source-ip <caller ip>",
                g.id, g.resource_kind
            )),
        );
    }
    if let Some(g) = live.iter().find(|g| {
        g.node_instance_ids.is_empty()
            && g.sdwan_network_ids.is_empty()
            && g.source_cidrs.is_empty()
    }) {
        return check(
            "peer.grants",
            CheckStatus::Warn,
            format!(
                "grant {} has no instance, network or source allowlist: any holder of its token reaches every {}",
                g.id, g.resource_kind
            ),
            runbook::GRANTS,
            Some(format!(
                "powernodectl grant revoke {} --reason \"unrestricted\", then issue a narrower grant",
                g.id
            )),
        );
    }
    if let Some(g) = f
        .grants
        .iter()
        .find(|g| g.revoked_at.is_none() && g.expires_at <= f.now && g.expires_at > f.now - 7 * day)
    {
        return check(
            "peer.grants",
            CheckStatus::Warn,
            format!(
                "grant {} expired {} ago: calls under it are refused",
                g.id,
                precise_duration(secs(g.expires_at, f.now))
            ),
            runbook::GRANTS,
            Some(format!("powernodectl grant renew {}", g.id)),
        );
    }
    check(
        "peer.grants",
        CheckStatus::Ok,
        format!("{} live grant(s), no denial in the last 24 h", live.len()),
        runbook::GRANTS,
        None,
    )
}

fn peer_approvals_check(ctx: &Ctx, f: &PeerFacts) -> CheckView {
    let within = i64::from(ctx.settings.governance.approval_expiring_secs);
    match f.approvals.first() {
        Some(a) => {
            let left = secs(f.now, a.expires_at);
            check(
                "peer.approvals",
                if left <= within {
                    CheckStatus::Warn
                } else {
                    CheckStatus::Ok
                },
                format!(
                    "{} pending approval request(s) for this peer; {} ({}) expires in {}",
                    f.approvals.len(),
                    a.id,
                    a.action,
                    precise_duration(left)
                ),
                runbook::APPROVALS,
                Some(format!("powernodectl approvals show {}", a.id)),
            )
        }
        None => check(
            "peer.approvals",
            CheckStatus::Ok,
            "no pending approval request for this peer",
            runbook::APPROVALS,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use powernode_client::governance::CheckStatus;
    use powernode_domain::schedule::SCHEDULES;
    use powernode_store::worker_status::ScheduleStatus;
    use time::macros::datetime;

    use super::{runbook, schedule_check};

    #[test]
    fn an_unreported_schedule_warns_for_two_default_intervals_after_start_then_fails() {
        let spec = &SCHEDULES[0];
        let now = datetime!(2026-11-30 12:00 UTC);
        let early = schedule_check(spec, None, now, Duration::from_secs(119));
        assert_eq!(early.status, CheckStatus::Warn);
        assert_eq!(
            early.evidence,
            "no worker has reported FederationHeartbeatJob yet (API up 1 min 59 s, interval 60 s)"
        );
        let late = schedule_check(spec, None, now, Duration::from_secs(121));
        assert_eq!(late.status, CheckStatus::Fail);
        assert_eq!(
            late.evidence,
            "no worker has reported FederationHeartbeatJob (API up 2 min 1 s, interval 60 s)"
        );
    }

    #[test]
    fn a_reported_schedule_is_judged_by_its_reported_interval() {
        let spec = &SCHEDULES[0];
        let now = datetime!(2026-11-30 12:00 UTC);
        let status = |ago: i64, interval: Option<i32>| ScheduleStatus {
            schedule: spec.name.to_owned(),
            job: spec.job.to_owned(),
            last_outcome: "failed".to_owned(),
            last_tick: 0,
            last_worker: "w".to_owned(),
            last_success_at: Some(now - time::Duration::seconds(ago)),
            last_failure_at: Some(now - time::Duration::seconds(5)),
            last_error: Some("HTTP 503: database unavailable".to_owned()),
            runs: 3,
            failures: 1,
            updated_at: now,
            interval_secs: interval,
        };
        let ok = schedule_check(spec, Some(&status(192, Some(300))), now, Duration::ZERO);
        assert_eq!(ok.status, CheckStatus::Ok);
        assert_eq!(
            ok.evidence,
            "last FederationHeartbeatJob success 3 min 12 s ago (interval 300 s); last run failed 5 s ago: HTTP 503: database unavailable"
        );
        let late = schedule_check(spec, Some(&status(192, None)), now, Duration::ZERO);
        assert_eq!(late.status, CheckStatus::Fail);
        assert!(
            late.evidence
                .contains("more than 2 intervals (interval 60 s)")
        );
    }

    /// GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens.
    fn slug(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }

    #[test]
    fn every_runbook_anchor_names_a_heading_of_the_runbook() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/runbook.md");
        let text = std::fs::read_to_string(path).unwrap();
        let anchors: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("## ") || l.starts_with("### "))
            .map(|l| slug(l.trim_start_matches('#')))
            .collect();
        for a in runbook::ALL {
            let anchor = a.trim_start_matches("docs/runbook.md#");
            assert!(
                anchors.iter().any(|h| h == anchor),
                "{anchor} is not a heading of docs/runbook.md"
            );
        }
    }
}
