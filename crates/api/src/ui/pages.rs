//! The UI's pages: each handler extracts the signed-in operator and the form, calls the REST
//! route's service, and renders a template (a refusal: the same page with the message and the
//! API's status).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use powernode_client::approvals::{ApprovalView, DecisionRequest, ListQuery as ApprovalQuery};
use powernode_client::events::{EventView, EventsQuery};
use powernode_client::governance::{CheckView, ReportView};
use powernode_client::peers::{
    AcceptRequest, ListQuery, PeerView, ProposeRequest, ReasonRequest, RegenerateRequest,
    ResumeRequest,
};
use powernode_domain::{ApprovalId, PeerId, PeerStatus, Permission};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{SignedIn, UiError, render, start_session};
use crate::error::ApiError;
use crate::services::approvals::Gated;
use crate::services::governance::Trigger;
use crate::services::idempotency::{IdempotencyKey, once, once_telling};
use crate::services::{approvals, doctor, events, governance, grants, peers};
use crate::startup::AppState;

pub fn configure<T>(scope: actix_web::Scope<T>) -> actix_web::Scope<T>
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Error = actix_web::Error,
            InitError = (),
        >,
{
    scope
        .route("/static/app.css", web::get().to(stylesheet))
        .route("/static/app.js", web::get().to(script))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/", web::get().to(peer_list))
        .route("/peers/new", web::get().to(propose_form))
        .route("/peers/new", web::post().to(propose))
        .route("/peers/{id}", web::get().to(peer_page))
        .route("/grants", web::get().to(all_grants_page))
        .route("/peers/{id}/grants", web::get().to(grants_page))
        .route("/peers/{id}/grants", web::post().to(issue_grant))
        .route(
            "/peers/{id}/grants/{grant}/{action}",
            web::post().to(grant_action),
        )
        .route("/peers/{id}/{action}", web::post().to(peer_action))
        .route("/federation/accept", web::get().to(accept_form))
        .route("/federation/accept", web::post().to(accept))
        .route("/ai/autonomy/approvals", web::get().to(approvals_page))
        .route(
            "/ai/autonomy/approvals/{id}/{action}",
            web::post().to(approval_action),
        )
        .route("/events", web::get().to(events_page))
        .route("/governance", web::get().to(governance_page))
        .route("/governance/scan", web::post().to(governance_scan))
}

// ------------------------------------------------------------------------------------------
// Shared bits.

/// A timestamp as operators read it: "3 min ago", the ISO time on hover.
pub struct When {
    pub ago: String,
    pub iso: String,
}

fn when(t: Option<OffsetDateTime>) -> When {
    match t {
        None => When {
            ago: "never".to_owned(),
            iso: String::new(),
        },
        Some(t) => {
            let secs = (OffsetDateTime::now_utc() - t).whole_seconds();
            let human = powernode_domain::governance::human_duration(secs);
            When {
                ago: if secs >= 0 {
                    format!("{human} ago")
                } else {
                    format!("in {human}")
                },
                iso: t
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            }
        }
    }
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub operator: String,
    pub csrf: String,
    pub banner: Option<String>,
    pub can_manage: bool,
    pub can_decide: bool,
}

async fn chrome(state: &AppState, who: &SignedIn) -> Chrome {
    // The banner is best effort: a page still renders if the summary fails.
    let banner = peers::health_banner(state, &who.operator)
        .await
        .ok()
        .flatten();
    Chrome {
        operator: who.operator.name.clone(),
        csrf: who.csrf(),
        banner,
        can_manage: who.operator.has(Permission::FederationManage),
        can_decide: who.operator.has(Permission::InfraTasksControl),
    }
}

fn status_of(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.parts().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to.to_owned()))
        .finish()
}

/// A fresh Idempotency-Key per form render: a resubmitted form runs once.
fn form_key() -> String {
    crate::crypto::random_bytes::<16>()
        .map(hex::encode)
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "done.html")]
struct DonePage {
    chrome: Chrome,
    title: String,
    message: String,
    link: String,
    link_text: String,
    /// A once-only secret (an acceptance token), shown in this response only.
    secret: Option<String>,
}

fn done(chrome: Chrome, title: &str, message: String, link: &str, link_text: &str) -> DonePage {
    DonePage {
        chrome,
        title: title.to_owned(),
        message,
        link: link.to_owned(),
        link_text: link_text.to_owned(),
        secret: None,
    }
}

