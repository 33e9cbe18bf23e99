//! The windows users look through: Prometheus metrics, the live stream, trace context across
//! the hop, and the dashboard in a real (headless) Chromium.

use std::time::Duration;

use base64::Engine;
use lapin::options::BasicGetOptions;
use serde_json::{Value, json};

use zealsync::config::SecretUrl;

use crate::helpers::{Backend, fresh_database, test_settings};
use crate::stack::{TestStack, cli_env, eventually};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn metrics_cover_http_outbox_publishing_and_consuming() {
    let stack = TestStack::spawn().await;
    let api = &stack.publisher;
    api.create_user("m@example.com", "student").await;
    let client = &api.client;
    let publisher = eventually("publisher metrics", WAIT, || async {
        let text = client
            .get(format!("{}/metrics", api.address))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("zealsync_events_published_total")
            .then_some(text)
    })
    .await;
    for name in [
        "zealsync_http_requests_total{",
        "zealsync_http_request_duration_seconds_bucket{",
        "zealsync_outbox_pending",
        "zealsync_outbox_oldest_pending_age_seconds",
        "zealsync_publish_confirm_seconds_bucket",
        "zealsync_relay_delay_seconds_bucket",
    ] {
        assert!(
            publisher.contains(name),
            "{name} missing from:\n{publisher}"
        );
    }
    assert!(publisher.contains("route=\"/api/users\""), "{publisher}");
    let subscriber = eventually("subscriber metrics", WAIT, || async {
        let text = client
            .get(format!("{}/metrics", stack.subscriber.address))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("zealsync_events_consumed_total")
            && text.contains("zealsync_sync_lag_seconds_bucket"))
        .then_some(text)
    })
    .await;
    assert!(subscriber.contains("outcome=\"applied\""), "{subscriber}");
    assert!(subscriber.contains("handler=\"profiles\""), "{subscriber}");
}

