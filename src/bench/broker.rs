//! `bench broker`: the raw ceiling of the broker with lapin alone — confirmed persistent
//! publishes at the relay's window, then manual-ack consumption at the subscriber's prefetch.

use std::time::Instant;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::bench::{BenchError, BenchReport, progress};
use crate::config::{QueueType, Settings};

/// A body of the size of a typical user event.
pub fn sample_body() -> Vec<u8> {
    let env = crate::rabbitmq::envelope::Envelope::new(
        crate::rabbitmq::envelope::EventType::new(
            crate::rabbitmq::envelope::AggregateType::User,
            crate::rabbitmq::envelope::Action::Created,
        ),
        uuid::Uuid::now_v7(),
        1,
        Some(uuid::Uuid::now_v7().to_string()),
        serde_json::json!({"id": uuid::Uuid::now_v7(), "email": "someone@example.com", "name": "Some One",
            "role": "student", "version": 1, "created_at": chrono::Utc::now(), "updated_at": chrono::Utc::now()}),
    );
    env.encode()
}

/// Publishes and consumes `n` messages on a throw-away queue; then, when `latency_rate` is
/// above 0, offers that many messages/s for 10 s and reports publish-to-delivery latency.
pub async fn run(
    settings: &Settings,
    n: u64,
    latency_rate: f64,
    quiet: bool,
) -> Result<BenchReport, BenchError> {
    let conn = Connection::connect(
        settings.rabbitmq.url.expose(),
        ConnectionProperties::default(),
    )
    .await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = format!("zsbench-raw-{}", uuid::Uuid::new_v4().simple());
    let mut args = FieldTable::default();
    let kind = match settings.rabbitmq.queue_type {
        QueueType::Quorum => "quorum",
        QueueType::Classic => "classic",
    };
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(kind)),
    );
    declare_queue(&ch, &queue, &args).await?;
    let body = sample_body();
    let window = settings.rabbitmq.confirm_window.max(1) as u64;
    let bar = progress(n, "publish", quiet);
    let raw = |key: &str| {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        (key.to_string(), body.clone(), props)
    };
    let publish_secs = publish_all(&ch, "", n, window, &bar, |_| raw(&queue)).await?;
    bar.finish_and_clear();

    // The relay's case: each event routed by a topic exchange to the two subscriber queues.
    let fanout = Fanout::declare(&ch, &queue, &args).await?;
    let bar = progress(n, "publish x2", quiet);
    let fanout_secs = publish_all(&ch, &fanout.exchange, n, window, &bar, |_| {
        raw("user.created")
    })
    .await?;
    bar.finish_and_clear();
    fanout.remove(&ch).await;

    let mut consumer = consume(&conn, &queue, settings.rabbitmq.prefetch, "zsbench").await?;
    let bar = progress(n, "consume", quiet);
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        match consumer.next().await {
            Some(Ok(d)) => {
                d.ack(BasicAckOptions::default()).await?;
                got += 1;
                bar.inc(1);
            }
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    let consume_secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bench done".into()).await;

    let mut report = BenchReport::new("broker");
    report.add(
        format!("confirmed publishes/s (window {window})"),
        n as f64 / publish_secs,
        "msg/s",
    );
    report.add(
        format!("confirmed publishes/s to 2 bound queues (window {window})"),
        n as f64 / fanout_secs,
        "msg/s",
    );
    report.add(
        format!(
            "manual-ack consumes/s (prefetch {})",
            settings.rabbitmq.prefetch
        ),
        got as f64 / consume_secs,
        "msg/s",
    );
    report.check("all consumed", got == n);
    if latency_rate > 0.0 {
        crate::bench::broker_latency::measure(settings, &args, latency_rate, 10, &mut report)
            .await?;
    }
    Ok(report)
}

/// A topic exchange bound (`#`) to two durable queues: the subscriber's layout, without it.
pub struct Fanout {
    pub exchange: String,
    pub queues: [String; 2],
}

impl Fanout {
    /// Declares `<base>.events` and the queues `<base>.a` and `<base>.b` (with `args`).
    pub async fn declare(ch: &Channel, base: &str, args: &FieldTable) -> Result<Self, BenchError> {
        let exchange = format!("{base}.events");
        ch.exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        let queues = [format!("{base}.a"), format!("{base}.b")];
        for q in &queues {
            declare_queue(ch, q, args).await?;
            ch.queue_bind(
                q.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(Self { exchange, queues })
    }

    /// Deletes the queues and the exchange (best effort: they are scratch).
    pub async fn remove(&self, ch: &Channel) {
        for q in &self.queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = ch
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// Consumes `queue` with manual acks on a new channel of `conn`, `prefetch` unacked at most.
pub async fn consume(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    tag: &str,
) -> Result<lapin::Consumer, BenchError> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    Ok(ch
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// Declares a durable queue of the configured type.
async fn declare_queue(ch: &Channel, name: &str, args: &FieldTable) -> Result<(), BenchError> {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args.clone(),
    )
    .await?;
    Ok(())
}

/// One message to publish: routing key, body, properties.
pub type Message = (String, Vec<u8>, BasicProperties);

/// Publishes the `n` messages `message(i)` makes to `exchange`, `window` at a time, each batch
/// confirmed before the next; returns the seconds it took.
pub async fn publish_all(
    ch: &Channel,
    exchange: &str,
    n: u64,
    window: u64,
    bar: &indicatif::ProgressBar,
    mut message: impl FnMut(u64) -> Message,
) -> Result<f64, BenchError> {
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = window.max(1).min(n - sent);
        let mut confirms = Vec::with_capacity(batch as usize);
        for i in 0..batch {
            let (routing_key, body, props) = message(sent + i);
            confirms.push(
                ch.basic_publish(
                    exchange.into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await?,
            );
        }
        for c in confirms {
            c.await?;
        }
        sent += batch;
        bar.inc(batch);
    }
    Ok(start.elapsed().as_secs_f64())
}