// ------------------------------------------------------------------------------------------
// Static files (no CDN, no build step).

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/app.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../static/app.js"))
}

// ------------------------------------------------------------------------------------------
// Sign-in and sign-out.

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

/// The sign-in form; its CSRF token lives in an anonymous session until sign-in renews it.
fn login_page(session: &Session, status: StatusCode, error: Option<String>) -> HttpResponse {
    let csrf = match session.get::<String>(super::CSRF_KEY).ok().flatten() {
        Some(t) => t,
        None => {
            let t = form_key();
            let _ = session.insert(super::CSRF_KEY, &t);
            t
        }
    };
    render(status, &LoginPage { csrf, error })
}

async fn login_form(session: Session) -> HttpResponse {
    login_page(&session, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
}

async fn login(
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, UiError> {
    super::check_csrf(&session, &form.csrf_token)?;
    let token = Some(form.token.trim().to_owned()).filter(|t| !t.is_empty());
    match crate::auth::authenticate_operator(&state, token).await {
        Ok(operator) => {
            start_session(&session, &operator)?;
            tracing::info!(operator_id = %operator.id, "signed in to the web UI");
            Ok(see_other("/"))
        }
        Err(e @ ApiError::Unauthorized(_)) => Ok(login_page(
            &session,
            StatusCode::UNAUTHORIZED,
            Some(e.to_string()),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    state: web::Data<AppState>,
    who: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    crate::services::operators::end_sessions(&state, &who.operator).await?;
    who.session.purge();
    Ok(see_other("/login"))
}

// ------------------------------------------------------------------------------------------
// Peers.

pub struct PeerRow {
    pub peer: PeerView,
    pub heartbeat: When,
    pub changed: When,
}

#[derive(Template)]
#[template(path = "peers.html")]
struct PeersPage {
    chrome: Chrome,
    rows: Vec<PeerRow>,
    status: String,
    next: Option<String>,
    statuses: Vec<&'static str>,
}

#[derive(Deserialize)]
struct PeersQuery {
    status: Option<String>,
    cursor: Option<String>,
}

async fn peer_list(
    state: web::Data<AppState>,
    who: SignedIn,
    q: web::Query<PeersQuery>,
) -> Result<HttpResponse, UiError> {
    let q = q.into_inner();
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<PeerStatus>()
                .map_err(|_| ApiError::validation("status", "is not a peer status"))
        })
        .transpose()?;
    let page = peers::list(
        &state,
        &who.operator,
        ListQuery {
            status,
            limit: Some(50),
            cursor: q.cursor,
        },
    )
    .await?;
    let status_text = status.map(|s| s.to_string()).unwrap_or_default();
    let next = page.next_cursor.map(|c| {
        format!(
            "/?status={}&cursor={}",
            status_text,
            url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        )
    });
    let rows = page
        .peers
        .into_iter()
        .map(|p| PeerRow {
            heartbeat: when(p.last_heartbeat_at),
            changed: when(Some(p.status_changed_at)),
            peer: p,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &PeersPage {
            chrome: chrome(&state, &who).await,
            rows,
            status: status_text,
            next,
            statuses: vec![
                "proposed",
                "accepted",
                "enrolled",
                "active",
                "degraded",
                "suspended",
                "revoked",
            ],
        },
    ))
}

pub struct CheckRow {
    pub check: CheckView,
    pub status: &'static str,
}

#[derive(Template)]
#[template(path = "peer.html")]
struct PeerPage {
    chrome: Chrome,
    peer: PeerView,
    heartbeat: When,
    changed: When,
    outbound: When,
    fields: Vec<(&'static str, String)>,
    /// (which, serial, fingerprint, not after, rotation due / revoked).
    certificates: Vec<(&'static str, String, String, When, String)>,
    grants: Vec<GrantRow>,
    events: Vec<EventRow>,
    checks: Vec<CheckRow>,
    transitions: Vec<&'static str>,
    /// A fresh Idempotency-Key for this render's action forms.
    key: String,
    error: Option<String>,
}

async fn peer_view_page(
    state: &AppState,
    who: &SignedIn,
    id: PeerId,
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, UiError> {
    let peer = peers::show(state, &who.operator, id).await?;
    let checks = doctor::peer(state, &who.operator, id)
        .await
        .map(|d| d.checks)
        .unwrap_or_default()
        .into_iter()
        .map(|c| CheckRow {
            status: match c.status {
                powernode_client::governance::CheckStatus::Ok => "ok",
                powernode_client::governance::CheckStatus::Warn => "warn",
                powernode_client::governance::CheckStatus::Fail => "fail",
            },
            check: c,
        })
        .collect();
    let transitions = peer
        .allowed_transitions
        .iter()
        .filter_map(|s| match s {
            PeerStatus::Suspended => Some("suspend"),
            PeerStatus::Accepted if peer.status == PeerStatus::Suspended => Some("resume"),
            PeerStatus::Revoked => Some("revoke"),
            _ => None,
        })
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    let iso = |t: Option<OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "—".to_owned())
    };
    let mut certificates = Vec::new();
    if let Some(c) = &peer.certificates {
        for (which, facts) in [
            ("issued by us to the peer", &c.inbound),
            ("our client certificate", &c.outbound),
        ] {
            if let Some(f) = facts {
                let state = if f.revoked_at.is_some() {
                    "revoked"
                } else if f.due_for_rotation {
                    "rotation due"
                } else {
                    "current"
                };
                certificates.push((
                    which,
                    f.serial.clone(),
                    f.fingerprint_sha256.clone().unwrap_or_default(),
                    when(f.not_after),
                    state.to_owned(),
                ));
            }
        }
    }
    let grants = grant_rows(
        grants::list(
            state,
            &who.operator,
            powernode_client::grants::ListQuery {
                peer_id: Some(id.uuid()),
                lifecycle: None,
            },
        )
        .await?,
    );
    let events = event_rows(
        events::list(
            state,
            &who.operator,
            EventsQuery {
                peer_id: Some(id.uuid()),
                limit: Some(10),
                ..EventsQuery::default()
            },
        )
        .await?,
    );
    let fields = vec![
        ("origin", peer.origin.clone()),
        ("remote instance URL", peer.remote_instance_url.clone()),
        (
            "remote instance id",
            peer.remote_instance_id
                .map_or_else(|| "—".to_owned(), |i| i.to_string()),
        ),
        ("kind", peer.peer_kind.clone()),
        ("spawn role", text(&peer.spawn_role)),
        ("spawn mode", text(&peer.spawn_mode)),
        ("prefix", text(&peer.remote_prefix_advertisement)),
        ("heartbeat stale", peer.heartbeat_stale.to_string()),
        ("degraded reason", text(&peer.degraded_reason)),
        ("last outbound error", text(&peer.last_outbound_error)),
        ("remote CA SHA-256", text(&peer.remote_ca_sha256)),
        (
            "contract version",
            peer.contract_version_agreed
                .map_or_else(|| "—".to_owned(), |v| v.to_string()),
        ),
        ("acceptance pending", peer.acceptance_pending.to_string()),
        ("token expires", iso(peer.acceptance_token_expires_at)),
        ("signed at", iso(peer.signed_at)),
        ("last handshake", iso(peer.last_handshake_at)),
        ("outbound failing since", iso(peer.outbound_failing_since)),
        (
            "allowed transitions",
            peer.allowed_transitions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("remote CA (PEM)", text(&peer.remote_ca_pem)),
        (
            "sync cursor",
            peer.sync_cursor
                .as_ref()
                .map_or_else(|| "—".to_owned(), ToString::to_string),
        ),
        ("endpoints", peer.endpoints.to_string()),
        ("extension slugs", peer.extension_slugs.to_string()),
        ("capabilities", peer.capabilities.to_string()),
        ("metadata", peer.metadata.to_string()),
        ("created", iso(Some(peer.created_at))),
        ("updated", iso(Some(peer.updated_at))),
    ];
    Ok(render(
        status,
        &PeerPage {
            chrome: chrome(state, who).await,
            heartbeat: when(peer.last_heartbeat_at),
            changed: when(Some(peer.status_changed_at)),
            outbound: when(peer.last_outbound_heartbeat_at),
            fields,
            certificates,
            grants,
            events,
            checks,
            transitions,
            key: form_key(),
            error,
            peer,
        },
    ))
}

async fn peer_page(
    state: web::Data<AppState>,
    who: SignedIn,
    id: web::Path<PeerId>,
) -> Result<HttpResponse, UiError> {
    peer_view_page(&state, &who, *id, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct ActionForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    reason: Option<String>,
    idempotency_key: Option<String>,
}

fn key(raw: Option<&str>) -> Result<Option<IdempotencyKey>, ApiError> {
    raw.filter(|k| !k.is_empty())
        .map(IdempotencyKey::parse)
        .transpose()
}

async fn peer_action(
    state: web::Data<AppState>,
    who: SignedIn,
    path: web::Path<(PeerId, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let (id, action) = path.into_inner();
    let form = form.into_inner();
    let op = &who.operator;
    let key = key(form.idempotency_key.as_deref())?;
    let reason = form.reason.clone().unwrap_or_default();
    let outcome: Result<HttpResponse, ApiError> = match action.as_str() {
        "suspend" => peers::suspend(&state, op, id, ReasonRequest { reason })
            .await
            .map(|_| see_other(&format!("/peers/{id}"))),
        "resume" => peers::resume(
            &state,
            op,
            id,
            ResumeRequest {
                reason: Some(reason).filter(|r| !r.trim().is_empty()),
            },
        )
        .await
        .map(|_| see_other(&format!("/peers/{id}"))),
        "revoke" => {
            let answer = once(
                &state,
                op,
                key.as_ref(),
                "peers.revoke",
                (id, ReasonRequest { reason }),
                |(id, req)| peers::revoke(&state, op, id, req),
            )
            .await;
            match answer {
                Ok(Gated::Done(_)) => Ok(see_other(&format!("/peers/{id}"))),
                Ok(Gated::Queued(request)) => Ok(render(
                    StatusCode::ACCEPTED,
                    &done(
                        chrome(&state, &who).await,
                        "Approval required",
                        format!(
                            "Approval required: {} — another operator with system.infra_tasks.control decides it; the SDWAN Manager then revokes the peer.",
                            request.action
                        ),
                        "/ai/autonomy/approvals",
                        "Open the approval queue",
                    ),
                )),
                Err(e) => Err(e),
            }
        }
        "token" => peers::regenerate_token(&state, op, id, RegenerateRequest::default())
            .await
            .map(|p| {
                let mut page = done(
                    // Rendered once, in this response only (no-store).
                    Chrome {
                        operator: op.name.clone(),
                        csrf: who.csrf(),
                        banner: None,
                        can_manage: true,
                        can_decide: op.has(Permission::InfraTasksControl),
                    },
                    "New acceptance token",
                    "The previous token no longer works. Hand this one to the other instance's operator now: it is shown once.".to_owned(),
                    &format!("/peers/{id}"),
                    "Back to the peer",
                );
                page.secret = p.acceptance_token;
                render(StatusCode::OK, &page)
            }),
        "delete" => peers::delete(&state, op, id)
            .await
            .map(|_| see_other("/")),
        _ => Err(ApiError::NotFound(format!("no action {action}"))),
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(e) => {
            let status = status_of(&e);
            let message = e.report_line();
            if status == StatusCode::NOT_FOUND {
                return Err(e.into());
            }
            peer_view_page(&state, &who, id, status, Some(message)).await
        }
    }
}

// ------------------------------------------------------------------------------------------
// Propose and accept.

#[derive(Template)]
#[template(path = "propose.html")]
struct ProposePage {
    chrome: Chrome,
    key: String,
    error: Option<String>,
    url: String,
    role: String,
    prefix: String,
}

async fn propose_form(state: web::Data<AppState>, who: SignedIn) -> Result<HttpResponse, UiError> {
    Ok(render(
        StatusCode::OK,
        &ProposePage {
            chrome: chrome(&state, &who).await,
            key: form_key(),
            error: None,
            url: String::new(),
            role: "parent".to_owned(),
            prefix: String::new(),
        },
    ))
}

#[derive(Deserialize)]
struct ProposeForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    idempotency_key: String,
    remote_instance_url: String,
    spawn_role: String,
    remote_prefix_advertisement: Option<String>,
}

async fn propose(
    state: web::Data<AppState>,
    who: SignedIn,
    form: web::Form<ProposeForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let op = &who.operator;
    let request = ProposeRequest {
        remote_instance_url: form.remote_instance_url.clone(),
        spawn_role: Some(form.spawn_role.clone()),
        remote_prefix_advertisement: form
            .remote_prefix_advertisement
            .clone()
            .filter(|p| !p.trim().is_empty()),
        ..ProposeRequest::default()
    };
    let answer = async {
        let key = key(Some(&form.idempotency_key))?;
        once_telling(&state, op, key.as_ref(), "peers.propose", request, |req| {
            peers::propose(&state, op, req)
        })
        .await
    }
    .await;
    let chrome = chrome(&state, &who).await;
    match answer {
        // The same form again (a reload, a double submit): the peer exists, its token was
        // shown once already.
        Ok((Gated::Done(p), true)) => Ok(render(
            StatusCode::OK,
            &done(
                chrome,
                "Already proposed",
                format!(
                    "This form was already submitted: peer {} was proposed and its acceptance token was shown then, once. If it was lost, regenerate it on the peer page.",
                    p.peer.id
                ),
                &format!("/peers/{}", p.peer.id),
                "Open the peer",
            ),
        )),
        Ok((Gated::Done(p), false)) => {
            let mut page = done(
                chrome,
                "Peer proposed",
                format!(
                    "Peer {} proposed. Hand this acceptance token to the operator of {} now (Accept Peer on their side): it is shown once and expires {}.",
                    p.peer.id,
                    p.peer.remote_instance_url,
                    when(p.acceptance_token_expires_at).ago
                ),
                &format!("/peers/{}", p.peer.id),
                "Open the peer",
            );
            page.secret = p.acceptance_token;
            Ok(render(StatusCode::CREATED, &page))
        }
        Ok((Gated::Queued(request), _)) => Ok(render(
            StatusCode::ACCEPTED,
            &done(
                chrome,
                "Approval required",
                format!(
                    "Approval required: {} — once another operator approves it and the SDWAN Manager runs it, collect the token on the approvals page (shown once, to you).",
                    request.action
                ),
                "/ai/autonomy/approvals",
                "Open the approval queue",
            ),
        )),
        Err(e) => Ok(render(
            status_of(&e),
            &ProposePage {
                chrome,
                key: form_key(),
                error: Some(e.report_line()),
                url: form.remote_instance_url,
                role: form.spawn_role,
                prefix: form.remote_prefix_advertisement.unwrap_or_default(),
            },
        )),
    }
}

#[derive(Template)]
#[template(path = "accept.html")]
struct AcceptPage {
    chrome: Chrome,
    key: String,
    error: Option<String>,
}

async fn accept_form(state: web::Data<AppState>, who: SignedIn) -> Result<HttpResponse, UiError> {
    Ok(render(
        StatusCode::OK,
        &AcceptPage {
            chrome: chrome(&state, &who).await,
            key: form_key(),
            error: None,
        },
    ))
}

#[derive(Deserialize)]
struct AcceptForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    idempotency_key: String,
    acceptance_token: String,
}

async fn accept(
    state: web::Data<AppState>,
    who: SignedIn,
    form: web::Form<AcceptForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let op = &who.operator;
    let answer = async {
        let key = key(Some(&form.idempotency_key))?;
        let request = AcceptRequest {
            acceptance_token: form.acceptance_token.trim().to_owned(),
        };
        once(&state, op, key.as_ref(), "peers.accept", request, |req| {
            peers::accept(&state, op, req)
        })
        .await
    }
    .await;
    let chrome = chrome(&state, &who).await;
    match answer {
        Ok(Gated::Done(peer)) => Ok(see_other(&format!("/peers/{}", peer.id))),
        Ok(Gated::Queued(request)) => Ok(render(
            StatusCode::ACCEPTED,
            &done(
                chrome,
                "Approval required",
                format!(
                    "Approval required: {} — the token is kept sealed until another operator approves and the SDWAN Manager runs the accept.",
                    request.action
                ),
                "/ai/autonomy/approvals",
                "Open the approval queue",
            ),
        )),
        Err(e) => Ok(render(
            status_of(&e),
            &AcceptPage {
                chrome,
                key: form_key(),
                error: Some(e.report_line()),
            },
        )),
    }
}

// ------------------------------------------------------------------------------------------
// Approvals.

pub struct ApprovalRow {
    pub request: ApprovalView,
    pub mine: bool,
    pub created: When,
    pub expires: When,
    pub params: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    chrome: Chrome,
    pending: Vec<ApprovalRow>,
    recent: Vec<ApprovalRow>,
    error: Option<String>,
    secret: Option<String>,
}

async fn approvals_view(
    state: &AppState,
    who: &SignedIn,
    status: StatusCode,
    error: Option<String>,
    secret: Option<String>,
) -> Result<HttpResponse, UiError> {
    let list = |status: &str| ApprovalQuery {
        status: Some(status.to_owned()),
        limit: Some(50),
    };
    let rows = |v: Vec<ApprovalView>| -> Vec<ApprovalRow> {
        v.into_iter()
            .map(|r| ApprovalRow {
                mine: r.requested_by == who.operator.id,
                created: when(Some(r.created_at)),
                expires: when(Some(r.expires_at)),
                params: r.params.to_string(),
                request: r,
            })
            .collect()
    };
    let pending = rows(approvals::queue::list(state, &who.operator, list("pending")).await?);
    let recent = rows(
        approvals::queue::list(state, &who.operator, list("all"))
            .await?
            .into_iter()
            .filter(|r| r.status.to_string() != "pending")
            .collect(),
    );
    Ok(render(
        status,
        &ApprovalsPage {
            chrome: chrome(state, who).await,
            pending,
            recent,
            error,
            secret,
        },
    ))
}

async fn approvals_page(
    state: web::Data<AppState>,
    who: SignedIn,
) -> Result<HttpResponse, UiError> {
    approvals_view(&state, &who, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct DecisionForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    comments: Option<String>,
}

async fn approval_action(
    state: web::Data<AppState>,
    who: SignedIn,
    path: web::Path<(ApprovalId, String)>,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let (id, action) = path.into_inner();
    let op = &who.operator;
    let req = DecisionRequest {
        comments: form.comments.clone().filter(|c| !c.trim().is_empty()),
    };
    let outcome = match action.as_str() {
        "approve" => approvals::queue::decide(&state, op, id, true, req)
            .await
            .map(|_| None),
        "reject" => approvals::queue::decide(&state, op, id, false, req)
            .await
            .map(|_| None),
        "cancel" => approvals::queue::cancel(&state, op, id, req)
            .await
            .map(|_| None),
        "claim" => approvals::queue::claim_result(&state, op, id)
            .await
            .map(|r| r.acceptance_token),
        _ => Err(ApiError::NotFound(format!("no action {action}"))),
    };
    match outcome {
        Ok(None) => Ok(see_other("/ai/autonomy/approvals")),
        Ok(Some(token)) => approvals_view(&state, &who, StatusCode::OK, None, Some(token)).await,
        Err(e) => {
            let status = status_of(&e);
            approvals_view(&state, &who, status, Some(e.report_line()), None).await
        }
    }
}

// ------------------------------------------------------------------------------------------
// Events and governance.

pub struct EventRow {
    pub event: EventView,
    pub at: When,
    pub payload: String,
}

fn event_rows(events: Vec<EventView>) -> Vec<EventRow> {
    events
        .into_iter()
        .map(|e| EventRow {
            at: when(Some(e.emitted_at)),
            payload: e.payload.to_string(),
            event: e,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    rows: Vec<EventRow>,
    source: String,
    kind: String,
    peer: String,
    since: String,
    older: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct EventsForm {
    source: Option<String>,
    kind: Option<String>,
    peer_id: Option<String>,
    since: Option<String>,
    before: Option<String>,
}

async fn events_page(
    state: web::Data<AppState>,
    who: SignedIn,
    q: web::Query<EventsForm>,
) -> Result<HttpResponse, UiError> {
    let q = q.into_inner();
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let (source, kind, peer, since, before) = (
        blank(q.source),
        blank(q.kind),
        blank(q.peer_id),
        blank(q.since),
        blank(q.before),
    );
    let peer_id = match peer.as_deref().map(uuid::Uuid::parse_str).transpose() {
        Ok(p) => p,
        Err(_) => return Err(ApiError::validation("peer_id", "must be a peer id (UUID)").into()),
    };
    const PAGE: i64 = 50;
    let answer = events::list(
        &state,
        &who.operator,
        EventsQuery {
            source: source.clone(),
            kind: kind.clone(),
            peer_id,
            since: since.clone(),
            before: before.clone(),
            limit: Some(PAGE),
        },
    )
    .await;
    let (rows, error, status) = match answer {
        Ok(list) => (list, None, StatusCode::OK),
        Err(e) => (Vec::new(), Some(e.report_line()), status_of(&e)),
    };
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last())
        .flatten()
        .map(|e| {
            let enc = |s: &Option<String>| {
                url::form_urlencoded::byte_serialize(s.as_deref().unwrap_or("").as_bytes())
                    .collect::<String>()
            };
            format!(
                "/events?source={}&kind={}&peer_id={}&since={}&before={}",
                enc(&source),
                enc(&kind),
                enc(&peer),
                enc(&since),
                enc(&Some(
                    e.emitted_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                ))
            )
        });
    let rows = event_rows(rows);
    Ok(render(
        status,
        &EventsPage {
            chrome: chrome(&state, &who).await,
            rows,
            source: source.unwrap_or_default(),
            kind: kind.unwrap_or_default(),
            peer: peer.unwrap_or_default(),
            since: since.unwrap_or_default(),
            older,
            error,
        },
    ))
}

#[derive(Template)]
#[template(path = "governance.html")]
struct GovernancePage {
    chrome: Chrome,
    report: Option<ReportView>,
    /// The report's findings with whether each is new.
    findings: Vec<(powernode_client::governance::FindingView, bool)>,
    finished: When,
    error: Option<String>,
}

async fn governance_view(
    state: &AppState,
    who: &SignedIn,
    status: StatusCode,
    error: Option<String>,
) -> Result<HttpResponse, UiError> {
    let report = match governance::latest(state, &who.operator).await {
        Ok(r) => Some(r),
        Err(ApiError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let findings = report
        .as_ref()
        .map(|r| {
            r.findings
                .iter()
                .map(|f| (f.clone(), r.new.contains(&f.fingerprint)))
                .collect()
        })
        .unwrap_or_default();
    Ok(render(
        status,
        &GovernancePage {
            chrome: chrome(state, who).await,
            finished: when(report.as_ref().map(|r| r.finished_at)),
            report,
            findings,
            error,
        },
    ))
}

async fn governance_page(
    state: web::Data<AppState>,
    who: SignedIn,
) -> Result<HttpResponse, UiError> {
    governance_view(&state, &who, StatusCode::OK, None).await
}

async fn governance_scan(
    state: web::Data<AppState>,
    who: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    match governance::scan_for(&state, &who.operator, Trigger::Operator).await {
        Ok(_) => Ok(see_other("/governance")),
        Err(e) => {
            let status = status_of(&e);
            governance_view(&state, &who, status, Some(e.report_line())).await
        }
    }
}

// ------------------------------------------------------------------------------------------
// Grants of one peer: issue, explain, renew, revoke.

/// A grant's explanation: its id, allowed, and each check (dimension, ok, why).
type Explained = (String, bool, Vec<(String, bool, String)>);

pub struct GrantRow {
    pub grant: powernode_client::grants::GrantView,
    pub expires: When,
    pub live: bool,
}

fn grant_rows(grants: Vec<powernode_client::grants::GrantView>) -> Vec<GrantRow> {
    let now = OffsetDateTime::now_utc();
    grants
        .into_iter()
        .map(|g| GrantRow {
            expires: when(Some(g.expires_at)),
            live: g.revoked_at.is_none() && g.expires_at > now,
            grant: g,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "grants.html")]
struct GrantsPage {
    chrome: Chrome,
    /// The peer whose grants these are; `None`: every peer's.
    peer: Option<PeerId>,
    rows: Vec<GrantRow>,
    error: Option<String>,
    /// A newly issued grant's bearer token, shown once.
    secret: Option<String>,
    /// An explanation's checks: (dimension, ok, why).
    explained: Option<Explained>,
}

async fn grants_view(
    state: &AppState,
    who: &SignedIn,
    peer: Option<PeerId>,
    status: StatusCode,
    error: Option<String>,
    secret: Option<String>,
    explained: Option<Explained>,
) -> Result<HttpResponse, UiError> {
    let list = grants::list(
        state,
        &who.operator,
        powernode_client::grants::ListQuery {
            peer_id: peer.map(PeerId::uuid),
            lifecycle: None,
        },
    )
    .await?;
    let rows = grant_rows(list);
    Ok(render(
        status,
        &GrantsPage {
            chrome: chrome(state, who).await,
            peer,
            rows,
            error,
            secret,
            explained,
        },
    ))
}

async fn grants_page(
    state: web::Data<AppState>,
    who: SignedIn,
    peer: web::Path<PeerId>,
) -> Result<HttpResponse, UiError> {
    grants_view(&state, &who, Some(*peer), StatusCode::OK, None, None, None).await
}

async fn all_grants_page(
    state: web::Data<AppState>,
    who: SignedIn,
) -> Result<HttpResponse, UiError> {
    grants_view(&state, &who, None, StatusCode::OK, None, None, None).await
}

fn list_field(raw: &Option<String>) -> Vec<String> {
    raw.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Deserialize)]
struct IssueForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    resource_kind: String,
    resource_id: Option<String>,
    read: Option<String>,
    write: Option<String>,
    node_instance_ids: Option<String>,
    sdwan_network_ids: Option<String>,
    source_cidrs: Option<String>,
    ttl_days: Option<String>,
    auto_renew: Option<String>,
}

async fn issue_grant(
    state: web::Data<AppState>,
    who: SignedIn,
    peer: web::Path<PeerId>,
    form: web::Form<IssueForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let peer = *peer;
    let mut scopes = Vec::new();
    if form.read.is_some() {
        scopes.push("read".to_owned());
    }
    if form.write.is_some() {
        scopes.push("write".to_owned());
    }
    let ttl_days = match form
        .ttl_days
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match t.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                let e = ApiError::validation("ttl_days", "must be a whole number of days");
                return grants_view(
                    &state,
                    &who,
                    Some(peer),
                    status_of(&e),
                    Some(e.report_line()),
                    None,
                    None,
                )
                .await;
            }
        },
    };
    let request = powernode_client::grants::IssueRequest {
        resource_kind: form.resource_kind.trim().to_owned(),
        resource_id: form.resource_id.filter(|r| !r.trim().is_empty()),
        permission_scopes: scopes,
        node_instance_ids: list_field(&form.node_instance_ids),
        sdwan_network_ids: list_field(&form.sdwan_network_ids),
        source_cidrs: list_field(&form.source_cidrs),
        ttl_days,
        auto_renew: form.auto_renew.is_some(),
    };
    match grants::issue(&state, &who.operator, peer, request).await {
        Ok(issued) => {
            grants_view(
                &state,
                &who,
                Some(peer),
                StatusCode::CREATED,
                None,
                Some(issued.token),
                None,
            )
            .await
        }
        Err(e) => {
            grants_view(
                &state,
                &who,
                Some(peer),
                status_of(&e),
                Some(e.report_line()),
                None,
                None,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct GrantForm {
    /// Missing → the 403 of a wrong token (checked by `SignedIn::check_csrf`).
    #[serde(default)]
    csrf_token: String,
    reason: Option<String>,
    ttl_days: Option<String>,
    resource_kind: Option<String>,
    resource_id: Option<String>,
    scope: Option<String>,
    instance_id: Option<String>,
    network: Option<String>,
    source_ip: Option<String>,
}

async fn grant_action(
    state: web::Data<AppState>,
    who: SignedIn,
    path: web::Path<(PeerId, powernode_domain::GrantId, String)>,
    form: web::Form<GrantForm>,
) -> Result<HttpResponse, UiError> {
    who.check_csrf(&form.csrf_token)?;
    let (peer, grant, action) = path.into_inner();
    let form = form.into_inner();
    let op = &who.operator;
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let outcome = match action.as_str() {
        "revoke" => grants::revoke(
            &state,
            op,
            grant,
            powernode_client::grants::RevokeRequest {
                reason: form.reason.unwrap_or_default(),
            },
        )
        .await
        .map(|_| None),
        "renew" => {
            let ttl_days = blank(form.ttl_days).and_then(|t| t.trim().parse().ok());
            grants::renew(
                &state,
                op,
                grant,
                powernode_client::grants::RenewRequest { ttl_days },
            )
            .await
            .map(|_| None)
        }
        "explain" => grants::explain(
            &state,
            op,
            grant,
            powernode_client::grants::ExplainRequest {
                resource_kind: form.resource_kind.unwrap_or_default(),
                resource_id: form.resource_id.unwrap_or_default(),
                scope: form.scope.unwrap_or_else(|| "read".to_owned()),
                instance_id: blank(form.instance_id),
                network: blank(form.network),
                source_ip: form.source_ip.unwrap_or_default(),
            },
        )
        .await
        .map(|x| {
            let checks = serde_json::to_value(&x.checks)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let text = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    (
                        text("dimension"),
                        c.get("ok").and_then(|v| v.as_bool()).unwrap_or(false),
                        text("why"),
                    )
                })
                .collect();
            Some((grant.to_string(), x.allowed, checks))
        }),
        _ => Err(ApiError::NotFound(format!("no action {action}"))),
    };
    match outcome {
        Ok(None) => Ok(see_other(&format!("/peers/{peer}/grants"))),
        Ok(Some(explained)) => {
            grants_view(
                &state,
                &who,
                Some(peer),
                StatusCode::OK,
                None,
                None,
                Some(explained),
            )
            .await
        }
        Err(e) => {
            let status = status_of(&e);
            grants_view(
                &state,
                &who,
                Some(peer),
                status,
                Some(e.report_line()),
                None,
                None,
            )
            .await
        }
    }
}
