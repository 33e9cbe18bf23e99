//! `HeldAcks`: the acks of applied batches, held a few milliseconds to go out as one
//! multiple-ack. On a quorum queue every ack is an entry in the queue's replicated log, so
//! acking a batch at a time costs the broker nearly as much as the publishes; holding acks
//! briefly cuts that without delaying any effect (the effects are committed before an ack is
//! held). A crash before the flush only redelivers those messages, which the inbox absorbs.

use std::time::Duration;

use lapin::Channel;
use lapin::options::BasicAckOptions;
use tokio::time::Instant;

use crate::rabbitmq::amqp::{AmqpError, bounded};

/// How long an ack may be held.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// The acks held for one consumer's channel.
#[derive(Debug, Default)]
pub struct HeldAcks {
    /// The highest delivery tag held: a multiple-ack of it acks every earlier delivery.
    tag: Option<u64>,
    /// Deliveries held.
    count: usize,
    /// When the oldest held ack must go out.
    due: Option<Instant>,
}

impl HeldAcks {
    /// Holds the ack of every delivery up to `tag` (`count` of them, all applied).
    pub fn hold(&mut self, tag: u64, count: usize) {
        self.tag = Some(tag);
        self.count += count;
        self.due.get_or_insert_with(|| Instant::now() + ACK_DELAY);
    }

    /// When the held acks must go out; `None` when none are held.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether so many are held that the broker's prefetch window of `prefetch` would soon
    /// stop deliveries: flush now rather than at the deadline.
    pub fn crowded(&self, prefetch: u16) -> bool {
        self.count >= usize::from(prefetch.max(2)) / 2
    }

    /// Sends the held acks as one multiple-ack.
    pub async fn flush(&mut self, channel: &Channel) -> Result<(), AmqpError> {
        let tag = self.tag.take();
        self.count = 0;
        self.due = None;
        if let Some(tag) = tag {
            bounded(channel.basic_ack(tag, BasicAckOptions { multiple: true })).await?;
        }
        Ok(())
    }
}
