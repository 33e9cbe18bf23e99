//! The event pipeline end to end: REST write -> outbox -> relay -> exchange -> queues ->
//! consumers -> SQL and Redis projections, on real PostgreSQL, RabbitMQ and Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use redis::AsyncCommands;
use reqwest::Method;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;
use zealsync::entities::publisher::outbox;
use zealsync::entities::subscriber::{course_catalog, profiles};
use zealsync::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};

use crate::helpers::TestApp;
use crate::stack::{TestStack, TestSubscriber, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn id_of(v: &Value) -> Uuid {
    v["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("id")
}

async fn profile(stack: &TestStack, id: Uuid) -> Option<profiles::Model> {
    profiles::Entity::find_by_id(id)
        .one(&stack.subscriber.db)
        .await
        .ok()
        .flatten()
}

async fn catalog(stack: &TestStack, id: Uuid) -> Option<course_catalog::Model> {
    course_catalog::Entity::find_by_id(id)
        .one(&stack.subscriber.db)
        .await
        .ok()
        .flatten()
}

async fn hash(stack: &TestStack, key: &str) -> HashMap<String, String> {
    let mut r = stack.redis.clone();
    r.hgetall(stack.key(key)).await.unwrap_or_default()
}

async fn members(stack: &TestStack, key: &str) -> HashSet<String> {
    let mut r = stack.redis.clone();
    r.smembers(stack.key(key)).await.unwrap_or_default()
}

/// A queue of the test's own, bound to every event, to look at what the relay publishes.
pub async fn tap(stack: &TestStack, ch: &Channel) -> String {
    ch.exchange_declare(
        stack.exchange().as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let name = format!("{}.test-tap", stack.settings.rabbitmq.prefix);
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongLongInt(600_000));
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .expect("tap queue");
    ch.queue_bind(
        name.as_str().into(),
        stack.exchange().as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    name
}

#[tokio::test]
async fn rest_changes_reach_both_projections() {
    let stack = TestStack::spawn().await;
    let api = &stack.publisher;
    let teacher = api.create_user("prof@example.com", "instructor").await;
    let other = api.create_user("other@example.com", "instructor").await;
    let student = api.create_user("stu@example.com", "student").await;
    let (tid, oid, sid) = (id_of(&teacher), id_of(&other), id_of(&student));
    let c1 = id_of(&api.create_course("Algebra", &tid.to_string()).await);
    let c2 = id_of(&api.create_course("Biology", &tid.to_string()).await);

    api.send(
        Method::PATCH,
        &format!("/api/users/{tid}"),
        Some(&json!({"name": "Prof. X"})),
    )
    .await;
    api.send(
        Method::PATCH,
        &format!("/api/users/{sid}"),
        Some(&json!({"email": "s2@example.com"})),
    )
    .await;
    assert_eq!(
        api.send(Method::DELETE, &format!("/api/users/{sid}"), None)
            .await
            .status(),
        204
    );
    api.send(
        Method::PATCH,
        &format!("/api/courses/{c2}"),
        Some(&json!({"title": "Biology II"})),
    )
    .await;
    assert_eq!(
        api.send(Method::DELETE, &format!("/api/courses/{c1}"), None)
            .await
            .status(),
        204
    );

    // SQL: the rename reached the catalog, the deletes left tombstones.
    eventually("SQL projections", WAIT, || async {
        let t = profile(&stack, tid).await?;
        let s = profile(&stack, sid).await?;
        let k1 = catalog(&stack, c1).await?;
        let k2 = catalog(&stack, c2).await?;
        let ok = t.name == "Prof. X"
            && t.source_version == 2
            && !t.deleted
            && s.deleted
            && s.source_version == 3
            && s.email == "s2@example.com"
            && k1.deleted
            && k1.source_version == 2
            && k2.title == "Biology II"
            && k2.source_version == 2
            && k2.instructor_name.as_deref() == Some("Prof. X");
        ok.then_some(())
    })
    .await;
    // Redis: hashes at the latest version, the instructor's set holds the live course only.
    eventually("Redis projections", WAIT, || async {
        let t = hash(&stack, &format!("user:{tid}")).await;
        let s = hash(&stack, &format!("user:{sid}")).await;
        let k2 = hash(&stack, &format!("course:{c2}")).await;
        let set = members(&stack, &format!("instructor:{tid}:courses")).await;
        let ok = t.get("name").map(String::as_str) == Some("Prof. X")
            && t.get("version").map(String::as_str) == Some("2")
            && s.get("deleted").map(String::as_str) == Some("1")
            && k2.get("title").map(String::as_str) == Some("Biology II")
            && set == HashSet::from([c2.to_string()]);
        ok.then_some(())
    })
    .await;

    // A course that changes instructor follows in the catalog and in both sets.
    api.send(
        Method::PATCH,
        &format!("/api/courses/{c2}"),
        Some(&json!({"instructor_id": oid})),
    )
    .await;
    eventually("course moved", WAIT, || async {
        let k2 = catalog(&stack, c2).await?;
        let old = members(&stack, &format!("instructor:{tid}:courses")).await;
        let new = members(&stack, &format!("instructor:{oid}:courses")).await;
        (k2.instructor_id == oid
            && k2.instructor_name.as_deref() == Some("Test User")
            && old.is_empty()
            && new == HashSet::from([c2.to_string()]))
        .then_some(())
    })
    .await;

    // The read API serves what the tables hold.
    let res = api
        .client
        .get(format!("{}/api/profiles/{tid}", stack.subscriber.address))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["name"], "Prof. X");
    let res = api
        .client
        .get(format!("{}/api/profiles/{sid}", stack.subscriber.address))
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.status(),
        404,
        "a deleted user's profile is gone from the API"
    );
    let list: Value = api
        .client
        .get(format!(
            "{}/api/catalog/courses?instructor_id={oid}",
            stack.subscriber.address
        ))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let status: Value = api
        .client
        .get(format!("{}/api/sync/status", stack.subscriber.address))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(status["handled"]["sql"]["applied"], 11, "{status}");
    assert_eq!(status["handled"]["redis"]["applied"], 11, "{status}");
    let work = format!("{}.subscriber.sql", stack.settings.rabbitmq.prefix);
    assert_eq!(status["queues"][&work]["messages"], 0, "{status}");
}

#[tokio::test]
async fn messages_carry_the_design_properties() {
    let stack = TestStack::spawn().await;
    let (_conn, ch) = stack.channel().await;
    let queue = tap(&stack, &ch).await;
    let res = stack
        .publisher
        .client
        .post(format!("{}/api/users", stack.publisher.address))
        .header("X-Request-Id", "req-props-42")
        .json(&json!({"email": "p@example.com", "name": "P", "role": "student"}))
        .send()
        .await
        .expect("send");
    let user: Value = res.json().await.expect("json");
    let msg = eventually("message on the tap queue", WAIT, || async {
        ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .ok()
            .flatten()
    })
    .await;
    let body: Value = serde_json::from_slice(&msg.delivery.data).expect("json body");
    let p = &msg.delivery.properties;
    assert_eq!(msg.delivery.routing_key.as_str(), "user.created");
    assert_eq!(
        p.message_id().as_ref().map(|s| s.as_str().to_string()),
        body["event_id"].as_str().map(str::to_owned)
    );
    assert_eq!(
        p.correlation_id().as_ref().map(|s| s.as_str()),
        Some("req-props-42")
    );
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("user.created"));
    assert_eq!(
        p.app_id().as_ref().map(|s| s.as_str()),
        Some("zealsync-publisher")
    );
    let ts = p.timestamp().expect("timestamp") as i64;
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let headers = p.headers().as_ref().expect("headers");
    let h = headers.inner();
    let text = |k: &str| match h.get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {k}: {other:?}"),
    };
    assert_eq!(
        text("x-aggregate-id"),
        user["id"].as_str().unwrap_or_default()
    );
    assert_eq!(h.get("x-version"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(h.get("x-schema-version"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(body["data"], user);
}

#[tokio::test]
async fn changes_channel_announces_each_applied_change_once() {
    let stack = TestStack::spawn().await;
    let client = redis::Client::open(crate::services::redis_url()).expect("redis");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(stack.key("changes"))
        .await
        .expect("subscribe");
    let api = &stack.publisher;
    let user = api.create_user("n@example.com", "student").await;
    let uid = id_of(&user);
    api.send(
        Method::PATCH,
        &format!("/api/users/{uid}"),
        Some(&json!({"name": "N2"})),
    )
    .await;
    eventually("redis at v2", WAIT, || async {
        (hash(&stack, &format!("user:{uid}"))
            .await
            .get("version")
            .map(String::as_str)
            == Some("2"))
        .then_some(())
    })
    .await;
    // Redeliver the update as-is: a duplicate announces nothing.
    let rows = outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(&api.db)
        .await
        .expect("outbox");
    let (_conn, ch) = stack.channel().await;
    stack
        .publish_raw(&ch, "user.updated", rows[1].payload.as_bytes())
        .await;
    eventually("duplicate counted", WAIT, || async {
        let s: Value = api
            .client
            .get(format!("{}/api/sync/status", stack.subscriber.address))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (s["handled"]["redis"]["duplicate"] == 1).then_some(())
    })
    .await;
    let mut stream = pubsub.on_message();
    let mut got = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(700), stream.next()).await
    {
        let payload: String = msg.get_payload().expect("payload");
        got.push(serde_json::from_str::<Value>(&payload).expect("json"));
    }
    assert_eq!(
        got,
        vec![
            json!({"event_type": "user.created", "aggregate_id": uid, "version": 1}),
            json!({"event_type": "user.updated", "aggregate_id": uid, "version": 2}),
        ]
    );
}

fn user_event(id: Uuid, action: Action, version: i64, name: &str) -> Envelope {
    Envelope::new(
        EventType::new(AggregateType::User, action),
        id,
        version,
        Some("crafted".into()),
        json!({"id": id, "email": format!("{id}@example.com"), "name": name, "role": "student", "version": version}),
    )
}

#[tokio::test]
async fn duplicates_stale_and_late_events_change_nothing() {
    let stack = TestStack::spawn().await;
    let (_conn, ch) = stack.channel().await;
    let id = Uuid::now_v7();
    let created = user_event(id, Action::Created, 1, "One");
    stack.publish(&ch, &created).await;
    stack.publish(&ch, &created).await; // the same envelope again
    stack
        .publish(&ch, &user_event(id, Action::Updated, 3, "Three"))
        .await;
    stack
        .publish(&ch, &user_event(id, Action::Updated, 2, "Two"))
        .await; // older, late
    stack
        .publish(&ch, &user_event(id, Action::Deleted, 4, "Three"))
        .await;
    stack
        .publish(&ch, &user_event(id, Action::Updated, 3, "Zombie"))
        .await; // after the delete
    let status_url = format!("{}/api/sync/status", stack.subscriber.address);
    let status = eventually("six events handled by both groups", WAIT, || async {
        let s: Value = stack
            .publisher
            .client
            .get(&status_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let done = |g: &str| {
            ["applied", "duplicate", "stale"]
                .iter()
                .map(|k| s["handled"][g][k].as_u64().unwrap_or(0))
                .sum::<u64>()
                == 6
        };
        (done("sql") && done("redis")).then_some(s)
    })
    .await;
    for g in ["sql", "redis"] {
        assert_eq!(
            status["handled"][g]["applied"], 3,
            "{g}: created, v3, delete: {status}"
        );
        assert_eq!(status["handled"][g]["duplicate"], 1, "{g}: {status}");
        assert_eq!(status["handled"][g]["stale"], 2, "{g}: {status}");
    }
    let p = profile(&stack, id).await.expect("profile");
    assert!(
        p.deleted && p.source_version == 4 && p.name == "Three",
        "{p:?}"
    );
    let h = hash(&stack, &format!("user:{id}")).await;
    assert_eq!(h.get("deleted").map(String::as_str), Some("1"));
    assert_eq!(h.get("version").map(String::as_str), Some("4"));
    assert_eq!(h.get("name").map(String::as_str), Some("Three"));
}

#[tokio::test]
async fn two_publishers_on_one_database_publish_every_event_once() {
    let stack = TestStack::spawn().await;
    let second = TestApp::spawn_with(stack.settings.clone()).await;
    let (_conn, ch) = stack.channel().await;
    let queue = tap(&stack, &ch).await;
    let apps = [&stack.publisher, &second];
    let writes = 600;
    futures_util::stream::iter(0..writes)
        .map(|i| {
            let app = apps[i % 2];
            async move {
                let res = app
                    .post("/api/users", &json!({"email": format!("u{i}@example.com"), "name": "U", "role": "student"}))
                    .await;
                assert_eq!(res.status(), 201);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut received = 0;
    let deadline = std::time::Instant::now() + WAIT;
    let mut quiet_since = None;
    loop {
        match ch
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("get")
        {
            Some(msg) => {
                let id = msg
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                *seen.entry(id).or_default() += 1;
                received += 1;
                msg.delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                quiet_since = None;
            }
            None if received >= writes => {
                // Wait a little longer: a double publish would show up now.
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "only {received} of {writes} events arrived"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(seen.len(), writes, "every event published");
    assert!(seen.values().all(|n| *n == 1), "no event published twice");
    let pending = outbox::Entity::find()
        .all(&stack.publisher.db)
        .await
        .expect("rows");
    assert!(pending.iter().all(|r| r.published_at.is_some()));
}

#[tokio::test]
async fn competing_subscribers_converge_on_the_latest_versions() {
    let stack = TestStack::spawn_with(|s| s.rabbitmq.prefetch = 4).await;
    let second = TestSubscriber::spawn(stack.settings.clone()).await;
    let api = &stack.publisher;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(id_of(
            &api.create_user(&format!("c{i}@example.com"), "student")
                .await,
        ));
    }
    let rounds = 15;
    futures_util::stream::iter((0..rounds).flat_map(|r| ids.iter().map(move |id| (r, *id))))
        .map(|(r, id)| async move {
            let res = api
                .send(
                    Method::PATCH,
                    &format!("/api/users/{id}"),
                    Some(&json!({"name": format!("round {r}")})),
                )
                .await;
            assert_eq!(res.status(), 200);
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let expected: HashMap<Uuid, (i64, String)> = {
        let mut m = HashMap::new();
        for id in &ids {
            let u: Value = api
                .get(&format!("/api/users/{id}"))
                .await
                .json()
                .await
                .expect("json");
            m.insert(
                *id,
                (
                    u["version"].as_i64().unwrap_or(0),
                    u["name"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
        m
    };
    assert!(expected.values().all(|(v, _)| *v == rounds as i64 + 1));
    eventually("both projections at the latest versions", WAIT, || async {
        for (id, (v, name)) in &expected {
            let p = profile(&stack, *id).await?;
            if p.source_version != *v || &p.name != name {
                return None;
            }
            let h = hash(&stack, &format!("user:{id}")).await;
            if h.get("version") != Some(&v.to_string()) || h.get("name") != Some(name) {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Both processes took part.
    for address in [&stack.subscriber.address, &second.address] {
        let s: Value = api
            .client
            .get(format!("{address}/api/sync/status"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert!(
            s["handled"]["sql"]["applied"].as_u64().unwrap_or(0) > 0,
            "{address}: {s}"
        );
    }
    second.stop().await;
}
