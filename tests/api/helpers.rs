//! Test harness: each test gets its own database, its own AMQP/Redis prefixes and a real
//! app bound to port 0.

use reqwest::{Client, Method, Response};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::Value;
use uuid::Uuid;
use zealsync::config::{SecretUrl, Settings};
use zealsync::entities::publisher::{courses, outbox, users};
use zealsync::startup::PublisherApp;

use crate::services;

/// Which SQL engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Test databases older than this are left over from earlier runs (no test lasts this long).
const LEFTOVER_AGE_SECS: u64 = 3600;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drops the test databases earlier runs left behind (named `zs_test_<unix secs>_<id>`, older
/// than [`LEFTOVER_AGE_SECS`], or of an older naming), once per test process: idle databases
/// pile up over runs and keep PostgreSQL's autovacuum launcher busy. Best effort.
async fn drop_leftovers(conn: &DatabaseConnection) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(rows) = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'zs\\_test\\_%'",
        ))
        .await
    else {
        return;
    };
    let cutoff = now_secs().saturating_sub(LEFTOVER_AGE_SECS);
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let created = name
            .strip_prefix("zs_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_none_or(|secs| secs < cutoff) {
            let _ = conn
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// A fresh, empty database of `backend`, unique to the caller.
pub async fn fresh_database(backend: Backend) -> String {
    let name = format!(
        "zs_test_{}_{}",
        now_secs(),
        &Uuid::new_v4().simple().to_string()[..16]
    );
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            format!("sqlite://{}?mode=rwc", path.display())
        }
        Backend::Postgres => {
            let admin = services::postgres_url();
            let conn = Database::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            drop_leftovers(&conn).await;
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let mut url = url::Url::parse(&admin).expect("PostgreSQL URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
    }
}

/// Logs of the apps under test go to stderr when `TEST_LOG` is set (e.g. `TEST_LOG=debug`).
fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(level) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(level))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Settings for one test: port 0, unique prefixes, quiet logs, the test services.
pub fn test_settings(publisher_db: &str) -> Settings {
    init_test_logging();
    let mut s = Settings::defaults().expect("default settings");
    let tag = format!("zst-{}", &Uuid::new_v4().simple().to_string()[..12]);
    s.publisher.host = "127.0.0.1".into();
    s.publisher.port = 0;
    s.publisher.database_url = SecretUrl::new(publisher_db);
    s.subscriber.host = "127.0.0.1".into();
    s.subscriber.port = 0;
    s.rabbitmq.url = SecretUrl::new(services::amqp_url());
    s.rabbitmq.prefix = tag.clone();
    s.rabbitmq.queue_type = zealsync::config::QueueType::Classic;
    s.rabbitmq.queue_expires_ms = Some(600_000);
    s.redis.key_prefix = tag;
    s.admin.token = "test-admin-token".into();
    s.log.dir = std::env::temp_dir()
        .join("zealsync-test-logs")
        .display()
        .to_string();
    s
}

/// A running publisher and what a test needs to drive and inspect it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub db: DatabaseConnection,
    pub settings: Settings,
}

impl TestApp {
    /// Starts a publisher on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> Self {
        let db_url = fresh_database(backend).await;
        Self::spawn_with(test_settings(&db_url)).await
    }

    /// Starts a publisher with explicit settings.
    pub async fn spawn_with(settings: Settings) -> Self {
        let app = PublisherApp::build(settings.clone())
            .await
            .expect("publisher starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            client: Client::new(),
            db,
            settings,
        }
    }

    /// Sends `method path` with a JSON body (or none).
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request sent")
    }

    /// POSTs JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    /// Creates a user and returns its body.
    pub async fn create_user(&self, email: &str, role: &str) -> Value {
        let res = self
            .post(
                "/api/users",
                &serde_json::json!({"email": email, "name": "Test User", "role": role}),
            )
            .await;
        assert_eq!(res.status(), 201, "create user {email}");
        res.json().await.expect("user body")
    }

    /// Creates a course for `instructor_id` and returns its body.
    pub async fn create_course(&self, title: &str, instructor_id: &str) -> Value {
        let res = self
            .post(
                "/api/courses",
                &serde_json::json!({"title": title, "description": "d", "instructor_id": instructor_id}),
            )
            .await;
        assert_eq!(res.status(), 201, "create course {title}");
        res.json().await.expect("course body")
    }

    /// Row counts of (users, courses, outbox): the "nothing was written" check.
    pub async fn counts(&self) -> (u64, u64, u64) {
        (
            users::Entity::find()
                .count(&self.db)
                .await
                .expect("count users"),
            courses::Entity::find()
                .count(&self.db)
                .await
                .expect("count courses"),
            outbox::Entity::find()
                .count(&self.db)
                .await
                .expect("count outbox"),
        )
    }
}

/// Asserts a problem+json response with `status` and returns its body.
pub async fn assert_problem(res: Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "application/problem+json", "content type");
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}
