//! All AMQP topology in one place, so the management UI and the code read side by side:
//!
//! ```text
//! <prefix>.events (topic) --user.*, course.*--> <prefix>.subscriber.sql
//!                                          \--> <prefix>.subscriber.redis
//! <prefix>.subscriber.<group>.retry.<ms>  (TTL, dead-letters back to its work queue)
//! <prefix>.dead-letters                   (parked messages, with their reason)
//! ```
//!
//! Both services declare all of it, idempotently: events published before the first subscriber
//! starts wait in the queues instead of being dropped as unroutable.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::config::{QueueType, RabbitSettings, RetrySettings};

/// The handler groups, one work queue each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// SQL projections in the subscriber's database.
    Sql,
    /// Redis hashes, sets and change notifications.
    Redis,
}

impl Group {
    /// Both groups.
    pub const ALL: [Group; 2] = [Group::Sql, Group::Redis];

    /// The group's word in queue names and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sql => "sql",
            Self::Redis => "redis",
        }
    }
}

/// Routing-key patterns every work queue is bound with.
pub const BINDINGS: [&str; 2] = ["user.*", "course.*"];

/// Names and arguments derived from the settings.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
    expires_ms: Option<u32>,
    delays_ms: Vec<u64>,
}

impl Topology {
    /// The topology for `rabbit.prefix` and the retry delays.
    pub fn new(rabbit: &RabbitSettings, retry: &RetrySettings) -> Self {
        Self {
            prefix: rabbit.prefix.clone(),
            queue_type: rabbit.queue_type,
            expires_ms: rabbit.queue_expires_ms,
            delays_ms: retry.delays_ms.clone(),
        }
    }

    /// `<prefix>.events`: the topic exchange every event goes through.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// `<prefix>.subscriber.<group>`: a group's work queue.
    pub fn work_queue(&self, group: Group) -> String {
        format!("{}.subscriber.{}", self.prefix, group.as_str())
    }

    /// `<prefix>.subscriber.<group>.retry.<ms>`: where a failed message waits before its next try.
    pub fn retry_queue(&self, group: Group, delay_ms: u64) -> String {
        format!("{}.retry.{delay_ms}", self.work_queue(group))
    }

    /// `<prefix>.dead-letters`: the parking lot.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letters", self.prefix)
    }

    /// The delay before attempt `attempt + 1` (1-based attempts so far), growing, then capped.
    pub fn delay_for(&self, attempts: u32) -> u64 {
        let i = (attempts.max(1) as usize - 1).min(self.delays_ms.len().saturating_sub(1));
        self.delays_ms.get(i).copied().unwrap_or(1000)
    }

    /// Every queue this topology has, for status pages and cleanup.
    pub fn queues(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in Group::ALL {
            out.push(self.work_queue(g));
            for d in &self.delays_ms {
                out.push(self.retry_queue(g, *d));
            }
        }
        out.push(self.dead_letter_queue());
        out
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        let kind = match self.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from(kind)),
        );
        if let Some(ms) = self.expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(i64::from(ms)));
        }
        args
    }

    /// Declares the exchange, work queues, retry queues, bindings and the parking lot.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for group in Group::ALL {
            let work = self.work_queue(group);
            channel
                .queue_declare(work.as_str().into(), durable, self.queue_args())
                .await?;
            for key in BINDINGS {
                channel
                    .queue_bind(
                        work.as_str().into(),
                        self.exchange().into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
            for delay in &self.delays_ms {
                let mut args = self.queue_args();
                args.insert(
                    "x-message-ttl".into(),
                    AMQPValue::LongLongInt(*delay as i64),
                );
                args.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(LongString::from("")),
                );
                args.insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(LongString::from(work.as_str())),
                );
                let name: ShortString = self.retry_queue(group, *delay).into();
                channel.queue_declare(name, durable, args).await?;
            }
        }
        channel
            .queue_declare(self.dead_letter_queue().into(), durable, self.queue_args())
            .await?;
        Ok(())
    }
}
