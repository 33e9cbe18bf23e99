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
    /// The store cannot be reached at all (connection refused, dropped, pool timeout): the
    /// message waits in place, unacked, until it is back; every message behind it would fail too.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error that may pass (a lock timeout, a missing table being
    /// migrated): retried with growing delays, parked after `retry.max_attempts`.
    #[error("transient: {0}")]
    Transient(String),
    /// The event can never be applied (its data does not fit): park it.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sea_orm::DbErr> for HandlerError {
    fn from(e: sea_orm::DbErr) -> Self {
        if db_unreachable(&e) {
            Self::Unavailable(format!("database: {e}"))
        } else {
            Self::Transient(format!("database: {e}"))
        }
    }
}

/// Whether a database error means the server cannot be reached (rather than refused a statement).
fn db_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            match &**s {
                Sqlx::Io(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_) => true,
                // SQLSTATE class 08 (connection exception) and 57P0x (server shutting down / starting).
                Sqlx::Database(d) => d
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<::redis::RedisError> for HandlerError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
        {
            Self::Unavailable(format!("redis: {e}"))
        } else {
            Self::Transient(format!("redis: {e}"))
        }
    }
}

impl From<deadpool_redis::PoolError> for HandlerError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => e.into(),
            other => Self::Unavailable(format!("redis pool: {other}")),
        }
    }
}

/// One projection of one aggregate into one store.
pub trait EventHandler: Send + Sync {
    /// A stable name: the `processed_events.handler` value and the metrics label.
    fn name(&self) -> &'static str;

    /// Applies `event`; must be idempotent and version-guarded.
    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>>;

    /// Applies several events, one result per event in order. The default applies them one
    /// by one; stores that can apply a batch in one transaction or one round trip override it.
    fn apply_batch<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Vec<Result<Outcome, HandlerError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                out.push(self.apply(e).await);
            }
            out
        })
    }
}
