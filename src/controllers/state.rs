//! What the publisher's handlers share: the database, the relay's wake-up, the admin token.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::controllers::admin_auth::AdminToken;
use crate::controllers::request_id::RequestId;
use crate::rabbitmq::handoff::Handoff;
use crate::services::WriteContext;
use crate::services::create_batch::CreateBatcher;

/// Application data of the publisher (one per process, behind `web::Data`).
pub struct PublisherState {
    pub db: DatabaseConnection,
    pub relay_wake: Arc<Notify>,
    /// Gives committed rows straight to the relay (PostgreSQL only).
    pub handoff: Option<Handoff>,
    pub admin: AdminToken,
    /// Batches user creations (PostgreSQL only).
    pub creates: Option<CreateBatcher>,
}

impl PublisherState {
    /// The context a write needs: the request id for the event and the relay to wake.
    pub fn write_ctx<'a>(&'a self, rid: &'a RequestId) -> WriteContext<'a> {
        WriteContext {
            correlation_id: &rid.0,
            relay_wake: &self.relay_wake,
            handoff: self.handoff.as_ref(),
            creates: self.creates.as_ref(),
        }
    }
}

/// Application data of the subscriber's read, status and admin API.
pub struct SubscriberState {
    pub db: DatabaseConnection,
    pub amqp: deadpool_lapin::Pool,
    pub topology: crate::rabbitmq::topology::Topology,
    pub stats: Arc<crate::rabbitmq::stats::SyncStats>,
    pub parking: crate::rabbitmq::parking::DeadLetterStore,
    pub admin: AdminToken,
    /// For the live stream's own pub/sub connection per client.
    pub redis_url: crate::config::SecretUrl,
    pub keys: crate::handlers::redis::RedisKeys,
}
