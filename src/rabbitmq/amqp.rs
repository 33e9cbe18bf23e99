//! Opening AMQP connections and channels: a pooled connection for publishers, and a
//! channel with the whole topology declared.

use std::future::Future;
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, ConnectionProperties};

use crate::config::RabbitSettings;
use crate::rabbitmq::topology::Topology;

/// Why an AMQP operation failed; always worth a reconnect and a retry.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The pool could not hand out a connection.
    #[error("broker connection: {0}")]
    Pool(#[from] deadpool_lapin::PoolError),
    /// The broker or the link failed.
    #[error("broker: {0}")]
    Lapin(#[from] lapin::Error),
    /// The broker refused or returned a message.
    #[error("broker did not accept the message: {0}")]
    NotAccepted(String),
    /// A broker operation did not complete in time: the link is treated as dead.
    #[error("broker did not answer within {0:?}")]
    Timeout(Duration),
}

/// The longest a single broker operation may take before the link is treated as dead. A
/// connection that dies mid-operation can leave a future pending forever; this bounds it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits one broker operation, at most [`OP_TIMEOUT`].
pub async fn bounded<T>(op: impl Future<Output = Result<T, lapin::Error>>) -> Result<T, AmqpError> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(r) => r.map_err(AmqpError::Lapin),
        Err(_) => Err(AmqpError::Timeout(OP_TIMEOUT)),
    }
}

/// A pool of broker connections named `name` in the management UI.
pub fn pool(settings: &RabbitSettings, name: &str) -> Result<deadpool_lapin::Pool, String> {
    let cfg = deadpool_lapin::Config {
        url: Some(settings.url.expose().to_string()),
        pool: Some(deadpool_lapin::PoolConfig::new(settings.pool_size.max(1))),
    };
    let name = name.to_string();
    cfg.create_pool(
        move || ConnectionProperties::default().with_connection_name(name.clone().into()),
        deadpool_lapin::Runtime::Tokio1,
    )
    .map_err(|e| e.to_string())
}

/// A fresh channel from `pool` with publisher confirms on and the topology declared.
pub async fn confirm_channel(
    pool: &deadpool_lapin::Pool,
    topology: &Topology,
) -> Result<Channel, AmqpError> {
    let conn = pool.get().await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    topology.declare(&channel).await?;
    Ok(channel)
}
