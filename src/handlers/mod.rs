//! Event handlers: each applies one aggregate's events to one store, idempotently and only
//! when the event is newer than what the store holds.

pub mod redis;
pub mod sql;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::rabbitmq::envelope::Envelope;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The store changed.
    Applied,
    /// This very event was applied before (redelivery); nothing changed.
    Duplicate,
    /// The store already holds this version or a newer one; nothing changed.
    Stale,
}

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency failed (database, Redis): trying again later may succeed.
    #[error("transient: {0}")]
    Transient(String),
    /// The event can never be applied (its data does not fit): park it.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sea_orm::DbErr> for HandlerError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Transient(format!("database: {e}"))
    }
}

impl From<::redis::RedisError> for HandlerError {
    fn from(e: ::redis::RedisError) -> Self {
        Self::Transient(format!("redis: {e}"))
    }
}

impl From<deadpool_redis::PoolError> for HandlerError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        Self::Transient(format!("redis pool: {e}"))
    }
}

/// One projection of one aggregate into one store.
pub trait EventHandler: Send + Sync {
    /// A stable name: the `processed_events.handler` value and the metrics label.
    fn name(&self) -> &'static str;

    /// Applies `event`; must be idempotent and version-guarded.
    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>>;
}
