//! Business rules of the publisher. Every write commits the entity row and its outbox row
//! in ONE transaction, then wakes the relay.

pub mod courses;
pub mod create_batch;
pub mod error;
pub mod outbox;
pub mod page;
pub mod replay;
pub mod users;
pub mod validation;

pub use error::ServiceError;

use tokio::sync::Notify;

/// What a write needs besides its input: the request id to stamp on the event, the relay's
/// wake-up signal to pull after commit, and the creation batcher when there is one.
pub struct WriteContext<'a> {
    pub correlation_id: &'a str,
    pub relay_wake: &'a Notify,
    /// Where user creations go to be written together (PostgreSQL); `None` writes each in
    /// its own transaction.
    pub creates: Option<&'a create_batch::CreateBatcher>,
}

impl WriteContext<'_> {
    /// Called after a commit: the relay publishes the new row now instead of at its next poll.
    pub fn committed(&self) {
        self.relay_wake.notify_one();
    }
}
