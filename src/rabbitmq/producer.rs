//! `OutboxRelay`: publishes outbox rows in order, with pipelined publisher confirms, and marks
//! them published only after the broker confirms. Woken at once by a commit in this process,
//! and polling for rows written by other instances or before a restart. On PostgreSQL, rows are
//! claimed with `FOR UPDATE SKIP LOCKED`, so several publishers never publish the same row, and
//! the next round is claimed and published while earlier ones await their confirms (up to
//! [`ROUNDS_IN_FLIGHT`] rounds and `confirm_window` publishes), so the database and the broker
//! work side by side. Rows this process's writers hand over (see [`crate::rabbitmq::handoff`])
//! skip the claim: they are published as they arrive and marked in one statement.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use lapin::options::BasicPublishOptions;
use lapin::{Channel, PublisherConfirm};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::{Notify, mpsc};

use crate::config::OutboxSettings;
use crate::entities::publisher::outbox;
use crate::links::LinkFlag;
use crate::rabbitmq::amqp::{AmqpError, bounded, confirm_channel};
use crate::rabbitmq::backoff::Backoff;
use crate::rabbitmq::handoff::still_ours;
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

/// Rounds one relay keeps awaiting confirms at once on PostgreSQL (and so the connections its
/// pool needs). Under light load rounds are small, and a new commit goes out at once instead
/// of waiting for an earlier round's confirms; under heavy load the window bounds them.
pub const ROUNDS_IN_FLIGHT: usize = 4;

/// The outbox relay of one publisher process.
pub struct OutboxRelay {
    db: DatabaseConnection,
    pool: deadpool_lapin::Pool,
    topology: Topology,
    settings: OutboxSettings,
    window: usize,
    wake: Arc<Notify>,
    link: LinkFlag,
    handed: Option<Handed>,
}

/// Rows handed over by this process's writers, in commit order.
struct Handed {
    rx: mpsc::Receiver<outbox::Model>,
    /// Received, not yet published.
    carry: VecDeque<outbox::Model>,
    lease: Duration,
}

