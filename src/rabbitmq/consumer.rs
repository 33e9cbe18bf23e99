//! `QueueConsumer`: consumes one group's work queue, routes each message to its handler and
//! acks only after the handler's effect is committed. A transient failure goes to a retry
//! queue (confirmed before the ack); a permanent one, or too many attempts, is parked.

use std::sync::Arc;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::SecretUrl;
use crate::handlers::{HandlerError, Outcome};
use crate::links::LinkFlag;
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
    Wait(String),
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
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => {
                    // Stop new deliveries; unacked prefetched ones go back to the queue on close.
                    let _ = bounded(channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())).await;
                    let _ = bounded(conn.close(200, "shutdown".into())).await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => self.handle(&channel, &publisher, delivery, shutdown).await?,
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

    /// Applies one delivery and settles it.
    async fn handle(
        &self,
        channel: &Channel,
        publisher: &Channel,
        delivery: Delivery,
        shutdown: &mut Shutdown,
    ) -> Result<(), AmqpError> {
        let routing_key = original_routing_key(&delivery.properties, delivery.routing_key.as_str());
        let attempt = attempts(&delivery.properties) + 1;
        let mut waiting = Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(2),
        );
        let mut waits = 0u32;
        let mut handler = "none";
        let trace = traceparent_of(&delivery.properties).unwrap_or_default();
        let verdict = loop {
            match self
                .apply(&routing_key, &delivery.data, attempt, &trace, &mut handler)
                .await
            {
                Verdict::Wait(reason) => {
                    // The store is down: hold this message (unacked) and try it again in place;
                    // every message behind it would fail the same way.
                    if waits.is_multiple_of(20) {
                        tracing::warn!(queue = %self.queue(), routing_key, reason, "store unavailable; holding the queue until it is back");
                    }
                    waits += 1;
                    if shutdown.sleep(waiting.next_delay()).await {
                        bounded(channel.basic_nack(
                            delivery.delivery_tag,
                            BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            },
                        ))
                        .await?;
                        return Ok(());
                    }
                }
                other => break other,
            }
        };
        if waits > 0 {
            tracing::info!(queue = %self.queue(), waits, "store is back; resuming");
        }
        match verdict {
            Verdict::Wait(_) => {}
            Verdict::Done(outcome, lag_ms) => {
                self.stats
                    .handled(self.group, outcome, lag_ms.max(0) as u64);
                self.count(handler, outcome_label(outcome));
                if outcome == Outcome::Applied {
                    metrics::histogram!("zealsync_sync_lag_seconds", "queue" => self.group.as_str())
                        .record(lag_ms.max(0) as f64 / 1000.0);
                }
                bounded(delivery.ack(BasicAckOptions::default())).await?;
            }
            Verdict::Retry(reason) => {
                let delay = self.topology.delay_for(attempt);
                let queue = self.topology.retry_queue(self.group, delay);
                let props = with_attempts(&delivery.properties, attempt, &reason, &routing_key);
                tracing::warn!(
                    queue = %self.queue(), routing_key, attempt, retry_in_ms = delay,
                    event_id = ?delivery.properties.message_id().as_ref().map(|m| m.as_str()),
                    correlation_id = ?delivery.properties.correlation_id().as_ref().map(|m| m.as_str()),
                    reason, "handler failed; retrying later"
                );
                publish_confirmed(publisher, "", &queue, &delivery.data, props).await?;
                self.stats.retried(self.group);
                self.count(handler, "retried");
                bounded(delivery.ack(BasicAckOptions::default())).await?;
            }
            Verdict::Park(reason, event_id) => {
                let queue = self.queue();
                let msg = ParkedMessage {
                    event_id,
                    routing_key: &routing_key,
                    source_queue: &queue,
                    reason: &reason,
                    attempts: attempt,
                    payload: &delivery.data,
                    properties: &delivery.properties,
                };
                tracing::error!(
                    queue = %queue, routing_key, attempt, event_id = ?event_id,
                    correlation_id = ?delivery.properties.correlation_id().as_ref().map(|m| m.as_str()),
                    reason, "message parked"
                );
                match self.parking.park(publisher, msg).await {
                    Ok(_) => {
                        self.stats.parked(self.group);
                        self.count(handler, "parked");
                        bounded(delivery.ack(BasicAckOptions::default())).await?;
                    }
                    Err(e) => {
                        // Nothing is lost: the message goes back and is tried again.
                        tracing::warn!(error = %e, "cannot park the message now; requeued");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        bounded(channel.basic_nack(
                            delivery.delivery_tag,
                            BasicNackOptions {
                                requeue: true,
                                ..Default::default()
                            },
                        ))
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes, routes and applies one message; `handler` is set to the handler's name once known.
    async fn apply(
        &self,
        routing_key: &str,
        body: &[u8],
        attempt: u32,
        trace: &str,
        handler_name: &mut &'static str,
    ) -> Verdict {
        let event = match Envelope::decode(body) {
            Ok(e) => e,
            Err(e) => return Verdict::Park(e.to_string(), None),
        };
        let (event_type, handler) = match self.router.route(routing_key) {
            Ok(r) => r,
            Err(e) => return Verdict::Park(e.to_string(), Some(event.event_id)),
        };
        *handler_name = handler.name();
        if event_type != event.event_type {
            return Verdict::Park(
                format!(
                    "routing key {routing_key} does not match event_type {}",
                    event.event_type
                ),
                Some(event.event_id),
            );
        }
        let span = tracing::info_span!(
            "handle_event",
            handler = handler.name(),
            event_id = %event.event_id,
            event_type = %event.event_type,
            correlation_id = event.correlation_id.as_deref().unwrap_or(""),
            version = event.version,
            attempt,
            traceparent = trace,
        );
        let result = {
            use tracing::Instrument;
            handler.apply(&event).instrument(span.clone()).await
        };
        match result {
            Ok(outcome) => {
                let lag = (Utc::now() - event.occurred_at).num_milliseconds();
                span.in_scope(|| tracing::info!(?outcome, lag_ms = lag, "event handled"));
                Verdict::Done(outcome, lag)
            }
            Err(HandlerError::Permanent(m)) => Verdict::Park(m, Some(event.event_id)),
            Err(HandlerError::Unavailable(m)) => Verdict::Wait(m),
            Err(HandlerError::Transient(m)) if attempt >= self.max_attempts => Verdict::Park(
                format!("gave up after {attempt} attempts: {m}"),
                Some(event.event_id),
            ),
            Err(HandlerError::Transient(m)) => Verdict::Retry(m),
        }
    }
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Stale => "stale",
    }
}
