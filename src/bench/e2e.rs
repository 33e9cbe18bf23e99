//! `bench e2e`: N user creations from C concurrent connections (or at a fixed offered rate)
//! against a running publisher, then waits until both projections hold every one. Prints API
//! writes/s, HTTP latency, time to full sync and sync lag from the subscriber's
//! `occurred_at` / `synced_at`, and checks that every projection equals the source.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::bench::{BenchError, BenchReport, percentile, progress};
use crate::config::{Settings, database};
use crate::entities::subscriber::profiles;
use crate::handlers::redis::RedisKeys;

/// What to run.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub publisher: String,
    pub n: u64,
    pub concurrency: usize,
    /// Offered writes per second (open loop); closed loop when `None`.
    pub rate: Option<f64>,
}

async fn create(client: &reqwest::Client, url: &str, run: &str, i: u64) -> (f64, Option<Uuid>) {
    let started = Instant::now();
    let res = client
        .post(url)
        .json(&serde_json::json!({"email": format!("bench-{run}-{i}@bench.test"), "name": "Bench User", "role": "student"}))
        .send()
        .await;
    let id = match res {
        Ok(r) if r.status().as_u16() == 201 => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())),
        _ => None,
    };
    (started.elapsed().as_secs_f64() * 1000.0, id)
}

/// Runs the end-to-end benchmark.
pub async fn run(
    settings: &Settings,
    opts: &E2eOptions,
    quiet: bool,
) -> Result<BenchReport, BenchError> {
    let run = Uuid::new_v4().simple().to_string()[..8].to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/api/users", opts.publisher.trim_end_matches('/'));
    let sub_db = database::connect(&settings.subscriber.database_url).await?;
    let mut redis = redis::Client::open(settings.redis.url.expose())?
        .get_multiplexed_async_connection()
        .await?;
    let keys = RedisKeys::new(settings.redis.key_prefix.clone());

    let bar = progress(opts.n, "write", quiet);
    let start = Instant::now();
    let results: Vec<(f64, Option<Uuid>)> = match opts.rate {
        None => {
            futures_util::stream::iter(0..opts.n)
                .map(|i| {
                    let (client, url, run, bar) = (&client, &url, &run, &bar);
                    async move {
                        let r = create(client, url, run, i).await;
                        bar.inc(1);
                        r
                    }
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await
        }
        Some(rate) => {
            let mut tasks = Vec::with_capacity(opts.n as usize);
            for i in 0..opts.n {
                let due = start + Duration::from_secs_f64(i as f64 / rate.max(0.001));
                tokio::time::sleep_until(due.into()).await;
                let (client, url, run, bar) =
                    (client.clone(), url.clone(), run.clone(), bar.clone());
                tasks.push(tokio::spawn(async move {
                    let r = create(&client, &url, &run, i).await;
                    bar.inc(1);
                    r
                }));
            }
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.unwrap_or((0.0, None)));
            }
            out
        }
    };
    let api_secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut latency: Vec<f64> = results.iter().map(|r| r.0).collect();
    latency.sort_by(f64::total_cmp);
    let ids: Vec<Uuid> = results.iter().filter_map(|r| r.1).collect();
    let ok = ids.len() as u64;

    // Wait until both projections hold every created user.
    let prefix = format!("bench-{run}-");
    let bar = progress(2 * ok, "sync", quiet);
    let mut pending: HashSet<Uuid> = ids.iter().copied().collect();
    let mut sql_done: u64;
    let synced = loop {
        sql_done = profiles::Entity::find()
            .filter(profiles::Column::Email.starts_with(&prefix))
            .filter(profiles::Column::SourceVersion.eq(1))
            .count(&sub_db)
            .await?;
        let waiting: Vec<Uuid> = pending.iter().copied().collect();
        for chunk in waiting.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.hget(keys.user(*id), "version");
            }
            let versions: Vec<Option<String>> = pipe.query_async(&mut redis).await?;
            for (id, v) in chunk.iter().zip(versions) {
                if v.as_deref() == Some("1") {
                    pending.remove(id);
                }
            }
        }
        bar.set_position(sql_done + ok - pending.len() as u64);
        if sql_done >= ok && pending.is_empty() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(300) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sync_secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let rows = profiles::Entity::find()
        .filter(profiles::Column::Email.starts_with(&prefix))
        .all(&sub_db)
        .await?;
    let mut lag: Vec<f64> = rows
        .iter()
        .map(|p| {
            (p.synced_at - p.occurred_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0
        })
        .collect();
    lag.sort_by(f64::total_cmp);
    let ids_set: HashSet<Uuid> = ids.iter().copied().collect();
    let sql_equal = rows.len() as u64 == ok
        && rows
            .iter()
            .all(|p| ids_set.contains(&p.user_id) && !p.deleted);

    let mut report = BenchReport::new("e2e");
    report.add("writes accepted", ok as f64, "");
    report.add("API writes/s", ok as f64 / api_secs, "w/s");
    report.add("HTTP latency p50", percentile(&latency, 0.50), "ms");
    report.add("HTTP latency p99", percentile(&latency, 0.99), "ms");
    report.add("time to full sync", sync_secs, "s");
    report.add("synced writes/s", ok as f64 / sync_secs, "w/s");
    report.add("sync lag p50 (SQL)", percentile(&lag, 0.50), "ms");
    report.add("sync lag p95 (SQL)", percentile(&lag, 0.95), "ms");
    report.add("sync lag p99 (SQL)", percentile(&lag, 0.99), "ms");
    report.add(
        "sync lag max (SQL)",
        lag.last().copied().unwrap_or(0.0),
        "ms",
    );
    report.check("every write accepted", ok == opts.n);
    report.check(
        "both projections hold every write",
        synced && sql_done >= ok,
    );
    report.check("SQL projection equals the source", sql_equal);
    report.check("Redis projection equals the source", pending.is_empty());
    Ok(report)
}
