//! `Authorization: Bearer <admin.token>` for the admin routes; no token configured = disabled.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use crate::controllers::ApiError;

/// The configured admin token, if any.
#[derive(Clone, Default)]
pub struct AdminToken(Option<String>);

impl AdminToken {
    /// `None` (or an empty token) disables the admin routes.
    pub fn new(token: Option<&str>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(str::to_owned))
    }

    /// 404 when disabled, 401 when the bearer token is missing or wrong.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(expected) = &self.0 else {
            return Err(ApiError::AdminDisabled);
        };
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
