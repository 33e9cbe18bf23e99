//! `/api/courses`: CRUD, the instructor rule (422) and the dependent-rows rule (409).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem};

async fn crud(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let teacher = app.create_user("teach@example.com", "instructor").await;
    let tid = teacher["id"].as_str().expect("id");

    let res = app
        .post(
            "/api/courses",
            &json!({"title": " Rust ", "description": "Ownership", "instructor_id": tid}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let location = res.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    let course: Value = res.json().await.expect("json");
    assert_eq!(course["title"], "Rust");
    assert_eq!(course["instructor_id"], tid);
    assert_eq!(
        location,
        format!("/api/courses/{}", course["id"].as_str().unwrap_or_default())
    );

    let got: Value = app.get(&location).await.json().await.expect("json");
    assert_eq!(got, course);

    let res = app
        .send(
            Method::PUT,
            &location,
            Some(&json!({"title": "Rust 2", "description": "", "instructor_id": tid})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .send(
            Method::PATCH,
            &location,
            Some(&json!({"description": "Borrowing"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.expect("json");
    assert_eq!(
        (patched["title"].as_str(), patched["description"].as_str()),
        (Some("Rust 2"), Some("Borrowing"))
    );
    assert_eq!(patched["version"], 3);

    let list: Value = app
        .get("/api/courses?limit=10")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    // The instructor cannot go while teaching.
    let teacher_path = format!("/api/users/{tid}");
    assert_problem(app.send(Method::DELETE, &teacher_path, None).await, 409).await;
    assert_problem(
        app.send(
            Method::PATCH,
            &teacher_path,
            Some(&json!({"role": "student"})),
        )
        .await,
        409,
    )
    .await;

    assert_eq!(
        app.send(Method::DELETE, &location, None).await.status(),
        204
    );
    assert_problem(app.get(&location).await, 404).await;
    assert_eq!(
        app.send(Method::DELETE, &teacher_path, None).await.status(),
        204
    );
    assert_eq!(app.counts().await, (0, 0, 6));
}

#[tokio::test]
async fn course_crud_on_postgres() {
    crud(Backend::Postgres).await;
}

#[tokio::test]
async fn course_crud_on_sqlite() {
    crud(Backend::Sqlite).await;
}

#[tokio::test]
async fn instructor_must_exist_and_instruct() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let student = app.create_user("s@example.com", "student").await;
    let teacher = app.create_user("t@example.com", "instructor").await;
    let course = app
        .create_course("Algebra", teacher["id"].as_str().expect("id"))
        .await;
    let before = app.counts().await;

    let cases = [
        json!({"title": "X", "instructor_id": student["id"]}),
        json!({"title": "X", "instructor_id": uuid::Uuid::now_v7().to_string()}),
        json!({"title": "X", "instructor_id": "not-a-uuid"}),
        json!({"title": "", "instructor_id": teacher["id"]}),
        json!({"title": "X", "description": "d".repeat(10_001), "instructor_id": teacher["id"]}),
        json!({"title": "X", "instructor_id": teacher["id"], "price": 3}),
        json!({"instructor_id": teacher["id"]}),
    ];
    for body in cases {
        assert_problem(app.post("/api/courses", &body).await, 422).await;
    }
    let path = format!("/api/courses/{}", course["id"].as_str().expect("id"));
    let moved = json!({"instructor_id": student["id"]});
    assert_problem(app.send(Method::PATCH, &path, Some(&moved)).await, 422).await;
    assert_eq!(app.counts().await, before, "nothing written");
}
