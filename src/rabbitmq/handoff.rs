//! `Handoff`: the writer gives the outbox rows it has just committed straight to its own
//! relay, which publishes them at once instead of finding them with a claiming query. A row
//! handed over is written with `claimed_until` a lease ahead: until then other relays, and
//! this one's polling, leave it alone; if this process dies before publishing it, any relay
//! takes it once the lease has run out. The queue is bounded: a write that finds it full
//! writes its row unclaimed and wakes the relay, as without a hand-off.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::entities::publisher::outbox;

/// The writers' end of the hand-off (cheap to clone).
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::Sender<outbox::Model>,
    lease: Duration,
}

/// A place in the relay's queue for one row, reserved before the write (so a committed row
/// is never refused), and given back if the write fails.
pub struct Slot {
    permit: mpsc::OwnedPermit<outbox::Model>,
    until: DateTime<Utc>,
}

impl Handoff {
    /// A hand-off holding up to `capacity` rows, each claimed for `lease`, and the relay's end.
    pub fn channel(capacity: usize, lease: Duration) -> (Self, mpsc::Receiver<outbox::Model>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx, lease }, rx)
    }

    /// A slot for one row; `None` when the relay is that far behind (or stopped).
    pub fn reserve(&self) -> Option<Slot> {
        let permit = self.tx.clone().try_reserve_owned().ok()?;
        Some(Slot {
            permit,
            until: later(Utc::now(), self.lease),
        })
    }
}

impl Slot {
    /// The `claimed_until` to write the row with.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }

    /// Gives the committed `row` to the relay.
    pub fn send(self, row: outbox::Model) {
        self.permit.send(row);
    }
}

/// Whether the relay may still publish a handed-over `row` at `now`: only in the first half of
/// its lease, so it never races a relay that takes the row once the lease has run out (the
/// margin absorbs a confirm wait and clock skew between hosts).
pub fn still_ours(row: &outbox::Model, lease: Duration, now: DateTime<Utc>) -> bool {
    row.claimed_until
        .is_some_and(|until| later(now, lease / 2) < until)
}

/// `t + d`, saturating.
fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
