//! One guard, on both listeners, for NUL characters: PostgreSQL cannot store U+0000 in `text`
//! or `jsonb`, so a value carrying one would fail deep in a statement (a 500) or be silently
//! changed. A JSON body with a NUL in any string or key is refused with 422 `<field> must not
//! contain NUL characters` (the top-level field; `document` for a resource body), a path or
//! query string with `%00` with 400, before any handler runs.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use serde_json::Value;

use crate::error::{ApiError, MAX_BODY_BYTES};

pub async fn refuse_nul(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let encoded_nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    if encoded_nul(req.path()) {
        return Err(ApiError::BadRequest("path must not contain NUL characters".to_owned()).into());
    }
    if encoded_nul(req.query_string()) {
        return Err(ApiError::BadRequest(
            "query string must not contain NUL characters".to_owned(),
        )
        .into());
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A declared oversized body is left to the extractor's 413; an undeclared length (chunked)
    // is read under the same 64 KiB payload limit.
    let oversized = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    if is_json && !oversized {
        // Read the body once, check it, and hand the same bytes on to the extractor.
        let body: Bytes = req.extract::<Bytes>().await?;
        // In valid JSON a NUL can only be written `\u0000`: without that text there is nothing
        // to find, and the hot path (heartbeats) is not parsed twice.
        if body.windows(6).any(|w| w == b"\\u0000")
            && let Ok(value) = serde_json::from_slice::<Value>(&body)
            && let Some(field) = nul_field(&value, req.path())
        {
            return Err(ApiError::validation(&field, "must not contain NUL characters").into());
        }
        req.set_payload(Payload::from(body));
    }
    next.call(req).await
}

/// The top-level field under which a NUL appears (`document` for a resource body, `body` when
/// the body is not an object).
fn nul_field(value: &Value, path: &str) -> Option<String> {
    if !has_nul(value) {
        return None;
    }
    if path.contains("/resources/") {
        return Some("document".to_owned());
    }
    match value {
        Value::Object(map) => map
            .iter()
            .find(|(k, v)| k.contains('\0') || has_nul(v))
            .map(|(k, _)| k.replace('\0', "")),
        _ => Some("body".to_owned()),
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_field_named_is_the_top_level_one() {
        assert_eq!(
            nul_field(&json!({"reason": "a\u{0}b"}), "/x"),
            Some("reason".into())
        );
        assert_eq!(
            nul_field(&json!({"endpoints": ["ok", "a\u{0}"]}), "/x"),
            Some("endpoints".into())
        );
        assert_eq!(
            nul_field(&json!({"sync_cursor": {"k\u{0}": 1}}), "/x"),
            Some("sync_cursor".into())
        );
        assert_eq!(
            nul_field(
                &json!({"a": "x\u{0}y"}),
                "/api/v1/system/federation/resources/k/i"
            ),
            Some("document".into())
        );
        assert_eq!(nul_field(&json!({"reason": "fine"}), "/x"), None);
        assert_eq!(nul_field(&json!(["a\u{0}"]), "/x"), Some("body".into()));
    }
}
