//! The error envelope of SPEC §10 and the one table mapping errors to status and code.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use powernode_domain::token::TokenRejection;
use serde::Serialize;
use serde_json::{Value, json};

/// Largest accepted request body (SPEC §10).
pub const MAX_BODY_BYTES: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The mTLS chain refused (SPEC §4); a peer in the wrong status carries
    /// `details.peer_status` so callers react to it, not to the message.
    #[error(transparent)]
    Chain(#[from] powernode_domain::chain::ChainRefusal),
    /// The operator lacks `permission`.
    #[error("Forbidden")]
    Forbidden { permission: &'static str },
    /// 403 for who the operator is, not what they hold (deciding their own approval request).
    #[error("{0}")]
    ForbiddenAction(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    IllegalTransition(#[from] powernode_domain::IllegalTransition),
    #[error("{0}")]
    Conflict(String),
    /// `<field> <message>`, with `details.field`.
    #[error("{field} {message}")]
    Validation { field: String, message: String },
    /// 422 whose whole message is fixed by the SPEC (accept, CSR, handshake refusals).
    #[error("{error}")]
    Unprocessable { field: String, error: String },
    /// A peer did not answer (502).
    #[error("{0}")]
    PeerUnreachable(String),
    /// A peer answered with something we refuse to guess at (an unknown enum value): 502, with
    /// `details.reason`.
    #[error("{message}")]
    PeerAnswerInvalid { message: String, reason: String },
    /// A peer answered 5xx: 502, its status and message in `details`.
    #[error("{message}")]
    PeerFailed {
        message: String,
        status: u16,
        error: String,
    },
    /// A peer's own error passed through unchanged (status, code, message).
    #[error("{error}")]
    Remote {
        status: u16,
        code: String,
        error: String,
    },
    /// The first outcome of a call with the same `Idempotency-Key`, replayed as it was answered.
    #[error("{error}")]
    Replayed {
        status: u16,
        code: String,
        error: String,
        details: Value,
    },
    /// Too many calls; retry after this many seconds.
    #[error("rate limit exceeded; retry in {0} s")]
    RateLimited(u64),
    /// A grant's scope refused the call (SPEC §6).
    #[error(transparent)]
    GrantScope(#[from] powernode_domain::grant::Denial),
    /// Acceptance token refusals of SPEC §3 (401 for an unknown peer, else 422).
    #[error(transparent)]
    Token(#[from] powernode_domain::token::TokenRejection),
    #[error("request body exceeds {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
    /// The sweep failed; the cause was logged where it happened.
    #[error("federation_heartbeat_sweep_failed: internal error")]
    SweepFailed,
    /// PostgreSQL did not answer within the bound of one call (`database unavailable`), or a
    /// row lock or an internal queue was not available in time (`busy`): 503 with
    /// `Retry-After` (SPEC §10).
    #[error("{}", if *.busy { "busy" } else { "database unavailable" })]
    Unavailable { busy: bool, retry_after: u64 },
    /// `/readyz`: which dependency is down.
    #[error("not ready: {}", .down.join(", "))]
    NotReady {
        down: Vec<&'static str>,
        details: Value,
    },
    /// Anything unexpected: 500 `internal error`. The cause travels with the value and is logged
    /// once, where the error is rendered ([`ResponseError`]) or recorded ([`ApiError::report`]);
    /// it never reaches a response body.
    #[error("internal error")]
    Internal { context: String, cause: String },
}

impl ApiError {
    /// The single status/code table.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Unauthorized(_) | ApiError::Chain(_) => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            }
            ApiError::Forbidden { .. } | ApiError::ForbiddenAction(_) => {
                (StatusCode::FORBIDDEN, "FORBIDDEN")
            }
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::IllegalTransition(_) => (StatusCode::CONFLICT, "ILLEGAL_TRANSITION"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
            }
            ApiError::PeerUnreachable(_)
            | ApiError::PeerAnswerInvalid { .. }
            | ApiError::PeerFailed { .. } => (StatusCode::BAD_GATEWAY, "PEER_UNREACHABLE"),
            ApiError::GrantScope(_) => (StatusCode::FORBIDDEN, "GRANT_SCOPE_MISMATCH"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::Remote { .. } => (StatusCode::BAD_GATEWAY, "PEER_UNREACHABLE"),
            // Rendered from what was stored (see `error_response`).
            ApiError::Replayed { .. } => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Token(TokenRejection::NotRecognized) => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            }
            ApiError::Token(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
            }
            ApiError::SweepFailed | ApiError::Internal { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
            ApiError::NotReady { .. } | ApiError::Unavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
            }
        }
    }

    /// The same refusal with a SPEC-fixed whole message instead of `<field> <message>`.
    pub fn with_message(self, error: String) -> Self {
        match self {
            ApiError::Validation { field, .. } => ApiError::Unprocessable { field, error },
            other => other,
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::NotReady { details, .. } => details.clone(),
            ApiError::Forbidden { permission } => json!({ "required_permission": permission }),
            ApiError::Validation { field, .. } | ApiError::Unprocessable { field, .. } => {
                json!({ "field": field })
            }
            ApiError::IllegalTransition(e) => json!({ "from": e.from, "to": e.to }),
            ApiError::Token(_) => json!({ "field": "acceptance_token" }),
            ApiError::GrantScope(d) => json!({ "dimension": d.dimension }),
            ApiError::RateLimited(secs) => json!({ "retry_after_seconds": secs }),
            ApiError::Unavailable { busy, retry_after } => json!({
                "reason": if *busy { "busy" } else { "database_unavailable" },
                "retry_after_seconds": retry_after,
            }),
            ApiError::PeerAnswerInvalid { reason, .. } => json!({ "reason": reason }),
            ApiError::PeerFailed { status, error, .. } => {
                json!({ "peer_http_status": status, "peer_error": error })
            }
            ApiError::Chain(powernode_domain::chain::ChainRefusal::NotReachable(status)) => {
                json!({ "peer_status": status })
            }
            _ => json!({}),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    success: bool,
    error: String,
    code: &'a str,
    details: Value,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Remote { status, .. } | ApiError::Replayed { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            _ => self.status_and_code().0,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log_cause();
        if let ApiError::Remote {
            status,
            code,
            error,
        } = self
        {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            return HttpResponse::build(status).json(Envelope {
                success: false,
                error: error.clone(),
                code,
                details: json!({ "from": "peer" }),
            });
        }
        if let ApiError::Replayed {
            status,
            code,
            error,
            details,
        } = self
        {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            return HttpResponse::build(status).json(Envelope {
                success: false,
                error: error.clone(),
                code,
                details: details.clone(),
            });
        }
        let (status, code) = self.status_and_code();
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RateLimited(secs)
            | ApiError::Unavailable {
                retry_after: secs, ..
            } => {
                response.insert_header(("Retry-After", secs.to_string()));
            }
            _ => {}
        }
        response.json(Envelope {
            success: false,
            error: self.to_string(),
            code,
            details: self.details(),
        })
    }
}

impl From<powernode_store::peers::PeerOpError> for ApiError {
    fn from(e: powernode_store::peers::PeerOpError) -> Self {
        use powernode_store::peers::PeerOpError as E;
        match e {
            E::NotFound(id) => ApiError::NotFound(format!("peer {id} not found")),
            E::Illegal(e) => ApiError::IllegalTransition(e),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Rejected(r) => ApiError::Token(r),
            E::Store(e) => internal("peer operation failed", e),
        }
    }
}

impl From<powernode_store::approvals::ApprovalOpError> for ApiError {
    fn from(e: powernode_store::approvals::ApprovalOpError) -> Self {
        use powernode_domain::approval::DecisionRefusal as R;
        use powernode_store::approvals::ApprovalOpError as E;
        match e {
            E::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            E::Refused(r @ (R::OwnRequest | R::NotRequester)) => {
                ApiError::ForbiddenAction(r.to_string())
            }
            E::Refused(r) => ApiError::Conflict(r.to_string()),
            E::Forbidden(m) => ApiError::ForbiddenAction(m),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Invalid { field, message } => ApiError::validation(field, message),
            E::Store(e) => internal("approval operation failed", e),
        }
    }
}

impl From<powernode_store::StoreError> for ApiError {
    fn from(e: powernode_store::StoreError) -> Self {
        internal("database error", e)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        internal("database error", e)
    }
}

/// An error as one log line: libpq and friends end messages with newlines, which would split
/// one event over several journal lines.
pub fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// An unexpected failure: 500 `internal error`, carrying `context` and the cause for the log.
pub fn internal(context: &str, cause: impl std::fmt::Display) -> ApiError {
    ApiError::Internal {
        context: context.to_owned(),
        cause: one_line(&cause),
    }
}

impl ApiError {
    /// For a log line: an internal failure's context and cause (never shown to callers), else
    /// the message.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Internal { context, cause } => format!("{context}: {cause}"),
            other => other.to_string(),
        }
    }

    /// Logs an internal failure's cause (the one place it is logged) and returns what may be
    /// shown: for callers that record an error instead of rendering it (a PeerClient failure).
    pub fn report(&self) -> String {
        self.log_cause();
        self.to_string()
    }

    /// As `report`, as one line `<status> <CODE>: <error>` exactly as the answer would carry
    /// it (a peer's own status and code when relayed): an approval's `execution_error`.
    pub fn report_line(&self) -> String {
        self.log_cause();
        let (status, code, error, _) = self.parts();
        format!("{status} {code}: {error}")
    }

    /// Status, code, message and `details` exactly as the answer carries them.
    pub fn parts(&self) -> (u16, String, String, Value) {
        match self {
            ApiError::Remote {
                status,
                code,
                error,
            } => (
                *status,
                code.clone(),
                error.clone(),
                json!({ "from": "peer" }),
            ),
            ApiError::Replayed {
                status,
                code,
                error,
                details,
            } => (*status, code.clone(), error.clone(), details.clone()),
            _ => {
                let (status, code) = self.status_and_code();
                (
                    status.as_u16(),
                    code.to_owned(),
                    self.to_string(),
                    self.details(),
                )
            }
        }
    }

    fn log_cause(&self) {
        if let ApiError::Internal { context, cause } = self {
            tracing::error!(error = %cause, "{context}");
        }
    }
}

/// The JSON extractor configuration every route uses: 64 KiB limit, envelope errors.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(json_error)
}

pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge
        }
        JsonPayloadError::ContentType => {
            ApiError::BadRequest("Content-Type must be application/json".to_owned())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::BadRequest(format!("invalid request body: {e}"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )),
        _ => ApiError::BadRequest("request body could not be read".to_owned()),
    };
    api.into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path parameter: {err}")).into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Turns any error response that is not already an envelope (actix's own 405, 413 from the
