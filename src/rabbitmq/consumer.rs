//! `QueueConsumer`: consumes one group's work queue, routes each message to its handler and
//! acks only after the handler's effect is committed. A transient failure goes to a retry
//! queue (confirmed before the ack); a permanent one, or too many attempts, is parked.

use std::sync::Arc;

use chrono::Utc;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::SecretUrl;
use crate::handlers::{EventHandler, HandlerError, Outcome};
use crate::links::LinkFlag;
use crate::rabbitmq::acks::HeldAcks;
use crate::rabbitmq::amqp::{AmqpError, bounded};
use crate::rabbitmq::backoff::Backoff;
use crate::rabbitmq::envelope::Envelope;
use crate::rabbitmq::parking::{DeadLetterStore, ParkedMessage, publish_confirmed};
use crate::rabbitmq::properties::{attempts, original_routing_key, traceparent_of, with_attempts};
use crate::rabbitmq::router::Router;
use crate::rabbitmq::stats::SyncStats;
use crate::rabbitmq::topology::{Group, Topology};
use crate::shutdown::Shutdown;

/// What to do with a delivery once its handler has answered.
enum Verdict {
    Done(Outcome, i64),
    Retry(String),
    Park(String, Option<uuid::Uuid>),
}

/// The consumer of one group's queue.
pub struct QueueConsumer {
    pub group: Group,
    pub url: SecretUrl,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub topology: Topology,
    pub router: Router,
    pub parking: DeadLetterStore,
    pub stats: Arc<SyncStats>,
    pub link: LinkFlag,
}

