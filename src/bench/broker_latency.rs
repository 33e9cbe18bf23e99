//! The broker's share of the sync lag: messages offered at a fixed rate to a topic exchange
//! bound to two queues (the subscriber's layout), consumed from both on a second connection
//! with manual acks; reports publish-to-delivery latency. No database and no handler: this is
//! the floor under ZealSync's lag at that rate on this machine.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::bench::broker::{Fanout, consume, sample_body};
use crate::bench::{BenchError, BenchReport, percentile};
use crate::config::Settings;

/// Header carrying the publish time (ns since the Unix epoch).
const SENT_HEADER: &str = "x-bench-sent-ns";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Offers `rate` messages/s for `secs` seconds and adds the latency figures to `report`.
pub async fn measure(
    settings: &Settings,
    queue_args: &FieldTable,
    rate: f64,
    secs: u64,
    report: &mut BenchReport,
) -> Result<(), BenchError> {
    let url = settings.rabbitmq.url.expose();
    let publisher = Connection::connect(url, ConnectionProperties::default()).await?;
    let consumer = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = publisher.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let base = format!("zsbench-lat-{}", uuid::Uuid::new_v4().simple());
    let fanout = Fanout::declare(&ch, &base, queue_args).await?;
    let n = (rate * secs as f64).round().max(1.0) as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut consumers = Vec::new();
    for q in &fanout.queues {
        let mut stream = consume(&consumer, q, settings.rabbitmq.prefetch, "zsbench-lat").await?;
        let tx = tx.clone();
        consumers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                let Some(Ok(d)) = stream.next().await else {
                    break;
                };
                let sent = d.properties.headers().as_ref().and_then(|h| {
                    match h.inner().get(SENT_HEADER) {
                        Some(AMQPValue::LongLongInt(v)) => Some(*v),
                        _ => None,
                    }
                });
                if let Some(sent) = sent {
                    let _ = tx.send((now_ns() - sent) as f64 / 1e6);
                }
                if d.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
                got += 1;
            }
        }));
    }
    drop(tx);

    let body = sample_body();
    let start = Instant::now();
    let mut confirms = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate.max(0.001));
        tokio::time::sleep_until(due.into()).await;
        let mut headers = FieldTable::default();
        headers.insert(SENT_HEADER.into(), AMQPValue::LongLongInt(now_ns()));
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        confirms.push(
            ch.basic_publish(
                fanout.exchange.as_str().into(),
                "user.created".into(),
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
    let mut latency = Vec::with_capacity(2 * n as usize);
    let collect = async {
        while let Some(ms) = rx.recv().await {
            latency.push(ms);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), collect).await;
    for c in consumers {
        c.abort();
    }
    fanout.remove(&ch).await;
    let _ = consumer.close(200, "bench done".into()).await;
    let _ = publisher.close(200, "bench done".into()).await;

    latency.sort_by(f64::total_cmp);
    let label = format!("publish-to-delivery at {rate:.0} msg/s, 2 queues");
    report.add(format!("{label}: p50"), percentile(&latency, 0.50), "ms");
    report.add(format!("{label}: p99"), percentile(&latency, 0.99), "ms");
    report.check(
        "every latency probe delivered to both queues",
        latency.len() as u64 == 2 * n,
    );
    Ok(())
}