/// payload limit, …) into one, so clients only ever parse one error shape. The web UI's pages
/// (HTML, with their own message) are left as they are.
pub fn envelope_bare_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let content_type = res.response().headers().get(header::CONTENT_TYPE);
    let is_json = content_type.is_some_and(|v| v == HeaderValue::from_static("application/json"));
    let is_page = content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_json || is_page {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let api = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            method: res.request().method().to_string(),
        },
        StatusCode::NOT_FOUND => ApiError::NotFound(format!(
            "no route for {} {}",
            res.request().method(),
            res.request().path()
        )),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        s if s.is_client_error() => {
            ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").to_lowercase())
        }
        _ => internal("unhandled error response", status),
    };
    let (req, _) = res.into_parts();
    let mut response: HttpResponse<BoxBody> = api.error_response();
    // Keep the original status (e.g. 415); only the body changes.
    *response.status_mut() = status;
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test, web};
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Probe {
        name: String,
    }

    async fn probe(_: web::Json<Probe>) -> HttpResponse {
        crate::render::ok("fine")
    }

    async fn call(body: Vec<u8>, content_type: &str) -> (u16, Value) {
        let app = test::init_service(
            App::new()
                .app_data(json_config())
                .route("/probe", web::post().to(probe)),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/probe")
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status().as_u16();
        (status, test::read_body_json(resp).await)
    }

    #[actix_web::test]
    async fn json_extractor_errors_use_the_envelope() {
        let (status, body) = call(br#"{"name":"a","extra":1}"#.to_vec(), "application/json").await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "BAD_REQUEST");
        assert_eq!(body["success"], false);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `extra`"),
            "{body}"
        );

        let (status, body) = call(b"{not json".to_vec(), "application/json").await;
        assert_eq!(status, 400);
        assert_eq!(
            body["error"],
            "request body is not valid JSON (line 1, column 2)"
        );

        let (status, body) = call(br#"{"name":"a"}"#.to_vec(), "text/plain").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "Content-Type must be application/json");
    }

    #[actix_web::test]
    async fn bodies_over_64_kib_are_413_payload_too_large() {
        let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let (status, body) = call(big.into_bytes(), "application/json").await;
        assert_eq!(status, 413);
        assert_eq!(
            body,
            serde_json::json!({"success": false, "error": "request body exceeds 65536 bytes",
                               "code": "PAYLOAD_TOO_LARGE", "details": {}})
        );
    }

    /// Captures log output for one closure.
    fn logs_of(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[actix_web::test]
    async fn an_internal_error_carries_its_cause_to_one_log_line_never_to_the_body() {
        use crate::db::Context as _;
        let failed: Result<(), ApiError> = Err(internal("database error", "connection\nreset"));
        let e = failed.context("grant lookup failed").unwrap_err();
        // Building and passing the error on logs nothing; rendering it logs the cause once.
        let mut response = None;
        let logs = logs_of(|| response = Some(e.error_response()));
        assert_eq!(logs.matches("grant lookup failed").count(), 1, "{logs}");
        assert!(logs.contains("connection reset"), "{logs}");
        let response = response.unwrap();
        assert_eq!(response.status(), 500);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"success": false, "error": "internal error", "code": "INTERNAL_ERROR", "details": {}})
        );
        // Refusals pass through `context` untouched.
        let refused: Result<(), ApiError> = Err(ApiError::Conflict("busy".to_owned()));
        assert!(matches!(refused.context("x"), Err(ApiError::Conflict(m)) if m == "busy"));
        // A recorded (not rendered) internal error is logged by `report`.
        let logs = logs_of(|| assert_eq!(internal("tick", "boom").report(), "internal error"));
        assert!(logs.contains("tick") && logs.contains("boom"), "{logs}");
    }
}