#[tokio::test]
async fn live_stream_relays_applied_changes() {
    let stack = TestStack::spawn().await;
    let mut res = stack
        .publisher
        .client
        .get(format!("{}/api/sync/stream", stack.subscriber.address))
        .send()
        .await
        .expect("stream");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let first = res.chunk().await.expect("chunk").expect("hello");
    assert!(String::from_utf8_lossy(&first).starts_with(": connected"));
    let user = stack
        .publisher
        .create_user("sse@example.com", "student")
        .await;
    let id = user["id"].as_str().expect("id").to_string();
    let mut text = String::new();
    while !text.contains(&id) {
        let chunk = tokio::time::timeout(WAIT, res.chunk())
            .await
            .expect("in time")
            .expect("chunk")
            .expect("more");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: change\ndata: {"), "{text}");
    assert!(text.contains("\"event_type\":\"user.created\""), "{text}");
}

#[tokio::test]
async fn a_request_id_follows_the_change_through_the_logs() {
    use tokio::io::AsyncBufReadExt;
    // `zealsync all` as a user runs it, on fresh databases, logging to its own directory.
    let mut settings = test_settings(&fresh_database(Backend::Postgres).await);
    settings.subscriber.database_url = SecretUrl::new(fresh_database(Backend::Postgres).await);
    settings.redis.url = SecretUrl::new(crate::services::redis_url());
    let logs =
        std::env::temp_dir().join(format!("zealsync-trace-{}", uuid::Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zealsync"))
        .arg("all")
        .envs(cli_env(&settings))
        .env("ZEALSYNC__LOG__DIR", &logs)
        .env("ZEALSYNC__LOG__LEVEL", "info")
        .env("ZEALSYNC__LOG__FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut publisher, mut subscriber) = (None, None);
    while publisher.is_none() || subscriber.is_none() {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("starts")
            .expect("read")
            .expect("line");
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        let port = v["fields"]["port"].as_u64();
        match v["fields"]["message"].as_str() {
            Some("publisher listening") => publisher = port,
            Some("subscriber listening") => subscriber = port,
            _ => {}
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (p, s) = (
        publisher.unwrap_or_default(),
        subscriber.unwrap_or_default(),
    );
    let client = reqwest::Client::new();
    let rid = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let user: Value = client
        .post(format!("http://127.0.0.1:{p}/api/users"))
        .header("X-Request-Id", &rid)
        .json(&json!({"email": "trace@example.com", "name": "T", "role": "student"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = user["id"].as_str().expect("id").to_string();
    eventually("profile synced", WAIT, || async {
        let r = client
            .get(format!("http://127.0.0.1:{s}/api/profiles/{id}"))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("pid");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    let _ = tokio::time::timeout(WAIT, child.wait()).await;
    // One grep over logs/ follows the change: the HTTP request, then both projections.
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(&logs).expect("log dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
        hits.extend(text.lines().filter(|l| l.contains(&rid)).map(str::to_owned));
    }
    let all = hits.join("\n");
    assert!(all.contains("request handled"), "{all}");
    assert!(all.contains("\"handler\":\"profiles\""), "{all}");
    assert!(all.contains("\"handler\":\"redis_users\""), "{all}");
}

#[tokio::test]
async fn messages_carry_w3c_trace_context() {
    let stack = TestStack::spawn().await;
    let (_c, ch) = stack.channel().await;
    let queue = crate::pipeline::tap(&stack, &ch).await;
    let rid = uuid::Uuid::now_v7();
    stack
        .publisher
        .client
        .post(format!("{}/api/users", stack.publisher.address))
        .header("X-Request-Id", rid.to_string())
        .json(&json!({"email": "w3c@example.com", "name": "W", "role": "student"}))
        .send()
        .await
        .expect("send");
    let msg = eventually("message", WAIT, || async {
        ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .ok()
            .flatten()
    })
    .await;
    let headers = msg.delivery.properties.headers().clone().expect("headers");
    let tp = match headers.inner().get("traceparent") {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        other => panic!("traceparent: {other:?}"),
    };
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!((parts[0], parts[3]), ("00", "01"));
    assert_eq!(
        parts[1],
        rid.simple().to_string(),
        "trace id = the request id"
    );
    assert_eq!(parts[2].len(), 16);
}

/// A WebDriver session on headless Chromium (chromedriver), spoken to with plain HTTP.
struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    client: reqwest::Client,
}

impl Browser {
    async fn start() -> Self {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromedriver).exists()
                && std::path::Path::new(&chromium).exists(),
            "the dashboard test needs Chromium and ChromeDriver: apt-get install chromium chromium-driver \
             (or set CHROMIUM and CHROMEDRIVER); .ci/run installs them"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually("chromedriver up", WAIT, || async {
            let s: Value = client
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (s["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile = std::env::temp_dir().join(format!(
            "zealsync-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1100",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let res: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("json");
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        Self {
            driver,
            base,
            session,
            client,
        }
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let res: Value = self
            .client
            .post(format!("{}/session/{}/{path}", self.base, self.session))
            .json(&body)
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        res["value"].clone()
    }

    async fn script(&self, js: &str) -> Value {
        self.command("execute/sync", json!({"script": js, "args": []}))
            .await
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let res: Value = self
            .client
            .get(format!("{}/session/{}/screenshot", self.base, self.session))
            .send()
            .await
            .expect("screenshot")
            .json()
            .await
            .expect("json");
        let png = base64::engine::general_purpose::STANDARD
            .decode(res["value"].as_str().unwrap_or_default())
            .expect("base64 png");
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(path, png).expect("write screenshot");
    }

    async fn quit(mut self) {
        let _ = self
            .client
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill().await;
    }
}

#[tokio::test]
async fn dashboard_shows_new_users_live_in_a_real_browser() {
    let stack = TestStack::spawn().await;
    let browser = Browser::start().await;
    browser
        .command(
            "url",
            json!({"url": format!("{}/", stack.subscriber.address)}),
        )
        .await;
    eventually("stream connected", WAIT, || async {
        let label = browser
            .script("return document.getElementById('sse-label').textContent")
            .await;
        label
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("live"))
            .then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let u = stack
            .publisher
            .create_user(&format!("dash{i}@example.com"), "student")
            .await;
        ids.push(u["id"].as_str().expect("id").to_string());
    }
    let shown = eventually("users in the live feed", WAIT, || async {
        let v = browser
            .script("return Array.from(document.querySelectorAll('#feed li.change')).map(li => li.dataset.aggregateId)")
            .await;
        let shown: Vec<String> = v.as_array()?.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect();
        ids.iter().all(|id| shown.contains(id)).then_some(shown)
    })
    .await;
    assert!(shown.len() >= 3);
    // The polled panels fill in too.
    eventually("queue table filled", WAIT, || async {
        let text = browser
            .script("return document.getElementById('queues').textContent")
            .await;
        text.as_str()
            .is_some_and(|t| t.contains(".subscriber.sql"))
            .then_some(())
    })
    .await;
    eventually("counts by outcome filled", WAIT, || async {
        let text = browser
            .script("return document.getElementById('outcomes').textContent")
            .await;
        text.as_str().is_some_and(|t| t.contains('3')).then_some(())
    })
    .await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let shot = dir.join("dashboard-screenshot.png");
    browser.screenshot(&shot).await;
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false)
    );
    browser.quit().await;
}

/// Every route each service serves, as (method, path template).
const PUBLISHER_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("get", "/api/users/{id}"),
    ("put", "/api/users/{id}"),
    ("patch", "/api/users/{id}"),
    ("delete", "/api/users/{id}"),
    ("get", "/api/courses"),
    ("post", "/api/courses"),
    ("get", "/api/courses/{id}"),
    ("put", "/api/courses/{id}"),
    ("patch", "/api/courses/{id}"),
    ("delete", "/api/courses/{id}"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
    ("get", "/admin/outbox"),
    ("post", "/admin/replay"),
];

const SUBSCRIBER_ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/api/profiles"),
    ("get", "/api/profiles/{id}"),
    ("get", "/api/catalog/courses"),
    ("get", "/api/catalog/courses/{id}"),
    ("get", "/api/sync/status"),
    ("get", "/api/sync/stream"),
    ("get", "/admin/dead-letters"),
    ("post", "/admin/dead-letters/{id}/retry"),
    ("delete", "/admin/dead-letters/{id}"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn openapi_documents_every_route() {
    let stack = TestStack::spawn().await;
    let client = &stack.publisher.client;
    for (base, routes) in [
        (&stack.publisher.address, PUBLISHER_ROUTES),
        (&stack.subscriber.address, SUBSCRIBER_ROUTES),
    ] {
        let spec: Value = client
            .get(format!("{base}/docs/openapi.json"))
            .send()
            .await
            .expect("spec")
            .json()
            .await
            .expect("json");
        assert!(
            spec["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.")),
            "{spec}"
        );
        let documented: usize = spec["paths"]
            .as_object()
            .map(|p| {
                p.values()
                    .map(|m| m.as_object().map_or(0, |o| o.len()))
                    .sum()
            })
            .unwrap_or(0);
        for (method, path) in routes {
            assert!(
                spec["paths"][path][method].is_object(),
                "{method} {path} missing from {base}/docs/openapi.json"
            );
            // ... and the route really exists (an unknown route answers "no route for").
            let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            if *method == "get" && !concrete.ends_with("/stream") {
                let res = client
                    .get(format!("{base}{concrete}"))
                    .send()
                    .await
                    .expect("send");
                let text = res.text().await.unwrap_or_default();
                assert!(
                    !text.contains("no route for"),
                    "{method} {path} is documented but not served"
                );
            }
        }
        assert_eq!(
            documented,
            routes.len(),
            "nothing documented that is not served"
        );
        let ui = client
            .get(format!("{base}/docs"))
            .send()
            .await
            .expect("docs");
        assert_eq!(ui.status(), 200);
    }
}
