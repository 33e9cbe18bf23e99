//! Every write leaves exactly one outbox row, in commit order, carrying the DESIGN §4 envelope.

use reqwest::Method;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use zealsync::entities::publisher::outbox;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn one_row_per_write_with_the_envelope() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let res = app
        .client
        .post(format!("{}/api/users", app.address))
        .header("X-Request-Id", "req-outbox-1")
        .json(&json!({"email": "i@example.com", "name": "Ida", "role": "instructor"}))
        .send()
        .await
        .expect("send");
    let user: Value = res.json().await.expect("json");
    let uid = user["id"].as_str().expect("id").to_string();
    let course = app.create_course("Chemistry", &uid).await;
    let cid = course["id"].as_str().expect("id").to_string();
    app.send(
        Method::PATCH,
        &format!("/api/users/{uid}"),
        Some(&json!({"name": "Ida B."})),
    )
    .await;
    app.send(
        Method::PATCH,
        &format!("/api/courses/{cid}"),
        Some(&json!({"title": "Chem"})),
    )
    .await;
    app.send(Method::DELETE, &format!("/api/courses/{cid}"), None)
        .await;

    let rows = outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(&app.db)
        .await
        .expect("rows");
    let seen: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| (r.routing_key.clone(), r.aggregate_id.to_string(), r.version))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("user.created".to_string(), uid.clone(), 1),
            ("course.created".to_string(), cid.clone(), 1),
            ("user.updated".to_string(), uid.clone(), 2),
            ("course.updated".to_string(), cid.clone(), 2),
            ("course.deleted".to_string(), cid.clone(), 3),
        ]
    );

    let first: Value = serde_json::from_str(&rows[0].payload).expect("payload is JSON");
    assert_eq!(first["event_id"], rows[0].event_id.to_string());
    assert_eq!(first["event_type"], "user.created");
    assert_eq!(first["aggregate_type"], "user");
    assert_eq!(first["aggregate_id"], uid);
    assert_eq!(first["version"], 1);
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["correlation_id"], "req-outbox-1");
    assert_eq!(first["data"], user, "data is the full entity state");
    assert!(
        chrono::DateTime::parse_from_rfc3339(first["occurred_at"].as_str().unwrap_or_default())
            .is_ok()
    );
    let headers: Value = serde_json::from_str(&rows[0].headers).expect("headers JSON");
    assert_eq!(headers["x-aggregate-id"], uid);
    assert_eq!(headers["x-version"], 1);
    assert_eq!(headers["x-schema-version"], 1);

    // The delete carries the last state and version + 1.
    let last: Value = serde_json::from_str(&rows[4].payload).expect("payload");
    assert_eq!(last["version"], 3);
    assert_eq!(last["data"]["title"], "Chem");
    assert_eq!(last["data"]["version"], 2);
    // Event ids are UUID v7 and ordered like the rows.
    let ids: Vec<_> = rows.iter().map(|r| r.event_id).collect();
    assert!(ids.iter().all(|u| u.get_version_num() == 7));
}
