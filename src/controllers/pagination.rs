//! `?limit=&cursor=` parsing for keyset-paginated lists (422 when out of range or malformed).

use actix_web::HttpRequest;

use crate::controllers::ApiError;
use crate::services::page::{DEFAULT_LIMIT, LIMIT_RANGE, PageRequest};
use crate::services::validation::{FieldError, parse_uuid};

/// Reads the page request from the query string; also returns the other parameters.
pub fn page_request(req: &HttpRequest) -> Result<(PageRequest, Vec<(String, String)>), ApiError> {
    let mut page = PageRequest {
        after: None,
        limit: DEFAULT_LIMIT,
    };
    let mut errors = Vec::new();
    let mut rest = Vec::new();
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match key.as_ref() {
            "limit" => match value.trim().parse::<u64>() {
                Ok(n) if LIMIT_RANGE.contains(&n) => page.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!(
                        "must be an integer from {} to {}",
                        LIMIT_RANGE.start(),
                        LIMIT_RANGE.end()
                    ),
                )),
            },
            "cursor" if value.is_empty() => {}
            "cursor" => match parse_uuid(&value) {
                Ok(id) => page.after = Some(id),
                Err(m) => errors.push(FieldError::new("cursor", m)),
            },
            _ => rest.push((key.into_owned(), value.into_owned())),
        }
    }
    if errors.is_empty() {
        Ok((page, rest))
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// Parses a path id, answering 422 (not 404) when it is not a UUID.
pub fn path_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    parse_uuid(raw).map_err(|m| ApiError::Invalid(vec![FieldError::new("id", m)]))
}
