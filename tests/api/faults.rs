//! Faults survived, injected for real: links to RabbitMQ, Redis and PostgreSQL cut through a
//! proxy, subscriber processes killed, poison messages, failing handlers, retention.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use reqwest::Method;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;
use zealsync::config::{SecretUrl, Settings};
use zealsync::entities::publisher::outbox;
use zealsync::entities::subscriber::{course_catalog, dead_letters, profiles};
use zealsync::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};

use crate::fault_proxy::FaultProxy;
use crate::helpers::{TestApp, fresh_database, test_settings};
use crate::services;
use crate::stack::{TestStack, eventually};

const WAIT: Duration = Duration::from_secs(30);

async fn profile_count(db: &DatabaseConnection) -> u64 {
    profiles::Entity::find().count(db).await.unwrap_or(0)
}

async fn ready_status(client: &reqwest::Client, base: &str) -> u16 {
    match client.get(format!("{base}/health/ready")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Every change notification of the test, counted by (aggregate id, version).
type Seen = std::sync::Arc<std::sync::Mutex<HashMap<(String, i64), u32>>>;

/// Subscribes to the changes channel now and counts what arrives from then on.
async fn listen_changes(key: String) -> Seen {
    let client = redis::Client::open(services::redis_url()).expect("redis");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&key).await.expect("subscribe");
    let seen = Seen::default();
    let out = seen.clone();
    tokio::spawn(async move {
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            let v: Value = serde_json::from_str(&payload).unwrap_or_default();
            let k = (
                v["aggregate_id"].as_str().unwrap_or_default().to_string(),
                v["version"].as_i64().unwrap_or(0),
            );
            if let Ok(mut m) = seen.lock() {
                *m.entry(k).or_insert(0) += 1;
            }
        }
    });
    out
}

/// A settled copy of what the listener counted.
async fn settled(seen: &Seen) -> HashMap<(String, i64), u32> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    seen.lock().map(|m| m.clone()).unwrap_or_default()
}

async fn redis_versions(stack: &TestStack, ids: &[Uuid]) -> Vec<Option<String>> {
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hget(stack.key(&format!("user:{id}")), "version");
    }
    let mut conn = stack.redis.clone();
    pipe.query_async(&mut conn).await.unwrap_or_default()
}

async fn create_users(api: &TestApp, tag: &str, n: usize) -> Vec<Uuid> {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let res = api
                .post("/api/users", &json!({"email": format!("{tag}{i}@example.com"), "name": "U", "role": "student"}))
                .await;
            assert_eq!(res.status(), 201, "every write accepted");
            let v: Value = res.json().await.expect("json");
            Uuid::parse_str(v["id"].as_str().unwrap_or_default()).expect("id")
        })
        .buffer_unordered(16)
        .collect()
        .await
}