impl Handed {
    /// Up to `limit` rows still ours to publish, and the ids of those whose claim is too close
    /// to running out (left to the claim path).
    fn take(&mut self, limit: usize) -> (Vec<outbox::Model>, Vec<i64>) {
        while self.carry.len() < limit {
            match self.rx.try_recv() {
                Ok(row) => self.carry.push_back(row),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let (mut rows, mut stale) = (Vec::new(), Vec::new());
        while rows.len() < limit {
            let Some(row) = self.carry.pop_front() else {
                break;
            };
            if still_ours(&row, self.lease, now) {
                rows.push(row);
            } else {
                stale.push(row.id);
            }
        }
        (rows, stale)
    }

    /// Waits for the next row and keeps it; pending for ever once every writer is gone.
    async fn receive(handed: &mut Option<Handed>) {
        match handed {
            Some(h) => match h.rx.recv().await {
                Some(row) => h.carry.push_back(row),
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// The ids of every row received or waiting, now given up.
    fn drain(&mut self) -> Vec<i64> {
        while let Ok(row) = self.rx.try_recv() {
            self.carry.push_back(row);
        }
        self.carry.drain(..).map(|r| r.id).collect()
    }
}

/// A claimed batch whose rows went to the broker and await their confirms.
struct Sent {
    /// Holds the rows' locks until they are marked (PostgreSQL); `None` on SQLite.
    txn: Option<DatabaseTransaction>,
    claimed: usize,
    /// The rows of a handed-over round (empty for a claimed one): released if not confirmed.
    handed: Vec<i64>,
    pending: Vec<(i64, PublisherConfirm)>,
    /// Why publishing stopped early; the rows not sent stay pending.
    error: Option<AmqpError>,
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
            handed: None,
        }
    }

    /// Also publishes the rows this process's writers hand over through `rx` (see
    /// [`crate::rabbitmq::handoff::Handoff`]), claimed by them for `lease`.
    pub fn with_handoff(mut self, rx: mpsc::Receiver<outbox::Model>, lease: Duration) -> Self {
        self.handed = Some(Handed {
            rx,
            carry: VecDeque::new(),
            lease,
        });
        self
    }

    fn postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Rows claimed per round: a batch, never more than the confirm window.
    fn round_size(&self) -> usize {
        (self.settings.batch_size.max(1) as usize).min(self.window)
    }

    /// Rounds awaiting confirms at once. Each holds a connection of the relay's pool, which
    /// has this many. SQLite has no row locks to keep two rounds apart: one at a time.
    fn depth(&self) -> usize {
        if self.postgres() { ROUNDS_IN_FLIGHT } else { 1 }
    }

    /// Runs until `shutdown`: finishes the rounds in flight, then returns.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut handed = self.handed.take();
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
            match self.pump(&ch, poll, &mut shutdown, &mut handed).await {
                Ok(()) => break,
                Err(RelayError::Broker(e)) => {
                    self.link.set(false);
                    channel = None;
                    // Until the link is back, what was handed over goes the claim path's way.
                    if let Some(h) = handed.as_mut() {
                        self.release(&h.drain()).await;
                    }
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
        if let Some(h) = handed.as_mut() {
            // Published by the next relay to run, without waiting for the claims to run out.
            self.release(&h.drain()).await;
        }
        tracing::info!("relay stopped");
    }

    /// Gives up the claims on `ids` still unpublished, so any relay's claim takes them now.
    async fn release(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let released = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::ClaimedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(outbox::Column::Id.is_in(ids.iter().copied()))
            .filter(outbox::Column::PublishedAt.is_null())
            .exec(&self.db)
            .await;
        if let Err(e) = released {
            // The claims then simply run out.
            tracing::warn!(error = %e, rows = ids.len(), "cannot release handed-over rows");
        }
    }

    /// Claims and publishes rounds while earlier ones await their confirms, and marks each
    /// round in order as its confirms arrive. Returns `Ok` on shutdown, once the rounds in
    /// flight are settled, or the first failure, once the others are.
    async fn pump(
        &self,
        channel: &Channel,
        poll: Duration,
        shutdown: &mut Shutdown,
        handed: &mut Option<Handed>,
    ) -> Result<(), RelayError> {
        let depth = self.depth();
        // Publishes awaiting a confirm, over every round in flight: at most the window. A
        // round gives its share back as soon as its confirms are in, so the next round goes
        // out while it is still being marked; `freed` says so.
        let outstanding = AtomicUsize::new(0);
        let freed = Notify::new();
        let mut inflight = FuturesOrdered::new();
        let mut failure: Option<RelayError> = None;
        // Whether rows may be waiting to be claimed: after a full round, a wake-up or a poll
        // tick (also while handed-over rows keep the relay busy).
        let mut more = true;
        let mut claimed_at = Instant::now();
        loop {
            let stopping = shutdown.is_stopping() || failure.is_some();
            let unconfirmed = outstanding.load(Ordering::Acquire);
            let room = inflight.len() < depth && unconfirmed < self.window;
            if claimed_at.elapsed() >= poll {
                more = true;
            }
            if let Some(h) = handed.as_mut()
                && !stopping
                && room
            {
                let (rows, stale) = h.take(self.round_size().min(self.window - unconfirmed));
                self.release(&stale).await;
                if !rows.is_empty() {
                    let sent = self.send_handed(channel, rows).await;
                    outstanding.fetch_add(sent.pending.len(), Ordering::AcqRel);
                    let (outstanding, freed) = (&outstanding, &freed);
                    inflight.push_back(self.settle(sent, outstanding, freed));
                    continue;
                }
            }
            if more && !stopping && room {
                claimed_at = Instant::now();
                let limit = self.round_size().min(self.window - unconfirmed);
                match self.send_round(channel, limit).await {
                    Ok(sent) => {
                        more = sent.claimed >= limit && sent.error.is_none();
                        if sent.claimed == 0 {
                            sent.close().await;
                        } else {
                            outstanding.fetch_add(sent.pending.len(), Ordering::AcqRel);
                            let (outstanding, freed) = (&outstanding, &freed);
                            inflight.push_back(self.settle(sent, outstanding, freed));
                        }
                    }
                    Err(e) => failure = Some(e),
                }
                continue;
            }
            if inflight.is_empty() {
                if let Some(e) = failure {
                    return Err(e);
                }
                if shutdown.is_stopping() {
                    return Ok(());
                }
                let tick = poll.saturating_sub(claimed_at.elapsed());
                tokio::select! {
                    _ = self.wake.notified() => more = true,
                    _ = tokio::time::sleep(tick) => more = true,
                    _ = shutdown.wait() => {}
                    _ = Handed::receive(handed) => {}
                }
                continue;
            }
            let wanted = !more && !stopping && room;
            tokio::select! {
                settled = inflight.next() => {
                    if let Some(Err(e)) = settled {
                        failure.get_or_insert(e);
                    }
                }
                _ = self.wake.notified(), if wanted => more = true,
                _ = Handed::receive(handed), if !stopping && room => {}
                _ = freed.notified(), if !stopping => {}
            }
        }
    }

    /// Claims up to `limit` pending rows (locked on PostgreSQL) and publishes them without
    /// waiting for the confirms.
    async fn send_round(&self, channel: &Channel, limit: usize) -> Result<Sent, RelayError> {
        let txn = if self.postgres() {
            // The publisher gives the relay a pool with `synchronous_commit = off`: losing a
            // commit in a database crash only means publishing the rows again.
            Some(self.db.begin().await?)
        } else {
            // SQLite has one writer connection: do not hold it while waiting on the broker.
            None
        };
        // Rows handed to a relay are its own until their claim runs out.
        let mut q = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .filter(
                Condition::any()
                    .add(outbox::Column::ClaimedUntil.is_null())
                    .add(outbox::Column::ClaimedUntil.lt(Utc::now())),
            )
            .order_by_asc(outbox::Column::Id)
            .limit(limit as u64);
        let rows = match &txn {
            Some(txn) => {
                // Row locks held until commit: other relays, and this relay's next round, skip
                // these rows.
                q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                q.all(txn).await?
            }
            None => q.all(&self.db).await?,
        };
        let (pending, error) = self.publish(channel, &rows).await;
        Ok(Sent {
            txn,
            claimed: rows.len(),
            handed: Vec::new(),
            pending,
            error,
        })
    }

    /// Publishes rows handed over by this process's writers (already claimed for this relay)
    /// without waiting for the confirms.
    async fn send_handed(&self, channel: &Channel, rows: Vec<outbox::Model>) -> Sent {
        let (pending, error) = self.publish(channel, &rows).await;
        Sent {
            txn: None,
            claimed: rows.len(),
            handed: rows.iter().map(|r| r.id).collect(),
            pending,
            error,
        }
    }

    /// Waits for a round's confirms, gives its share of the window back (`outstanding`, then
    /// `freed`), marks the confirmed rows published and commits.
    async fn settle(
        &self,
        sent: Sent,
        outstanding: &AtomicUsize,
        freed: &Notify,
    ) -> Result<(), RelayError> {
        let Sent {
            txn,
            handed,
            pending,
            mut error,
            ..
        } = sent;
        let sent_count = pending.len();
        let mut confirmed = Vec::with_capacity(sent_count);
        let waiting = Instant::now();
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
        // Settled one way or the other: none of these publishes is awaited any more.
        outstanding.fetch_sub(sent_count, Ordering::AcqRel);
        freed.notify_one();
        if !confirmed.is_empty() {
            let mark = outbox::Entity::update_many()
                .col_expr(outbox::Column::PublishedAt, Expr::value(Utc::now()))
                .filter(outbox::Column::Id.is_in(confirmed.iter().copied()));
            match &txn {
                Some(txn) => mark.exec(txn).await?,
                None => mark.exec(&self.db).await?,
            };
        }
        if let Some(txn) = txn {
            txn.commit().await?;
        }
        if error.is_some() && !handed.is_empty() {
            // Handed-over rows left unconfirmed go to the claim path at once.
            let unconfirmed: Vec<i64> = handed
                .into_iter()
                .filter(|id| !confirmed.contains(id))
                .collect();
            self.release(&unconfirmed).await;
        }
        metrics::counter!("zealsync_events_published_total").increment(confirmed.len() as u64);
        match error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Publishes `rows` without waiting. Returns their confirms, and the error that stopped it
    /// if any.
    async fn publish(
        &self,
        channel: &Channel,
        rows: &[outbox::Model],
    ) -> (Vec<(i64, PublisherConfirm)>, Option<AmqpError>) {
        let exchange = self.topology.exchange();
        let mut pending: Vec<(i64, PublisherConfirm)> = Vec::with_capacity(rows.len());
        let now = Utc::now();
        let delay = metrics::histogram!("zealsync_relay_delay_seconds");
        for row in rows {
            let waited = (now - row.created_at).num_microseconds().unwrap_or(0);
            delay.record(waited.max(0) as f64 / 1e6);
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
                Err(e) => return (pending, Some(e)),
            }
        }
        (pending, None)
    }
}

impl Sent {
    /// Ends an empty round.
    async fn close(self) {
        if let Some(txn) = self.txn {
            let _ = txn.commit().await;
        }
    }
}
