//! `bench consume`: fills both subscriber queues with N envelopes, then times the subscriber's
//! consumers applying them (both queues run at once, as in a deployment).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::ConfirmSelectOptions;
use lapin::{Connection, ConnectionProperties};

use crate::bench::broker::publish_all;
use crate::bench::relay::user_event;
use crate::bench::scratch::{ScratchDb, delete_queues, isolated};
use crate::bench::{BenchError, BenchReport, progress};
use crate::config::{Settings, database};
use crate::handlers::redis::{CourseCache, RedisKeys, UserCache};
use crate::handlers::sql::{CatalogProjection, ProfileProjection};
use crate::links::LinkFlag;
use crate::migration::SubscriberMigrator;
use crate::rabbitmq::consumer::QueueConsumer;
use crate::rabbitmq::parking::DeadLetterStore;
use crate::rabbitmq::properties::{EnvelopeMeta, event_properties};
use crate::rabbitmq::router::Router;
use crate::rabbitmq::stats::SyncStats;
use crate::rabbitmq::topology::{Group, Topology};
use crate::shutdown;

/// Runs the consume benchmark.
pub async fn run(settings: &Settings, n: u64, quiet: bool) -> Result<BenchReport, BenchError> {
    let s = isolated(settings);
    let scratch = ScratchDb::create(&settings.subscriber.database_url).await?;
    let db = database::connect(&scratch.url).await?;
    database::migrate::<SubscriberMigrator>(&db).await?;
    let topology = Topology::new(&s.rabbitmq, &s.retry);

    // Fill: publish N events to the exchange (both queues get each), confirmed.
    let conn =
        Connection::connect(s.rabbitmq.url.expose(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    topology.declare(&ch).await?;
    let bar = progress(n, "fill", quiet);
    let window = s.rabbitmq.confirm_window.max(1) as u64;
    publish_all(&ch, topology.exchange().as_str(), n, window, &bar, |i| {
        let env = user_event(i);
        let props = event_properties(&EnvelopeMeta::from(&env));
        (env.event_type.to_string(), env.encode(), props)
    })
    .await?;
    bar.finish_and_clear();

    // Consume with the real consumers and handlers.
    let redis =
        crate::startup::subscriber::redis_pool(&s).map_err(|e| BenchError::Other(e.to_string()))?;
    let keys = RedisKeys::new(s.redis.key_prefix.clone());
    let stats = Arc::new(SyncStats::default());
    let (stop, signal) = shutdown::channel();
    let routers = [
        (
            Group::Sql,
            Router::new(
                Arc::new(ProfileProjection::new(db.clone())),
                Arc::new(CatalogProjection::new(db.clone())),
            ),
        ),
        (
            Group::Redis,
            Router::new(
                Arc::new(UserCache::new(redis.clone(), keys.clone())),
                Arc::new(CourseCache::new(redis.clone(), keys.clone())),
            ),
        ),
    ];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (group, router) in routers {
        let consumer = QueueConsumer {
            group,
            url: s.rabbitmq.url.clone(),
            prefetch: s.rabbitmq.prefetch,
            max_attempts: s.retry.max_attempts,
            topology: topology.clone(),
            router,
            parking: DeadLetterStore::new(db.clone(), topology.clone()),
            stats: stats.clone(),
            link: LinkFlag::new("bench"),
        };
        tasks.push(tokio::spawn(consumer.run(signal.clone())));
    }
    let bar = progress(2 * n, "apply", quiet);
    let mut done: [Option<f64>; 2] = [None, None];
    while done.iter().any(Option::is_none) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut total = 0;
        for (i, g) in Group::ALL.iter().enumerate() {
            let applied = stats.report(*g).applied;
            total += applied;
            if applied >= n && done[i].is_none() {
                done[i] = Some(start.elapsed().as_secs_f64());
            }
        }
        bar.set_position(total);
        if start.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    bar.finish_and_clear();
    stop.trigger();
    for t in tasks {
        let _ = t.await;
    }
    let _ = conn.close(200, "bench done".into()).await;
    delete_queues(&s).await;
    if let Ok(mut c) = redis.get().await {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", s.redis.key_prefix))
            .query_async(&mut *c)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut *c).await;
        }
    }
    scratch.drop_it(db).await;

    let mut report = BenchReport::new("consume");
    for (i, g) in Group::ALL.iter().enumerate() {
        let secs = done[i].unwrap_or(f64::INFINITY);
        report.add(
            format!(
                "{} queue applied/s (prefetch {})",
                g.as_str(),
                s.rabbitmq.prefetch
            ),
            n as f64 / secs,
            "ev/s",
        );
    }
    report.check(
        "every event applied by both queues",
        done.iter().all(Option::is_some),
    );
    Ok(report)
}
