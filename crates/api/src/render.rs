//! How handlers answer: the SPEC §10 success envelope, the 202 of a gated call, and optional
//! JSON bodies. Shared by every handler file so none imports another.

use actix_web::HttpResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, MAX_BODY_BYTES};
use crate::services::approvals::ApprovalView;

/// The success envelope, serialized straight from `data`: no intermediate JSON tree to build
/// (and a raw stored document passes through as it is).
#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    data: T,
}

/// `{"success":true,"data":…}`
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        success: true,
        data,
    })
}

/// 201 with the success envelope.
pub fn created<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Created().json(Envelope {
        success: true,
        data,
    })
}

/// The 202 a gated call answers (SPEC §7).
pub fn approval_required(request: ApprovalView) -> HttpResponse {
    let message = format!("Approval required: {}", request.action);
    HttpResponse::Accepted().json(json!({
        "success": true,
        "data": { "message": message, "approval_request": request },
    }))
}

/// A JSON body that may be absent: empty → `T::default()`; otherwise parsed strictly.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::BadRequest(format!("invalid request body: {e}"))
        } else {
            ApiError::BadRequest(format!(
                "request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        }
    })
}