impl QueueConsumer {
    /// Consumes until `shutdown`, reconnecting with backoff whenever the link fails.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        while !shutdown.is_stopping() {
            match self.session(&mut shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    self.link.set(false);
                    crate::telemetry::reconnect(match self.group {
                        Group::Sql => "consumer_sql",
                        Group::Redis => "consumer_redis",
                    });
                    let d = backoff.next_delay();
                    tracing::warn!(queue = %self.queue(), error = %e, retry_in_ms = d.as_millis() as u64, "consumer lost the broker");
                    shutdown.sleep(d).await;
                }
            }
        }
        self.link.set(false);
        tracing::info!(queue = %self.queue(), "consumer stopped");
    }

    fn count(&self, handler: &'static str, outcome: &'static str) {
        metrics::counter!(
            "zealsync_events_consumed_total",
            "queue" => self.group.as_str(),
            "handler" => handler,
            "outcome" => outcome
        )
        .increment(1);
    }

    fn queue(&self) -> String {
        self.topology.work_queue(self.group)
    }

    /// One connection's life: declare, consume, handle; `Ok` only on shutdown.
    async fn session(
        &self,
        shutdown: &mut Shutdown,
        backoff: &mut Backoff,
    ) -> Result<(), AmqpError> {
        let name = format!("zealsync-subscriber-{}", self.group.as_str());
        let conn = bounded(Connection::connect(
            self.url.expose(),
            ConnectionProperties::default().with_connection_name(name.clone().into()),
        ))
        .await?;
        let channel = bounded(conn.create_channel()).await?;
        bounded(self.topology.declare(&channel)).await?;
        bounded(channel.basic_qos(self.prefetch, BasicQosOptions::default())).await?;
        let publisher = bounded(conn.create_channel()).await?;
        bounded(publisher.confirm_select(ConfirmSelectOptions::default())).await?;
        let tag = format!("{name}-{}", uuid::Uuid::now_v7().simple());
        let mut deliveries = bounded(channel.basic_consume(
            self.queue().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await?;
        self.link.set(true);
        backoff.reset();
        tracing::info!(queue = %self.queue(), prefetch = self.prefetch, "consuming");
        // A link that dies while idle may not wake the delivery stream: look at it every second.
        let mut watchdog = tokio::time::interval(std::time::Duration::from_secs(1));
        // Acks of applied batches, held to go out together.
        let mut held = HeldAcks::default();
        loop {
            let ack_due = held.due();
            tokio::select! {
                biased;
                _ = shutdown.wait() => {
                    // Stop new deliveries; unacked prefetched ones go back to the queue on close.
                    let _ = bounded(channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())).await;
                    held.flush(&channel).await?;
                    let _ = bounded(conn.close(200, "shutdown".into())).await;
                    return Ok(());
                }
                _ = tokio::time::sleep_until(ack_due.unwrap_or_else(tokio::time::Instant::now)), if ack_due.is_some() => {
                    held.flush(&channel).await?;
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        // Take what else has already arrived, up to the prefetch: one batch.
                        let mut batch = vec![delivery];
                        let mut failed = None;
                        while batch.len() < usize::from(self.prefetch.max(1)) {
                            match deliveries.next().now_or_never() {
                                Some(Some(Ok(d))) => batch.push(d),
                                Some(Some(Err(e))) => {
                                    failed = Some(e);
                                    break;
                                }
                                _ => break,
                            }
                        }
                        let items = self.apply_batch(batch, shutdown).await;
                        self.settle(&channel, &publisher, items, &mut held).await?;
                        if held.crowded(self.prefetch) {
                            held.flush(&channel).await?;
                        }
                        if let Some(e) = failed {
                            return Err(e.into());
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(AmqpError::NotAccepted("consumer cancelled by the broker".into())),
                },
                _ = watchdog.tick() => {
                    if !conn.status().connected() || !channel.status().connected() {
                        return Err(AmqpError::NotAccepted("connection closed".into()));
                    }
                }
            }
        }
    }

    /// Applies a batch of deliveries (in arrival order); returns them with their verdicts,
    /// to be settled.
    async fn apply_batch(&self, deliveries: Vec<Delivery>, shutdown: &mut Shutdown) -> Vec<Item> {
        let mut items: Vec<Item> = deliveries.into_iter().map(|d| self.prepare(d)).collect();
        let mut waiting = Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(2),
        );
        let mut waits = 0u32;
        loop {
            let reason = self.apply_pending(&mut items).await;
            let Some(reason) = reason else { break };
            // A store is down: hold these messages (unacked) and try them again in place;
            // every message behind them would fail the same way.
            if waits.is_multiple_of(20) {
                tracing::warn!(queue = %self.queue(), reason, "store unavailable; holding the queue until it is back");
            }
            waits += 1;
            if shutdown.sleep(waiting.next_delay()).await {
                break;
            }
        }
        if waits > 0 {
            tracing::info!(queue = %self.queue(), waits, "store is back; resuming");
        }
        items
    }

    /// Decodes and routes one delivery; what cannot be applied is marked for parking.
    fn prepare(&self, delivery: Delivery) -> Item {
        let routing_key = original_routing_key(&delivery.properties, delivery.routing_key.as_str());
        let attempt = attempts(&delivery.properties) + 1;
        let trace = traceparent_of(&delivery.properties).unwrap_or_default();
        let mut item = Item {
            delivery,
            routing_key,
            attempt,
            trace,
            handler: None,
            event: None,
            verdict: None,
        };
        let event = match Envelope::decode(&item.delivery.data) {
            Ok(e) => e,
            Err(e) => {
                item.verdict = Some(Verdict::Park(e.to_string(), None));
                return item;
            }
        };
        match self.router.route(&item.routing_key) {
            Err(e) => item.verdict = Some(Verdict::Park(e.to_string(), Some(event.event_id))),
            Ok((event_type, _)) if event_type != event.event_type => {
                item.verdict = Some(Verdict::Park(
                    format!(
                        "routing key {} does not match event_type {}",
                        item.routing_key, event.event_type
                    ),
                    Some(event.event_id),
                ))
            }
            Ok((_, handler)) => item.handler = Some(handler.clone()),
        }
        item.event = Some(event);
        item
    }

    /// Applies every item without a verdict, one batch per handler. Returns the reason when a
    /// store was unavailable (those items keep no verdict).
    async fn apply_pending(&self, items: &mut [Item]) -> Option<String> {
        let mut unavailable = None;
        let handlers: Vec<Arc<dyn EventHandler>> = {
            let mut hs: Vec<Arc<dyn EventHandler>> = Vec::new();
            for it in items.iter().filter(|i| i.verdict.is_none()) {
                if let Some(h) = &it.handler
                    && !hs.iter().any(|x| x.name() == h.name())
                {
                    hs.push(h.clone());
                }
            }
            hs
        };
        for handler in handlers {
            let idx: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, i)| {
                    i.verdict.is_none()
                        && i.handler
                            .as_ref()
                            .is_some_and(|h| h.name() == handler.name())
                })
                .map(|(n, _)| n)
                .collect();
            let events: Vec<&Envelope> = idx
                .iter()
                .filter_map(|n| items[*n].event.as_ref())
                .collect();
            let results = handler.apply_batch(&events).await;
            let mut handled: Vec<String> = Vec::with_capacity(results.len());
            for (n, result) in idx.into_iter().zip(results) {
                let item = &mut items[n];
                let Some(event) = item.event.as_ref() else {
                    continue;
                };
                item.verdict = match result {
                    Ok(outcome) => {
                        let lag = (Utc::now() - event.occurred_at).num_milliseconds();
                        handled.push(event.correlation_id.clone().unwrap_or_default());
                        tracing::debug!(
                            handler = handler.name(),
                            event_id = %event.event_id,
                            event_type = %event.event_type,
                            correlation_id = event.correlation_id.as_deref().unwrap_or(""),
                            version = event.version,
                            attempt = item.attempt,
                            traceparent = %item.trace,
                            ?outcome,
                            lag_ms = lag,
                            "event handled"
                        );
                        Some(Verdict::Done(outcome, lag))
                    }
                    Err(HandlerError::Permanent(m)) => Some(Verdict::Park(m, Some(event.event_id))),
                    Err(HandlerError::Unavailable(m)) => {
                        unavailable = Some(m);
                        None
                    }
                    Err(HandlerError::Transient(m)) if item.attempt >= self.max_attempts => {
                        Some(Verdict::Park(
                            format!("gave up after {} attempts: {m}", item.attempt),
                            Some(event.event_id),
                        ))
                    }
                    Err(HandlerError::Transient(m)) => Some(Verdict::Retry(m)),
                };
            }
            if !handled.is_empty() {
                // One line per batch and handler; `grep <request id> logs/*` still finds it.
                tracing::info!(
                    queue = %self.queue(),
                    handler = handler.name(),
                    events = handled.len(),
                    correlation_ids = %handled.join(","),
                    "events handled"
                );
            }
        }
        unavailable
    }

    /// Acks what was applied (held in `held`, to go out with later batches as one multiple-ack,
    /// when the whole batch was), sends failures to a retry queue or the parking lot first, and
    /// gives back what could not be applied.
    async fn settle(
        &self,
        channel: &Channel,
        publisher: &Channel,
        items: Vec<Item>,
        held: &mut HeldAcks,
    ) -> Result<(), AmqpError> {
        let all_done = items
            .iter()
            .all(|i| matches!(i.verdict, Some(Verdict::Done(..))));
        let last_tag = items.last().map(|i| i.delivery.delivery_tag);
        for item in &items {
            if let Some(Verdict::Done(outcome, lag_ms)) = item.verdict {
                self.stats
                    .handled(self.group, outcome, lag_ms.max(0) as u64);
                self.count(item.handler_name(), outcome_label(outcome));
                if outcome == Outcome::Applied {
                    metrics::histogram!("zealsync_sync_lag_seconds", "queue" => self.group.as_str())
                        .record(lag_ms.max(0) as f64 / 1000.0);
                }
            }
        }
        if all_done {
            if let Some(tag) = last_tag {
                held.hold(tag, items.len());
            }
            return Ok(());
        }
        // Settled one by one, in order after what is held.
        held.flush(channel).await?;
        for item in items {
            self.settle_one(channel, publisher, item).await?;
        }
        Ok(())
    }

    async fn settle_one(
        &self,
        channel: &Channel,
        publisher: &Channel,
        item: Item,
    ) -> Result<(), AmqpError> {
        let delivery = &item.delivery;
        let requeue = || {
            bounded(channel.basic_nack(
                delivery.delivery_tag,
                BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                },
            ))
        };
        match &item.verdict {
            None => requeue().await?,
            Some(Verdict::Done(..)) => {
                bounded(delivery.ack(BasicAckOptions::default())).await?;
            }
            Some(Verdict::Retry(reason)) => {
                let delay = self.topology.delay_for(item.attempt);
                let queue = self.topology.retry_queue(self.group, delay);
                let props = with_attempts(
                    &delivery.properties,
                    item.attempt,
                    reason,
                    &item.routing_key,
                );
                tracing::warn!(
                    queue = %self.queue(), routing_key = %item.routing_key, attempt = item.attempt, retry_in_ms = delay,
                    event_id = ?delivery.properties.message_id().as_ref().map(|m| m.as_str()),
                    correlation_id = ?delivery.properties.correlation_id().as_ref().map(|m| m.as_str()),
                    reason, "handler failed; retrying later"
                );
                publish_confirmed(publisher, "", &queue, &delivery.data, props).await?;
                self.stats.retried(self.group);
                self.count(item.handler_name(), "retried");
                bounded(delivery.ack(BasicAckOptions::default())).await?;
            }
            Some(Verdict::Park(reason, event_id)) => {
                let queue = self.queue();
                let msg = ParkedMessage {
                    event_id: *event_id,
                    routing_key: &item.routing_key,
                    source_queue: &queue,
                    reason,
                    attempts: item.attempt,
                    payload: &delivery.data,
                    properties: &delivery.properties,
                };
                tracing::error!(
                    queue = %queue, routing_key = %item.routing_key, attempt = item.attempt, event_id = ?event_id,
                    correlation_id = ?delivery.properties.correlation_id().as_ref().map(|m| m.as_str()),
                    reason, "message parked"
                );
                match self.parking.park(publisher, msg).await {
                    Ok(_) => {
                        self.stats.parked(self.group);
                        self.count(item.handler_name(), "parked");
                        bounded(delivery.ack(BasicAckOptions::default())).await?;
                    }
                    Err(e) => {
                        // Nothing is lost: the message goes back and is tried again.
                        tracing::warn!(error = %e, "cannot park the message now; requeued");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        requeue().await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One delivery on its way through a batch.
struct Item {
    delivery: Delivery,
    routing_key: String,
    attempt: u32,
    trace: String,
    handler: Option<Arc<dyn EventHandler>>,
    event: Option<Envelope>,
    /// `None` until applied (or while its store is unavailable).
    verdict: Option<Verdict>,
}

impl Item {
    fn handler_name(&self) -> &'static str {
        self.handler.as_ref().map_or("none", |h| h.name())
    }
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Stale => "stale",
    }
}
