//! `bench e2e`: N user creations from C concurrent connections (or at a fixed offered rate)
//! against a running publisher, then waits until both projections hold every one. Prints API
//! writes/s, HTTP latency, time to full sync and sync lag from the subscriber's
//! `occurred_at` / `synced_at`, and checks that every projection equals the source.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bench::{BenchError, BenchReport, percentile, progress};
use crate::config::{Settings, database};
use crate::handlers::redis::RedisKeys;

/// What to run.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub publisher: String,
    pub n: u64,
    pub concurrency: usize,
    /// Offered writes per second (open loop); closed loop when `None`.
    pub rate: Option<f64>,
    /// Only the SQL projection is waited for and checked (another implementation's Redis
    /// layout differs).
    pub sql_only: bool,
}

/// One creation's HTTP latency (ms), and the new user's id and `created_at` when it was created.
type Created = (f64, Option<(Uuid, DateTime<Utc>)>);

async fn create(client: &reqwest::Client, url: &str, run: &str, i: u64) -> Created {
    let started = Instant::now();
    let res = client
        .post(url)
        .json(&serde_json::json!({"email": format!("bench-{run}-{i}@bench.test"), "name": "Bench User", "role": "student"}))
        .send()
        .await;
    let id = match res {
        Ok(r) if r.status().as_u16() == 201 => {
            r.json::<serde_json::Value>().await.ok().and_then(|v| {
                let id = Uuid::parse_str(v["id"].as_str()?).ok()?;
                let at = v["created_at"].as_str()?.parse::<DateTime<Utc>>().ok()?;
                Some((id, at))
            })
        }
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
    let announced = listen(settings, &keys).await?;
    let results: Vec<Created> = match opts.rate {
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
    let created: Vec<(Uuid, DateTime<Utc>)> = results.iter().filter_map(|r| r.1).collect();
    let ids: Vec<Uuid> = created.iter().map(|c| c.0).collect();
    let ok = ids.len() as u64;

    // Wait until both projections hold every created user.
    let prefix = format!("bench-{run}-");
    let bar = progress(2 * ok, "sync", quiet);
    let mut pending: HashSet<Uuid> = if opts.sql_only {
        HashSet::new()
    } else {
        ids.iter().copied().collect()
    };
    let mut sql_done: u64;
    let synced = loop {
        sql_done = synced_count(&sub_db, &prefix).await?;
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

    let rows = synced_rows(&sub_db, &prefix).await?;
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
    // Redis: from the user's creation to its announcement on the changes channel, which the
    // cache script publishes in the same atomic step that writes the hash.
    let heard = announced.finish().await;
    let mut redis_lag: Vec<f64> = created
        .iter()
        .filter_map(|(id, at)| {
            heard
                .get(id)
                .map(|t| (*t - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    redis_lag.sort_by(f64::total_cmp);
    let ids_set: HashSet<Uuid> = ids.iter().copied().collect();
    let sql_equal = rows.len() as u64 == ok
        && rows
            .iter()
            .all(|p| ids_set.contains(&p.user_id) && p.source_version == 1);

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
    if !opts.sql_only {
        report.add("sync lag p50 (Redis)", percentile(&redis_lag, 0.50), "ms");
        report.add("sync lag p95 (Redis)", percentile(&redis_lag, 0.95), "ms");
        report.add("sync lag p99 (Redis)", percentile(&redis_lag, 0.99), "ms");
        let max = redis_lag.last().copied().unwrap_or(0.0);
        report.add("sync lag max (Redis)", max, "ms");
    }
    report.check("every write accepted", ok == opts.n);
    if !opts.sql_only {
        report.check(
            "every creation announced on the changes channel",
            redis_lag.len() as u64 == ok,
        );
    }
    report.check(
        "both projections hold every write",
        synced && sql_done >= ok,
    );
    report.check("SQL projection equals the source", sql_equal);
    if !opts.sql_only {
        report.check("Redis projection equals the source", pending.is_empty());
    }
    Ok(report)
}

/// A profile row as the benchmark reads it: only the columns every implementation of the
/// contract has.
#[derive(Debug, FromQueryResult)]
struct SyncedRow {
    user_id: Uuid,
    source_version: i64,
    occurred_at: DateTime<Utc>,
    synced_at: DateTime<Utc>,
}

/// The run's profiles (their emails start with `prefix`).
async fn synced_rows(db: &DatabaseConnection, prefix: &str) -> Result<Vec<SyncedRow>, BenchError> {
    let stmt = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT user_id, CAST(source_version AS BIGINT) AS source_version, occurred_at, synced_at \
         FROM profiles WHERE email LIKE $1",
        [format!("{prefix}%").into()],
    );
    Ok(SyncedRow::find_by_statement(stmt).all(db).await?)
}

/// How many of the run's profiles are at version 1.
async fn synced_count(db: &DatabaseConnection, prefix: &str) -> Result<u64, BenchError> {
    let stmt = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM profiles WHERE email LIKE $1 AND source_version = 1",
        [format!("{prefix}%").into()],
    );
    let row = db.query_one_raw(stmt).await?;
    Ok(match row {
        Some(r) => r.try_get::<i64>("", "n")?.max(0) as u64,
        None => 0,
    })
}

/// Listens on the changes channel and notes when each `user.created` was first heard, until
/// [`Listener::finish`].
async fn listen(settings: &Settings, keys: &RedisKeys) -> Result<Listener, BenchError> {
    let mut pubsub = redis::Client::open(settings.redis.url.expose())?
        .get_async_pubsub()
        .await?;
    pubsub.subscribe(keys.changes()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut heard: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        let mut messages = pubsub.into_on_message();
        let mut stopped = stopped;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let at = Utc::now();
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else { continue };
                    if v["event_type"] != "user.created" {
                        continue;
                    }
                    if let Some(id) = v["aggregate_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                        heard.entry(id).or_insert(at);
                    }
                }
            }
        }
        heard
    });
    Ok(Listener {
        stop: Some(stop),
        task,
    })
}

/// The changes-channel listener of one run.
struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<HashMap<Uuid, DateTime<Utc>>>,
}

impl Listener {
    /// Stops listening; returns when each creation was first heard.
    async fn finish(mut self) -> HashMap<Uuid, DateTime<Utc>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_default()
    }
}