#[tokio::test]
async fn broker_link_cut_during_a_stream_loses_nothing() {
    let proxy = FaultProxy::in_front_of(&services::amqp_url()).await;
    let stack = TestStack::spawn_with(|s| {
        s.rabbitmq.url = SecretUrl::new(proxy.url_for(s.rabbitmq.url.expose()))
    })
    .await;
    let listener = listen_changes(stack.key("changes")).await;
    let api = &stack.publisher;
    eventually("ready", WAIT, || async {
        (ready_status(&api.client, &api.address).await == 200).then_some(())
    })
    .await;

    let writes = create_users(api, "cut", 1200);
    let fault = async {
        eventually("some events through", WAIT, || async {
            (profile_count(&stack.subscriber.db).await > 100).then_some(())
        })
        .await;
        proxy.cut();
        eventually("publisher not ready during the cut", WAIT, || async {
            (ready_status(&api.client, &api.address).await == 503).then_some(())
        })
        .await;
        eventually("subscriber not ready during the cut", WAIT, || async {
            (ready_status(&api.client, &stack.subscriber.address).await == 503).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.restore();
    };
    let (ids, ()) = tokio::join!(writes, fault);
    eventually("ready again after the cut", WAIT, || async {
        (ready_status(&api.client, &api.address).await == 200
            && ready_status(&api.client, &stack.subscriber.address).await == 200)
            .then_some(())
    })
    .await;
    eventually("every event in both projections", WAIT, || async {
        let sql = profiles::Entity::find()
            .filter(profiles::Column::SourceVersion.eq(1))
            .count(&stack.subscriber.db)
            .await
            .ok()?;
        let redis = redis_versions(&stack, &ids).await;
        (sql == ids.len() as u64 && redis.iter().all(|v| v.as_deref() == Some("1"))).then_some(())
    })
    .await;
    let seen = settled(&listener).await;
    assert_eq!(seen.len(), ids.len(), "one notification per change");
    assert!(seen.values().all(|n| *n == 1), "no duplicate effect");
}

#[tokio::test]
async fn redis_outage_holds_redis_only_and_converges_after() {
    let proxy = FaultProxy::in_front_of(&services::redis_url()).await;
    let stack = TestStack::spawn_with(|s| {
        s.redis.url = SecretUrl::new(proxy.url_for(&services::redis_url()))
    })
    .await;
    let api = &stack.publisher;
    proxy.cut();
    eventually("subscriber reports redis down", WAIT, || async {
        (ready_status(&api.client, &stack.subscriber.address).await == 503).then_some(())
    })
    .await;
    let ids = create_users(api, "redis", 100).await;
    eventually("SQL keeps up while Redis is down", WAIT, || async {
        (profile_count(&stack.subscriber.db).await == 100).then_some(())
    })
    .await;
    assert!(
        redis_versions(&stack, &ids)
            .await
            .iter()
            .all(Option::is_none)
    );
    proxy.restore();
    eventually("Redis converges after restore", WAIT, || async {
        redis_versions(&stack, &ids)
            .await
            .iter()
            .all(|v| v.as_deref() == Some("1"))
            .then_some(())
    })
    .await;
    let parked = dead_letters::Entity::find()
        .count(&stack.subscriber.db)
        .await
        .expect("count");
    assert_eq!(parked, 0, "an outage parks nothing");
}

#[tokio::test]
async fn subscriber_database_outage_acks_nothing_and_applies_after() {
    let pg = FaultProxy::in_front_of(&services::postgres_url()).await;
    let direct_url = fresh_database(crate::helpers::Backend::Postgres).await;
    let proxied = pg.url_for(&direct_url);
    let stack =
        TestStack::spawn_with(|s| s.subscriber.database_url = SecretUrl::new(proxied)).await;
    let direct = Database::connect(&direct_url)
        .await
        .expect("direct connection");
    let api = &stack.publisher;
    pg.cut();
    let ids = create_users(api, "pg", 50).await;
    // The Redis group is unaffected; the SQL queue holds its messages, unacked.
    eventually("Redis applied while the database is down", WAIT, || async {
        redis_versions(&stack, &ids)
            .await
            .iter()
            .all(|v| v.as_deref() == Some("1"))
            .then_some(())
    })
    .await;
    assert_eq!(
        profile_count(&direct).await,
        0,
        "nothing applied while the link is cut"
    );
    let parked = dead_letters::Entity::find()
        .count(&direct)
        .await
        .expect("count");
    assert_eq!(parked, 0, "nothing parked");
    pg.restore();
    eventually("SQL applied once the database is back", WAIT, || async {
        (profile_count(&direct).await == 50).then_some(())
    })
    .await;
}

fn spawn_child(settings: &Settings) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .arg("subscriber")
        .envs(crate::stack::cli_env(settings))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn zealsync subscriber")
}

/// Publisher in this process, subscriber as a child process (so it can be killed for real).
async fn publisher_with_child_subscriber() -> (TestApp, Settings, DatabaseConnection) {
    let mut settings = test_settings(&fresh_database(crate::helpers::Backend::Postgres).await);
    settings.subscriber.database_url =
        SecretUrl::new(fresh_database(crate::helpers::Backend::Postgres).await);
    settings.redis.url = SecretUrl::new(services::redis_url());
    let api = TestApp::spawn_with(settings.clone()).await;
    let sub_db = Database::connect(settings.subscriber.database_url.expose())
        .await
        .expect("subscriber db");
    (api, settings, sub_db)
}

async fn stream_writes(api: &TestApp, ids: &[Uuid], rounds: usize) {
    futures_util::stream::iter((0..rounds).flat_map(|r| ids.iter().map(move |id| (r, *id))))
        .map(|(r, id)| async move {
            let res = api
                .send(
                    Method::PATCH,
                    &format!("/api/users/{id}"),
                    Some(&json!({"name": format!("r{r}")})),
                )
                .await;
            assert_eq!(res.status(), 200);
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

async fn converged(sub_db: &DatabaseConnection, settings: &Settings, ids: &[Uuid], version: i64) {
    let redis = crate::stack::redis_conn().await;
    eventually("projections converge after restart", WAIT, || {
        let mut redis = redis.clone();
        async move {
            let n = profiles::Entity::find()
                .filter(profiles::Column::SourceVersion.eq(version))
                .count(sub_db)
                .await
                .ok()?;
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.hget(
                    format!("{}:user:{id}", settings.redis.key_prefix),
                    "version",
                );
            }
            let v: Vec<Option<String>> = pipe.query_async(&mut redis).await.ok()?;
            (n == ids.len() as u64 && v.iter().all(|x| x.as_deref() == Some(&version.to_string())))
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn subscriber_killed_mid_stream_converges_without_duplicate_effects() {
    let (api, settings, sub_db) = publisher_with_child_subscriber().await;
    let listener = listen_changes(format!("{}:changes", settings.redis.key_prefix)).await;
    let mut child = spawn_child(&settings);
    let ids = create_users(&api, "kill", 40).await;
    let writes = stream_writes(&api, &ids, 10);
    let killer = async {
        eventually("child applying", WAIT, || async {
            (profile_count(&sub_db).await >= 20).then_some(())
        })
        .await;
        child.kill().await.expect("SIGKILL"); // abrupt: no shutdown code runs
    };
    tokio::join!(writes, killer);
    let _restarted = spawn_child(&settings);
    converged(&sub_db, &settings, &ids, 11).await;
    let seen = settled(&listener).await;
    assert_eq!(seen.len(), ids.len() * 11, "every change announced");
    assert!(
        seen.values().all(|n| *n == 1),
        "no (aggregate, version) applied twice"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_loses_nothing() {
    let (api, settings, sub_db) = publisher_with_child_subscriber().await;
    let mut child = spawn_child(&settings);
    let ids = create_users(&api, "term", 30).await;
    let writes = stream_writes(&api, &ids, 10);
    let stopper = async {
        eventually("child applying", WAIT, || async {
            (profile_count(&sub_db).await >= 10).then_some(())
        })
        .await;
        let pid = child.id().expect("pid");
        let started = std::time::Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exits within 10 s")
            .expect("wait");
        assert!(exit.success(), "clean exit: {exit:?}");
        started.elapsed()
    };
    let ((), took) = tokio::join!(writes, stopper);
    assert!(took < Duration::from_secs(10));
    let _restarted = spawn_child(&settings);
    converged(&sub_db, &settings, &ids, 11).await;
}

fn envelope(action: Action, agg: AggregateType, id: Uuid, version: i64, data: Value) -> Envelope {
    Envelope::new(
        EventType::new(agg, action),
        id,
        version,
        Some("test".into()),
        data,
    )
}

#[tokio::test]
async fn poison_messages_are_parked_with_their_reason_and_good_ones_applied() {
    let stack = TestStack::spawn().await;
    let (_c, ch) = stack.channel().await;
    let good: Vec<Envelope> = (0..3)
        .map(|i| {
            let id = Uuid::now_v7();
            envelope(
                Action::Created,
                AggregateType::User,
                id,
                1,
                json!({"id": id, "email": format!("g{i}@x.io"), "name": "G", "role": "student"}),
            )
        })
        .collect();
    let valid = serde_json::to_value(&good[0]).expect("value");
    let mut future_schema = valid.clone();
    future_schema["schema_version"] = json!(99);
    let mut unknown_type = valid.clone();
    unknown_type["event_type"] = json!("user.exploded");
    let mut missing = valid.clone();
    missing.as_object_mut().map(|o| o.remove("aggregate_id"));
    let misfit_id = Uuid::now_v7();
    let misfit = envelope(
        Action::Created,
        AggregateType::User,
        misfit_id,
        1,
        json!({"id": misfit_id, "name": 7}),
    );
    let poison: Vec<(&str, Vec<u8>, &str)> = vec![
        ("user.created", b"{not json".to_vec(), "not JSON"),
        (
            "user.exploded",
            unknown_type.to_string().into_bytes(),
            "unknown event type",
        ),
        (
            "user.created",
            future_schema.to_string().into_bytes(),
            "unknown schema_version 99",
        ),
        ("user.updated", vec![b' '; 300 * 1024], "exceeds"),
        (
            "user.created",
            missing.to_string().into_bytes(),
            "aggregate_id",
        ),
        ("user.created", misfit.encode(), "data does not fit"),
    ];
    stack.publish(&ch, &good[0]).await;
    for (rk, body, _) in &poison {
        stack.publish_raw(&ch, rk, body).await;
    }
    stack.publish(&ch, &good[1]).await;
    stack.publish(&ch, &good[2]).await;
    let rows = eventually("every poison parked by both groups", WAIT, || async {
        let rows = dead_letters::Entity::find()
            .all(&stack.subscriber.db)
            .await
            .ok()?;
        (rows.len() == poison.len() * 2).then_some(rows)
    })
    .await;
    for (_, _, reason) in &poison {
        let n = rows.iter().filter(|r| r.reason.contains(reason)).count();
        assert_eq!(
            n, 2,
            "parked once per queue with a reason containing {reason:?}: {rows:#?}"
        );
    }
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "permanent failures are not retried"
    );
    eventually("good ones applied", WAIT, || async {
        (profile_count(&stack.subscriber.db).await == 3).then_some(())
    })
    .await;
    let q = ch
        .queue_declare(
            format!("{}.dead-letters", stack.settings.rabbitmq.prefix)
                .as_str()
                .into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("dlq");
    assert_eq!(
        q.message_count() as usize,
        poison.len() * 2,
        "the parking queue holds them too"
    );
}

#[tokio::test]
async fn transient_failures_retry_then_park_and_admin_can_retry() {
    let stack = TestStack::spawn_with(|s| {
        s.retry.max_attempts = 3;
        s.retry.delays_ms = vec![1000, 1000];
    })
    .await;
    let db = &stack.subscriber.db;
    let (_c, ch) = stack.channel().await;
    let teacher = Uuid::now_v7();
    let course = |id: Uuid, title: &str| {
        envelope(
            Action::Created,
            AggregateType::Course,
            id,
            1,
            json!({"id": id, "title": title, "description": "", "instructor_id": teacher}),
        )
    };
    let status_url = format!("{}/api/sync/status", stack.subscriber.address);
    let client = &stack.publisher.client;
    let retried = || async {
        let s: Value = client
            .get(&status_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        s["handled"]["sql"]["retried"].as_u64()
    };

    // Fails while the table is away, succeeds on a later attempt once it is back.
    db.execute_unprepared("ALTER TABLE course_catalog RENAME TO course_catalog_away")
        .await
        .expect("rename");
    let a = Uuid::now_v7();
    stack.publish(&ch, &course(a, "A")).await;
    eventually("first attempt failed", WAIT, || async {
        (retried().await? >= 1).then_some(())
    })
    .await;
    db.execute_unprepared("ALTER TABLE course_catalog_away RENAME TO course_catalog")
        .await
        .expect("rename back");
    eventually("applied on a later attempt", WAIT, || async {
        course_catalog::Entity::find_by_id(a)
            .one(db)
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(
        dead_letters::Entity::find().count(db).await.expect("count"),
        0
    );

    // Exhausting the attempts parks it, with the attempts recorded.
    db.execute_unprepared("ALTER TABLE course_catalog RENAME TO course_catalog_away")
        .await
        .expect("rename");
    let b = Uuid::now_v7();
    let b_event = course(b, "B");
    stack.publish(&ch, &b_event).await;
    let parked = eventually("parked after 3 attempts", WAIT, || async {
        dead_letters::Entity::find().one(db).await.ok().flatten()
    })
    .await;
    db.execute_unprepared("ALTER TABLE course_catalog_away RENAME TO course_catalog")
        .await
        .expect("rename back");
    assert_eq!(parked.attempts, 3);
    assert!(
        parked.reason.contains("gave up after 3 attempts"),
        "{}",
        parked.reason
    );
    assert_eq!(parked.routing_key, "course.created");
    assert_eq!(parked.event_id, Some(b_event.event_id));
    assert_eq!(parked.payload.as_bytes(), b_event.encode().as_slice());

    // Admin API: token required; list, retry (applies it now that the table is back), delete.
    let base = &stack.subscriber.address;
    let list_url = format!("{base}/admin/dead-letters?routing_key=course.created");
    assert_eq!(
        client.get(&list_url).send().await.expect("send").status(),
        401
    );
    assert_eq!(
        client
            .get(&list_url)
            .bearer_auth("nope")
            .send()
            .await
            .expect("send")
            .status(),
        401
    );
    let list: Value = client
        .get(&list_url)
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let other: Value = client
        .get(format!(
            "{base}/admin/dead-letters?routing_key=user.created"
        ))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(other["items"].as_array().map(Vec::len), Some(0));
    let res = client
        .post(format!("{base}/admin/dead-letters/{}/retry", parked.id))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 202);
    eventually("retried message applied", WAIT, || async {
        course_catalog::Entity::find_by_id(b)
            .one(db)
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(
        dead_letters::Entity::find().count(db).await.expect("count"),
        0,
        "removed after retry"
    );
    let res = client
        .delete(format!("{base}/admin/dead-letters/{}", parked.id))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn dead_letter_delete_and_disabled_admin() {
    let stack = TestStack::spawn().await;
    let (_c, ch) = stack.channel().await;
    stack.publish_raw(&ch, "user.created", b"garbage").await;
    let row = eventually("parked", WAIT, || async {
        dead_letters::Entity::find()
            .filter(dead_letters::Column::SourceQueue.contains("subscriber.sql"))
            .one(&stack.subscriber.db)
            .await
            .ok()
            .flatten()
    })
    .await;
    let url = format!("{}/admin/dead-letters/{}", stack.subscriber.address, row.id);
    let client = &stack.publisher.client;
    assert_eq!(
        client.delete(&url).send().await.expect("send").status(),
        401
    );
    assert_eq!(
        client
            .delete(&url)
            .bearer_auth("test-admin-token")
            .send()
            .await
            .expect("send")
            .status(),
        204
    );
    assert_eq!(
        client
            .delete(&url)
            .bearer_auth("test-admin-token")
            .send()
            .await
            .expect("send")
            .status(),
        404
    );

    let mut off = stack.settings.clone();
    off.admin.token = String::new();
    let sub = crate::stack::TestSubscriber::spawn(off).await;
    let res = client
        .get(format!("{}/admin/dead-letters", sub.address))
        .bearer_auth("anything")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404, "disabled without a token");
    sub.stop().await;
}

#[tokio::test]
async fn retention_removes_published_rows_and_old_inbox_records() {
    let stack = TestStack::spawn_with(|s| {
        s.outbox.retention_hours = 0;
        s.outbox.cleanup_interval_ms = 200;
    })
    .await;
    create_users(&stack.publisher, "ret", 20).await;
    eventually("projections applied", WAIT, || async {
        (profile_count(&stack.subscriber.db).await == 20).then_some(())
    })
    .await;
    eventually(
        "published outbox rows and inbox records swept",
        WAIT,
        || async {
            let outbox_rows = outbox::Entity::find()
                .count(&stack.publisher.db)
                .await
                .ok()?;
            let inbox = stack
                .subscriber
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    stack.subscriber.db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM processed_events",
                ))
                .await
                .ok()??
                .try_get::<i64>("", "n")
                .ok()?;
            (outbox_rows == 0 && inbox == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        profile_count(&stack.subscriber.db).await,
        20,
        "projections untouched"
    );
}
