//! The one place where errors become HTTP responses: `application/problem+json` (RFC 9457).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::services::ServiceError;
use crate::services::validation::FieldError;

/// Everything an HTTP handler of either service can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A business rule refused the request.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The body is not JSON at all.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is not declared as JSON.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// The body exceeds the limit.
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Path, query or header values that do not fit.
    #[error("the request has invalid parameters")]
    Invalid(Vec<FieldError>),
    /// An `If-Match` header that cannot match any version.
    #[error("If-Match must be a quoted version such as \"3\"")]
    BadPrecondition,
    /// A resource other than an entity (route, profile, dead letter) is absent.
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// Admin route called without the right bearer token.
    #[error("admin routes need `Authorization: Bearer <admin.token>`")]
    Unauthorized,
    /// Admin routes are off because no token is configured.
    #[error("admin routes are disabled: set admin.token to enable them")]
    AdminDisabled,
    /// A dependency is down; the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside; details are in the log, not in the response.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The problem document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::Service(ServiceError::Validation(_)) | Self::Invalid(_) => {
                ("validation-error", "Request does not fit the contract")
            }
            Self::Service(ServiceError::NotFound { .. }) | Self::NotFound(_) => {
                ("not-found", "Not found")
            }
            Self::Service(ServiceError::Conflict(_)) => ("conflict", "Conflict"),
            Self::Service(ServiceError::PreconditionFailed { .. }) | Self::BadPrecondition => {
                ("version-mismatch", "Precondition failed")
            }
            Self::Service(ServiceError::Database(_)) | Self::Internal(_) => {
                ("internal", "Internal server error")
            }
            Self::MalformedJson(_) => ("malformed-json", "Malformed JSON"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::Unauthorized => ("unauthorized", "Unauthorized"),
            Self::AdminDisabled => ("admin-disabled", "Admin API disabled"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Service(ServiceError::Validation(_)) | Self::Invalid(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Service(ServiceError::NotFound { .. }) | Self::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Service(ServiceError::Conflict(_)) => StatusCode::CONFLICT,
            Self::Service(ServiceError::PreconditionFailed { .. }) | Self::BadPrecondition => {
                StatusCode::PRECONDITION_FAILED
            }
            Self::Service(ServiceError::Database(_)) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AdminDisabled => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.slug_and_title();
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
            "an internal error occurred; the change was not applied".to_string()
        } else {
            self.to_string()
        };
        let errors = match self {
            Self::Service(ServiceError::Validation(e)) | Self::Invalid(e) => Some(e.as_slice()),
            _ => None,
        };
        let body = Problem {
            kind: format!("https://zealsync.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut res = HttpResponse::build(status);
        res.content_type("application/problem+json");
        if let Self::Unauthorized = self {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::Service(ServiceError::PreconditionFailed { current }) = self {
            res.insert_header(("ETag", format!("\"{current}\"")));
        }
        res.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Service(ServiceError::Database(e))
    }
}

/// Default service: unknown paths get a problem document too.
pub async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// Used by resources for methods they do not serve.
pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}
