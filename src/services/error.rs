//! What a business rule can refuse; mapped to HTTP once, in `controllers::problem`.

use sea_orm::DbErr;
use uuid::Uuid;

use crate::services::validation::FieldError;

/// Why a publisher operation did not happen. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input does not fit the contract (422).
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// No such entity (404).
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: Uuid },
    /// The change would break a uniqueness or dependency rule (409).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named another version (412).
    #[error("version mismatch: the current version is {current}")]
    PreconditionFailed { current: i64 },
    /// The database failed; the transaction was rolled back.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl ServiceError {
    /// A single-field validation error.
    pub fn field(field: &str, message: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}
