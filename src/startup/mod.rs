//! Wiring: builds each service from `Settings`, binds its listener and starts its workers.

pub mod http;
pub mod publisher;
pub mod subscriber;

pub use publisher::{AppHandle, PublisherApp};
pub use subscriber::SubscriberApp;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The broker or Redis configuration is unusable.
    #[error("broker: {0}")]
    Broker(String),
    /// The Redis configuration is unusable.
    #[error("redis: {0}")]
    Redis(String),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}
