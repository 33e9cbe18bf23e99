//! Health endpoints answer for the process and its dependencies.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::stack::eventually;

#[tokio::test]
async fn live_and_ready() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    // Ready once the relay has reached the broker.
    let body = eventually("publisher ready", Duration::from_secs(10), || async {
        let res = app.get("/health/ready").await;
        (res.status() == 200).then_some(())?;
        res.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    assert_eq!(body["checks"]["rabbitmq"]["status"], "up", "{body}");
}

#[tokio::test]
async fn admin_outbox_needs_the_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.create_user("o@example.com", "student").await;
    let url = format!("{}/admin/outbox", app.address);
    assert_eq!(
        app.client.get(&url).send().await.expect("send").status(),
        401
    );
    let res = app
        .client
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(&url)
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["pending"].as_i64().unwrap_or(0) + body["published_total"].as_i64().unwrap_or(0),
        1
    );
}

#[tokio::test]
async fn admin_routes_are_off_without_a_token() {
    let db = crate::helpers::fresh_database(Backend::Sqlite).await;
    let mut settings = crate::helpers::test_settings(&db);
    settings.admin.token = String::new();
    let app = TestApp::spawn_with(settings).await;
    let res = app
        .client
        .get(format!("{}/admin/outbox", app.address))
        .bearer_auth("anything")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
    assert_eq!(app.settings.admin.token(), None);
}
