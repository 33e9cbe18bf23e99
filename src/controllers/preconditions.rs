//! `ETag` / `If-Match` for optimistic concurrency: the entity version, quoted.

use actix_web::HttpRequest;
use actix_web::http::header::{ETAG, IF_MATCH};

use crate::controllers::ApiError;

/// The `ETag` header for a version.
pub fn etag(version: i64) -> (actix_web::http::header::HeaderName, String) {
    (ETAG, format!("\"{version}\""))
}

/// Reads `If-Match`: absent or `*` = no condition; `"3"` (or weak `W/"3"`) = must be version 3.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(raw) = req.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| ApiError::BadPrecondition)?.trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or(ApiError::BadPrecondition)
}
