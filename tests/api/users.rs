//! `/api/users`: every success path and every error status of DESIGN §3.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem};

async fn crud(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Create: 201, Location, ETag "1", normalised email.
    let res = app
        .post(
            "/api/users",
            &json!({"email": "  Ada@Example.COM ", "name": " Ada ", "role": "instructor"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert!(res.headers().contains_key("x-request-id"));
    let user: Value = res.json().await.expect("json");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["version"], 1);
    let id = user["id"].as_str().expect("id").to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&id).map(|u| u.get_version_num()),
        Ok(7)
    );
    assert_eq!(location, format!("/api/users/{id}"));

    // Read.
    let res = app.get(&location).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.json::<Value>().await.expect("json"), user);

    // PUT (full) -> version 2.
    let res = app
        .send(
            Method::PUT,
            &location,
            Some(&json!({"email": "ada@example.com", "name": "Ada L.", "role": "instructor"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let put: Value = res.json().await.expect("json");
    assert_eq!(
        (put["name"].as_str(), put["version"].as_i64()),
        (Some("Ada L."), Some(2))
    );

    // PATCH with the right If-Match -> version 3; fields not sent are kept.
    let res = app
        .client
        .patch(format!("{}{location}", app.address))
        .header("If-Match", "\"2\"")
        .json(&json!({"name": "Ada Lovelace"}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.expect("json");
    assert_eq!(patched["version"], 3);
    assert_eq!(patched["email"], "ada@example.com");
    assert_eq!(patched["name"], "Ada Lovelace");
    assert_eq!(patched["created_at"], user["created_at"]);

    // List contains it.
    let list: Value = app.get("/api/users").await.json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(list["next_cursor"].is_null());

    // DELETE -> 204, then 404.
    let res = app.send(Method::DELETE, &location, None).await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get(&location).await, 404).await;
    let (users, _, outbox) = app.counts().await;
    assert_eq!((users, outbox), (0, 4), "4 writes, 4 events, user gone");
}

#[tokio::test]
async fn user_crud_on_postgres() {
    crud(Backend::Postgres).await;
}

#[tokio::test]
async fn user_crud_on_sqlite() {
    crud(Backend::Sqlite).await;
}

#[tokio::test]
async fn bad_requests_get_problems_and_write_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let existing = app.create_user("taken@example.com", "student").await;
    let id = existing["id"].as_str().expect("id");
    let before = app.counts().await;
    let url = format!("{}/api/users", app.address);

    // 400: not JSON at all.
    let res = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("send");
    assert_problem(res, 400).await;
    // 415: wrong content type.
    let res = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_problem(res, 415).await;
    // 413: over 64 KiB.
    let big = json!({"email": "a@b.c", "name": "x".repeat(70_000), "role": "student"});
    assert_problem(app.post("/api/users", &big).await, 413).await;
    // 422: unknown field, wrong type, missing field, invalid values.
    let cases = [
        (
            json!({"email": "a@b.c", "name": "A", "role": "student", "admin": true}),
            "admin",
        ),
        (
            json!({"email": "a@b.c", "name": 5, "role": "student"}),
            "name",
        ),
        (json!({"email": "a@b.c", "role": "student"}), "name"),
        (
            json!({"email": "no-at-sign", "name": "A", "role": "student"}),
            "email",
        ),
        (
            json!({"email": "a@b@c", "name": "A", "role": "student"}),
            "email",
        ),
        (
            json!({"email": "a@b.c", "name": "   ", "role": "student"}),
            "name",
        ),
        (
            json!({"email": "a@b.c", "name": "x".repeat(201), "role": "student"}),
            "name",
        ),
        (
            json!({"email": "a@b.c", "name": "A", "role": "admin"}),
            "role",
        ),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(app.post("/api/users", &body).await, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&field),
            "{body}: expected an error on {field}, got {problem}"
        );
    }
    // 422: malformed id, limit outside 1..=500, malformed cursor.
    assert_problem(app.get("/api/users/not-a-uuid").await, 422).await;
    assert_problem(app.get("/api/users?limit=0").await, 422).await;
    assert_problem(app.get("/api/users?limit=501").await, 422).await;
    assert_problem(app.get("/api/users?cursor=xyz").await, 422).await;
    // 404: absent user, for read, update and delete.
    let absent = format!("/api/users/{}", uuid::Uuid::now_v7());
    assert_problem(app.get(&absent).await, 404).await;
    assert_problem(
        app.send(Method::PATCH, &absent, Some(&json!({"name": "B"})))
            .await,
        404,
    )
    .await;
    assert_problem(app.send(Method::DELETE, &absent, None).await, 404).await;
    // 409: duplicate email (case and spaces do not matter).
    let dup = json!({"email": " TAKEN@example.com", "name": "B", "role": "student"});
    assert_problem(app.post("/api/users", &dup).await, 409).await;
    // 412: stale If-Match on update and delete.
    let path = format!("{}/api/users/{id}", app.address);
    let res = app
        .client
        .patch(&path)
        .header("If-Match", "\"7\"")
        .json(&json!({"name": "C"}))
        .send()
        .await
        .expect("send");
    let res_etag = res.headers().get("etag").cloned();
    assert_problem(res, 412).await;
    assert_eq!(
        res_etag.as_ref().and_then(|v| v.to_str().ok()),
        Some("\"1\"")
    );
    let res = app
        .client
        .delete(&path)
        .header("If-Match", "\"9\"")
        .send()
        .await
        .expect("send");
    assert_problem(res, 412).await;
    // 405 and unknown routes are problems too.
    assert_problem(app.send(Method::DELETE, "/api/users", None).await, 405).await;
    assert_problem(app.get("/api/nothing-here").await, 404).await;

    assert_eq!(
        app.counts().await,
        before,
        "no rejected request wrote anything"
    );
    let still: Value = app
        .get(&format!("/api/users/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(still, existing);
}

#[tokio::test]
async fn pagination_visits_every_user_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut created = Vec::new();
    for i in 0..23 {
        let u = app
            .create_user(&format!("user{i}@example.com"), "student")
            .await;
        created.push(u["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/users?limit=5&cursor={c}"),
            None => "/api/users?limit=5".to_string(),
        };
        let page: Value = app.get(&path).await.json().await.expect("json");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 5);
        seen.extend(
            items
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, created, "every user once, in creation order");
}

#[tokio::test]
async fn request_id_is_echoed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app
        .client
        .get(format!("{}/health/live", app.address))
        .header("X-Request-Id", "trace-me-123")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test]
async fn concurrent_creations_are_batched_and_one_email_wins_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // 40 distinct users and 20 racing for one email, all at once: on PostgreSQL they share
    // multi-row statements, and each request still gets its own answer.
    let bodies: Vec<Value> = (0..40)
        .map(|i| json!({"email": format!("u{i}@batch.test"), "name": "U", "role": "student"}))
        .chain((0..20).map(|_| json!({"email": "same@batch.test", "name": "S", "role": "student"})))
        .collect();
    let responses =
        futures_util::future::join_all(bodies.iter().map(|b| app.post("/api/users", b))).await;
    let mut created = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            409 => {
                let problem = assert_problem(res, 409).await;
                assert!(
                    problem["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("same@batch.test")),
                    "{problem}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 41, "40 distinct users and one of the 20 racers");
    let (users, _, outbox) = app.counts().await;
    assert_eq!(
        (users, outbox),
        (41, 41),
        "one outbox row per created user, none for a loser"
    );
    let list: Value = app
        .get("/api/users?limit=100")
        .await
        .json()
        .await
        .expect("json");
    let same = list["items"].as_array().map(|items| {
        items
            .iter()
            .filter(|u| u["email"] == "same@batch.test")
            .count()
    });
    assert_eq!(same, Some(1));
}
