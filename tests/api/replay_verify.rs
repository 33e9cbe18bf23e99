//! Replay rebuilds wiped projections; verify finds drift made by hand in each store, and
//! `verify --repair` mends exactly that.

use std::time::Duration;

use redis::AsyncCommands;
use reqwest::Method;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;
use zealsync::entities::subscriber::profiles;
use zealsync::handlers::redis::RedisKeys;
use zealsync::verify::{self, DriftKind, Stores};

use crate::stack::{TestStack, cli_env, eventually, redis_conn};

const WAIT: Duration = Duration::from_secs(20);

fn id_of(v: &Value) -> Uuid {
    v["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("id")
}

async fn report(stack: &TestStack) -> verify::VerifyReport {
    let mut stores = Stores {
        publisher: &stack.publisher.db,
        subscriber: &stack.subscriber.db,
        redis: redis_conn().await,
        keys: RedisKeys::new(stack.settings.redis.key_prefix.clone()),
    };
    verify::verify(&mut stores).await.expect("verify runs")
}

/// Some users and courses, a rename and a delete; returns (instructor ids, course ids).
async fn seed(stack: &TestStack) -> (Vec<Uuid>, Vec<Uuid>) {
    let api = &stack.publisher;
    let a = id_of(&api.create_user("a@example.com", "instructor").await);
    let b = id_of(&api.create_user("b@example.com", "instructor").await);
    let s = id_of(&api.create_user("s@example.com", "student").await);
    let c1 = id_of(&api.create_course("One", &a.to_string()).await);
    let c2 = id_of(&api.create_course("Two", &b.to_string()).await);
    let c3 = id_of(&api.create_course("Three", &b.to_string()).await);
    api.send(
        Method::PATCH,
        &format!("/api/users/{a}"),
        Some(&json!({"name": "Ann"})),
    )
    .await;
    api.send(Method::DELETE, &format!("/api/users/{s}"), None)
        .await;
    eventually("projections settle", WAIT, || async {
        report(stack).await.is_clean().then_some(())
    })
    .await;
    (vec![a, b], vec![c1, c2, c3])
}

async fn wipe(stack: &TestStack) {
    for t in ["profiles", "course_catalog", "processed_events"] {
        stack
            .subscriber
            .db
            .execute_unprepared(&format!("DELETE FROM {t}"))
            .await
            .expect("wipe");
    }
    let mut r = stack.redis.clone();
    let keys: Vec<String> = r.keys(stack.key("*")).await.expect("keys");
    if !keys.is_empty() {
        let _: () = r.del(keys).await.expect("del");
    }
}

#[tokio::test]
async fn replay_rebuilds_wiped_projections() {
    let stack = TestStack::spawn().await;
    seed(&stack).await;
    wipe(&stack).await;
    assert!(!report(&stack).await.is_clean(), "the wipe is drift");
    // Users through the command, courses through the admin API.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .args(["replay", "--aggregate", "user"])
        .envs(cli_env(&stack.settings))
        .output()
        .await
        .expect("run replay");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued 2 user and 0 course snapshot events"),
        "{out:?}"
    );
    let res = stack
        .publisher
        .client
        .post(format!("{}/admin/replay", stack.publisher.address))
        .bearer_auth("test-admin-token")
        .json(&json!({"aggregate_type": "course"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 202);
    eventually("rebuilt equal to the source", WAIT, || async {
        report(&stack).await.is_clean().then_some(())
    })
    .await;

    // Replaying into up-to-date projections changes nothing (every snapshot is stale).
    let before = profiles::Entity::find()
        .all(&stack.subscriber.db)
        .await
        .expect("rows");
    let res = stack
        .publisher
        .client
        .post(format!("{}/admin/replay", stack.publisher.address))
        .bearer_auth("test-admin-token")
        .json(&json!({"aggregate_type": "user"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = profiles::Entity::find()
        .all(&stack.subscriber.db)
        .await
        .expect("rows");
    assert_eq!(before, after);
    let bad = stack
        .publisher
        .client
        .post(format!("{}/admin/replay", stack.publisher.address))
        .bearer_auth("test-admin-token")
        .json(&json!({"aggregate_type": "planet"}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn verify_finds_hand_made_drift_and_repair_mends_it() {
    let stack = TestStack::spawn().await;
    let (instructors, courses) = seed(&stack).await;
    let (a, b) = (instructors[0], instructors[1]);
    let db = &stack.subscriber.db;
    // Drift by hand, one kind per store.
    profiles::Entity::delete_by_id(a)
        .exec(db)
        .await
        .expect("delete profile");
    let orphan = Uuid::now_v7();
    profiles::Entity::insert(profiles::ActiveModel {
        user_id: Set(orphan),
        email: Set("ghost@example.com".into()),
        name: Set("Ghost".into()),
        role: Set("student".into()),
        source_version: Set(1),
        deleted: Set(false),
        occurred_at: Set(chrono::Utc::now()),
        synced_at: Set(chrono::Utc::now()),
    })
    .exec_without_returning(db)
    .await
    .expect("orphan");
    db.execute_unprepared(&format!(
        "UPDATE course_catalog SET title = 'Edited' WHERE course_id = '{}'",
        courses[0]
    ))
    .await
    .expect("edit catalog");
    let mut r = stack.redis.clone();
    let _: () = r.del(stack.key(&format!("user:{b}"))).await.expect("del");
    let _: () = r
        .hset(stack.key(&format!("course:{}", courses[1])), "version", 0)
        .await
        .expect("hset");

    let found = report(&stack).await;
    let has = |store: &str, kind: DriftKind, id: Uuid| {
        found
            .drifts
            .iter()
            .any(|d| d.store == store && d.kind == kind && d.id == id)
    };
    assert!(has(verify::PROFILES, DriftKind::Missing, a), "{found}");
    assert!(has(verify::PROFILES, DriftKind::Orphan, orphan), "{found}");
    assert!(
        has(verify::CATALOG, DriftKind::Mismatch, courses[0]),
        "{found}"
    );
    assert!(has(verify::REDIS_USERS, DriftKind::Missing, b), "{found}");
    assert!(
        has(verify::REDIS_COURSES, DriftKind::Stale, courses[1]),
        "{found}"
    );
    assert_eq!(found.drifts.len(), 5, "nothing else: {found}");

    // The command: a table, the ids, exit 1.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .arg("verify")
        .envs(cli_env(&stack.settings))
        .output()
        .await
        .expect("run verify");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [a, orphan, courses[0], b, courses[1]] {
        assert!(text.contains(&id.to_string()), "{id} listed in:\n{text}");
    }
    assert!(text.contains("store") && text.contains("missing"), "{text}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .args(["verify", "--repair"])
        .envs(cli_env(&stack.settings))
        .output()
        .await
        .expect("run verify --repair");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repair"),
        "{out:?}"
    );
    eventually("repaired", WAIT, || async {
        report(&stack).await.is_clean().then_some(())
    })
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .arg("verify")
        .envs(cli_env(&stack.settings))
        .output()
        .await
        .expect("run verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ghost = profiles::Entity::find_by_id(orphan)
        .one(db)
        .await
        .expect("q")
        .expect("row");
    assert!(ghost.deleted, "the orphan became a tombstone");
}
