//! `OutboxRelay`: publishes outbox rows in order, with pipelined publisher confirms, and marks
//! them published only after the broker confirms. Woken at once by a commit in this process,
//! and polling for rows written by other instances or before a restart. On PostgreSQL, rows are
//! claimed with `FOR UPDATE SKIP LOCKED`, so several publishers never publish the same row.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use lapin::options::BasicPublishOptions;
use lapin::{Channel, PublisherConfirm};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::Notify;

use crate::config::OutboxSettings;
use crate::entities::publisher::outbox;
use crate::links::LinkFlag;
use crate::rabbitmq::amqp::{AmqpError, bounded, confirm_channel};
use crate::rabbitmq::backoff::Backoff;
use crate::rabbitmq::properties::{EnvelopeMeta, event_properties};
use crate::rabbitmq::topology::Topology;
use crate::shutdown::Shutdown;

/// Why a relay round failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The broker link failed: reconnect, the rows stay pending.
    #[error(transparent)]
    Broker(#[from] AmqpError),
    /// The database failed: try again at the next round.
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl From<lapin::Error> for RelayError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(AmqpError::Lapin(e))
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows confirmed by the broker and marked published.
    pub published: usize,
}

/// The outbox relay of one publisher process.
pub struct OutboxRelay {
    db: DatabaseConnection,
    pool: deadpool_lapin::Pool,
    topology: Topology,
    settings: OutboxSettings,
    window: usize,
    wake: Arc<Notify>,
    link: LinkFlag,
}

impl OutboxRelay {
    /// A relay over `db`, publishing through `pool` into `topology`'s exchange.
    pub fn new(
        db: DatabaseConnection,
        pool: deadpool_lapin::Pool,
        topology: Topology,
        settings: OutboxSettings,
        window: usize,
        wake: Arc<Notify>,
        link: LinkFlag,
    ) -> Self {
        Self {
            db,
            pool,
            topology,
            settings,
            window: window.max(1),
            wake,
            link,
        }
    }

    /// Runs until `shutdown`: finishes the round in progress, then returns.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        let mut channel: Option<Channel> = None;
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(1));
        while !shutdown.is_stopping() {
            let ch = match &channel {
                Some(ch) if ch.status().connected() => ch.clone(),
                _ => match confirm_channel(&self.pool, &self.topology).await {
                    Ok(ch) => {
                        tracing::info!(exchange = %self.topology.exchange(), "relay connected to the broker");
                        self.link.set(true);
                        backoff.reset();
                        channel = Some(ch.clone());
                        ch
                    }
                    Err(e) => {
                        self.link.set(false);
                        crate::telemetry::reconnect("relay");
                        let d = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "relay cannot reach the broker");
                        shutdown.sleep(d).await;
                        continue;
                    }
                },
            };
            match self.round(&ch).await {
                Ok(r) if r.claimed as u64 >= self.settings.batch_size => continue,
                Ok(_) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.wait() => {}
                    }
                }
                Err(RelayError::Broker(e)) => {
                    self.link.set(false);
                    channel = None;
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "relay lost the broker; rows stay pending");
                    shutdown.sleep(d).await;
                }
                Err(RelayError::Database(e)) => {
                    tracing::warn!(error = %e, "relay cannot read the outbox");
                    shutdown.sleep(poll).await;
                }
            }
        }
        tracing::info!("relay stopped");
    }

    /// Claims one batch, publishes it and marks what the broker confirmed.
    pub async fn round(&self, channel: &Channel) -> Result<RoundReport, RelayError> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Row locks held until commit: other relays skip these rows.
            let txn = self.db.begin().await?;
            // Losing this commit in a database crash only means publishing the rows again,
            // which consumers absorb (inbox + version guards): no need to wait for the fsync.
            txn.execute_unprepared("SET LOCAL synchronous_commit = off")
                .await?;
            let report = self.claim_and_publish(&txn, channel, true).await;
            txn.commit().await?;
            report
        } else {
            // SQLite has one writer connection: do not hold it while waiting on the broker.
            self.claim_and_publish(&self.db, channel, false).await
        }
    }

    async fn claim_and_publish<C: ConnectionTrait>(
        &self,
        conn: &C,
        channel: &Channel,
        lock: bool,
    ) -> Result<RoundReport, RelayError> {
        let mut q = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(self.settings.batch_size);
        if lock {
            q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let rows = q.all(conn).await?;
        let mut report = RoundReport {
            claimed: rows.len(),
            published: 0,
        };
        let mut first_error = None;
        for chunk in rows.chunks(self.window) {
            let (confirmed, error) = self.publish_chunk(channel, chunk).await;
            if !confirmed.is_empty() {
                outbox::Entity::update_many()
                    .col_expr(outbox::Column::PublishedAt, Expr::value(Utc::now()))
                    .filter(outbox::Column::Id.is_in(confirmed.iter().copied()))
                    .exec(conn)
                    .await?;
                report.published += confirmed.len();
            }
            if let Some(e) = error {
                first_error = Some(e);
                break;
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }

    /// Publishes `rows` without waiting, then collects every confirm. Returns the ids the
    /// broker confirmed, and the error that stopped it if any.
    async fn publish_chunk(
        &self,
        channel: &Channel,
        rows: &[outbox::Model],
    ) -> (Vec<i64>, Option<AmqpError>) {
        let exchange = self.topology.exchange();
        let mut pending: Vec<(i64, PublisherConfirm)> = Vec::with_capacity(rows.len());
        let mut error = None;
        for row in rows {
            let meta: EnvelopeMeta = match serde_json::from_str(&row.payload) {
                Ok(m) => m,
                Err(e) => {
                    // Written by this service, so this cannot happen short of manual edits.
                    tracing::error!(outbox_id = row.id, error = %e, "outbox row is not an envelope; skipped");
                    continue;
                }
            };
            let published = bounded(channel.basic_publish(
                exchange.as_str().into(),
                row.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                row.payload.as_bytes(),
                event_properties(&meta),
            ))
            .await;
            match published {
                Ok(confirm) => pending.push((row.id, confirm)),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut confirmed = Vec::with_capacity(pending.len());
        let waiting = std::time::Instant::now();
        for (id, confirm) in pending {
            if error.is_some() {
                // The link already failed: unconfirmed rows stay pending for the next attempt.
                break;
            }
            match bounded(confirm).await {
                Ok(c) if c.is_ack() => match c.take_message() {
                    None => confirmed.push(id),
                    Some(returned) => {
                        tracing::warn!(outbox_id = id, reply = ?returned.reply_text, "event unroutable; kept pending");
                        error.get_or_insert(AmqpError::NotAccepted("unroutable".into()));
                    }
                },
                Ok(_) => {
                    tracing::warn!(outbox_id = id, "broker nacked an event; kept pending");
                    error.get_or_insert(AmqpError::NotAccepted("nack".into()));
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        metrics::histogram!("zealsync_publish_confirm_seconds")
            .record(waiting.elapsed().as_secs_f64());
        metrics::counter!("zealsync_events_published_total").increment(confirmed.len() as u64);
        (confirmed, error)
    }
}
