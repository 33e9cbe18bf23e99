//! `bench relay`: fills a scratch outbox with N rows, then times the relay publishing them.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::TransactionTrait;
use tokio::sync::Notify;

use crate::bench::scratch::{ScratchDb, delete_queues, isolated};
use crate::bench::{BenchError, BenchReport, progress};
use crate::config::{Settings, database};
use crate::links::LinkFlag;
use crate::migration::PublisherMigrator;
use crate::rabbitmq::amqp;
use crate::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};
use crate::rabbitmq::producer::{OutboxRelay, ROUNDS_IN_FLIGHT};
use crate::rabbitmq::topology::Topology;
use crate::services::outbox;

/// A user event as the API would write it.
pub fn user_event(i: u64) -> Envelope {
    let id = uuid::Uuid::now_v7();
    let now = chrono::Utc::now();
    Envelope::new(
        EventType::new(AggregateType::User, Action::Created),
        id,
        1,
        Some(uuid::Uuid::now_v7().to_string()),
        serde_json::json!({"id": id, "email": format!("bench{i}@bench.test"), "name": "Bench User",
            "role": "student", "version": 1, "created_at": now, "updated_at": now}),
    )
}

/// Runs the relay benchmark.
pub async fn run(settings: &Settings, n: u64, quiet: bool) -> Result<BenchReport, BenchError> {
    let s = isolated(settings);
    let scratch = ScratchDb::create(&settings.publisher.database_url).await?;
    let db = database::connect(&scratch.url).await?;
    database::migrate::<PublisherMigrator>(&db).await?;
    let bar = progress(n, "fill", quiet);
    let mut written = 0;
    while written < n {
        let batch = 1000.min(n - written);
        let txn = db.begin().await?;
        for i in 0..batch {
            outbox::append(&txn, &user_event(written + i), None).await?;
        }
        txn.commit().await?;
        written += batch;
        bar.inc(batch);
    }
    bar.finish_and_clear();

    let pool = amqp::pool(&s.rabbitmq, "zealsync-bench").map_err(BenchError::Other)?;
    let topology = Topology::new(&s.rabbitmq, &s.retry);
    let wake = Arc::new(Notify::new());
    let relay_db = database::connect_relay(&scratch.url, ROUNDS_IN_FLIGHT as u32).await?;
    let relay = OutboxRelay::new(
        relay_db.clone(),
        pool.clone(),
        topology.clone(),
        s.outbox.clone(),
        s.rabbitmq.confirm_window,
        wake.clone(),
        LinkFlag::new("rabbitmq"),
    );
    // The relay as the publisher runs it (pipelined rounds), timed until the outbox is empty.
    let (stop, signal) = crate::shutdown::channel();
    let bar = progress(n, "relay", quiet);
    let start = Instant::now();
    let task = tokio::spawn(relay.run(signal));
    wake.notify_one();
    // The end is probed often and cheaply; the progress bar's full count is taken rarely, so
    // the measuring does not load the database the relay works on.
    let mut last_count = Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        if !outbox::any_pending(&db).await? || task.is_finished() {
            break;
        }
        if !quiet && last_count.elapsed() >= std::time::Duration::from_millis(500) {
            last_count = Instant::now();
            bar.set_position(n.saturating_sub(outbox::pending(&db).await?.max(0) as u64));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let published = n.saturating_sub(outbox::pending(&db).await?.max(0) as u64);
    stop.trigger();
    let _ = task.await;
    let _ = relay_db.close().await;
    bar.finish_and_clear();
    delete_queues(&s).await;
    scratch.drop_it(db).await;

    let mut report = BenchReport::new("relay");
    report.add(
        format!(
            "relay events/s (batch {}, window {})",
            s.outbox.batch_size, s.rabbitmq.confirm_window
        ),
        published as f64 / secs,
        "ev/s",
    );
    report.check("every row published and marked", published == n);
    Ok(report)
}
