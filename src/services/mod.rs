//! Business rules of the publisher. Every write commits the entity row and its outbox row
//! in ONE transaction, then hands the row to the relay (or wakes it).

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

use crate::entities::publisher::outbox as outbox_row;
use crate::rabbitmq::handoff::{Handoff, Slot};

/// What a write needs besides its input: the request id to stamp on the event, the relay to
/// give the committed row to, and the creation batcher when there is one.
pub struct WriteContext<'a> {
    pub correlation_id: &'a str,
    pub relay_wake: &'a Notify,
    /// The relay's hand-off (PostgreSQL); `None` leaves rows for the relay to claim.
    pub handoff: Option<&'a Handoff>,
    /// Where user creations go to be written together (PostgreSQL); `None` writes each in
    /// its own transaction.
    pub creates: Option<&'a create_batch::CreateBatcher>,
}

impl WriteContext<'_> {
    /// Before the write: a place in the relay's hand-off for its outbox row, if there is one.
    pub fn reserve(&self) -> Option<Slot> {
        self.handoff.and_then(Handoff::reserve)
    }

    /// After the commit: the relay publishes the new row now, handed over through `slot`, or
    /// claimed at its next round (woken now instead of at its next poll).
    pub fn committed(&self, slot: Option<Slot>, row: outbox_row::Model) {
        match slot {
            Some(slot) => slot.send(row),
            None => self.relay_wake.notify_one(),
        }
    }
}
