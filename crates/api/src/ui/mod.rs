//! The operator web UI (SPEC §10): server-rendered askama pages on the operator listener,
//! complete without JavaScript. Every POST calls the same service function as its REST route;
//! a refusal re-renders the page with the message and the API's status.
//!
//! Sessions are encrypted cookies (`actix-session`, key from `POWERNODE_UI_SESSION_KEY_FILE`)
//! holding the operator id, its session epoch and the CSRF token; every request re-reads the
//! operator, so sign-out (epoch bump) and disabling end every copy of a cookie.

mod pages;

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionExt, SessionMiddleware};
use actix_web::cookie::SameSite;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::LocalBoxFuture;
use subtle::ConstantTimeEq;

use crate::auth::Operator;
use crate::error::ApiError;
use crate::settings::Environment;
use crate::startup::AppState;

const OPERATOR_KEY: &str = "operator_id";
const EPOCH_KEY: &str = "epoch";
const CSRF_KEY: &str = "csrf";
/// Unix second of the session's last request (the 8 h idle timeout, enforced here: a cookie
/// store cannot expire a copied cookie by itself).
const SEEN_KEY: &str = "seen";
const IDLE_SECS: i64 = 8 * 3600;
/// The peers table's own refresh (app.js) is not operator activity.
const AUTO_REFRESH_HEADER: &str = "x-auto-refresh";

/// SPEC §10's headers for every UI answer: nothing inline, no framing, no cross-origin referrer.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'";

/// All UI routes, behind the session middleware and the security headers. Registered last: its
/// empty prefix would otherwise shadow other services.
pub fn scope(
    key: actix_web::cookie::Key,
    environment: Environment,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name("pn_session".to_owned())
        .cookie_secure(environment != Environment::Development)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Strict)
        // Idle timeout: 8 h since the last request.
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(actix_web::cookie::time::Duration::hours(8))
                .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
        .build();
    pages::configure(web::scope(""))
        // A form, path or query the pages cannot read is a page too, never the API's JSON.
        .app_data(
            web::FormConfig::default()
                .error_handler(|e, _| unreadable(e.to_string(), StatusCode::BAD_REQUEST, e.into())),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|e, _| unreadable(e.to_string(), StatusCode::NOT_FOUND, e.into())),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| unreadable(e.to_string(), StatusCode::BAD_REQUEST, e.into())),
        )
        .wrap(sessions)
        .wrap(
            actix_web::middleware::DefaultHeaders::new()
                .add(("Content-Security-Policy", CSP))
                .add(("Referrer-Policy", "same-origin"))
                .add(("X-Frame-Options", "DENY")),
        )
        .default_service(web::to(crate::routes::unmatched))
}

fn unreadable(message: String, status: StatusCode, cause: actix_web::Error) -> actix_web::Error {
    let page = message_page(status, "The request could not be read", &message);
    actix_web::error::InternalError::from_response(cause, page).into()
}

/// A signed-in operator (the session's, still enabled, epoch current) and the session.
pub struct SignedIn {
    pub operator: Operator,
    pub session: Session,
}

impl SignedIn {
    /// The session's CSRF token (every form carries it).
    pub fn csrf(&self) -> String {
        self.session
            .get::<String>(CSRF_KEY)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Refuses a POST whose `csrf_token` is not the session's (constant-time compare).
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        check_csrf(&self.session, presented)
    }
}

impl FromRequest for SignedIn {
    type Error = UiError;
    type Future = LocalBoxFuture<'static, Result<Self, UiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let activity = !req.headers().contains_key(AUTO_REFRESH_HEADER);
        Box::pin(async move {
            let state = state.ok_or(UiError::SignIn)?;
            let id = session.get::<uuid::Uuid>(OPERATOR_KEY).ok().flatten();
            let epoch = session.get::<i32>(EPOCH_KEY).ok().flatten();
            let seen = session.get::<i64>(SEEN_KEY).ok().flatten();
            let (Some(id), Some(epoch), Some(seen)) = (id, epoch, seen) else {
                return Err(UiError::SignIn);
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if now - seen > IDLE_SECS {
                session.purge();
                return Err(UiError::SignIn);
            }
            // Refreshed at most once a minute: the cookie is not rewritten on every request.
            if activity && now - seen > 60 {
                let _ = session.insert(SEEN_KEY, now);
            }
            match crate::services::operators::session_operator(&state, id, epoch).await {
                Ok(Some(operator)) => Ok(SignedIn { operator, session }),
                Ok(None) => {
                    session.purge();
                    Err(UiError::SignIn)
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Refuses a form whose `csrf_token` is not the session's (constant-time compare); also the
/// sign-in form's check, before anyone is signed in.
pub fn check_csrf(session: &Session, presented: &str) -> Result<(), UiError> {
    let expected = session
        .get::<String>(CSRF_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    if !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(UiError::Csrf)
    }
}

/// Starts a session for `operator`: a fresh cookie (no fixation), its epoch, a CSRF token.
pub fn start_session(session: &Session, operator: &Operator) -> Result<(), ApiError> {
    session.renew();
    let token =
        crate::crypto::random_bytes::<32>().map_err(|e| crate::error::internal("csrf token", e))?;
    session
        .insert(OPERATOR_KEY, operator.id)
        .and_then(|()| session.insert(EPOCH_KEY, operator.session_epoch))
        .and_then(|()| session.insert(SEEN_KEY, time::OffsetDateTime::now_utc().unix_timestamp()))
        .and_then(|()| session.insert(CSRF_KEY, URL_SAFE_NO_PAD.encode(token)))
        .map_err(|e| crate::error::internal("session", e))
}

/// What a UI request can end in besides its page.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No (valid) session: to the sign-in page.
    #[error("sign in")]
    SignIn,
    #[error("Invalid or missing CSRF token: reload the page and try again")]
    Csrf,
    /// Boxed: an `ApiError` is large and this travels in every handler's `Result`.
    #[error(transparent)]
    Api(Box<ApiError>),
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignIn => StatusCode::SEE_OTHER,
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            UiError::SignIn => HttpResponse::SeeOther()
                .insert_header(("Location", "/login"))
                .finish(),
            UiError::Csrf => message_page(StatusCode::FORBIDDEN, "Forbidden", &self.to_string()),
            UiError::Api(e) => {
                let (status, _, error, _) = e.parts();
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                e.report();
                message_page(status, "Something went wrong", &error)
            }
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(Box::new(e))
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

fn message_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    render(status, &MessagePage { title, message })
}

/// A rendered template with `status`; never cached (pages may carry a once-only token).
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}
