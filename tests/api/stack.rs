//! The whole system for one test: a publisher and a subscriber on their own PostgreSQL
//! databases, sharing a test-unique AMQP prefix and Redis key prefix.

use std::future::Future;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use sea_orm::DatabaseConnection;
use zealsync::config::{SecretUrl, Settings};
use zealsync::rabbitmq::envelope::Envelope;
use zealsync::startup::{AppHandle, SubscriberApp};

use crate::helpers::{Backend, TestApp, fresh_database, test_settings};
use crate::services;

/// A running subscriber.
pub struct TestSubscriber {
    pub address: String,
    pub db: DatabaseConnection,
    pub handle: AppHandle,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestSubscriber {
    /// Starts a subscriber with `settings` and waits until it is ready: its consumers connect in
    /// the background, and a message published before they declared their queues would be
    /// unroutable.
    pub async fn spawn(settings: Settings) -> Self {
        let app = SubscriberApp::build(settings)
            .await
            .expect("subscriber starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        let handle = app.handle();
        let done = tokio::spawn(app.run_until_stopped());
        let ready = format!("{address}/health/ready");
        let client = reqwest::Client::new();
        eventually("subscriber ready", Duration::from_secs(60), || async {
            let res = client.get(&ready).send().await.ok()?;
            res.status().is_success().then_some(())
        })
        .await;
        Self {
            address,
            db,
            handle,
            done,
        }
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(self) {
        self.handle.stop().await;
        let _ = self.done.await;
    }
}

/// Publisher + subscriber + handles on the shared services.
pub struct TestStack {
    pub publisher: TestApp,
    pub subscriber: TestSubscriber,
    pub settings: Settings,
    pub redis: redis::aio::MultiplexedConnection,
}

impl TestStack {
    /// Starts both services on fresh PostgreSQL databases.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts both services after `tweak` adjusted the settings.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(&fresh_database(Backend::Postgres).await);
        settings.subscriber.database_url = SecretUrl::new(fresh_database(Backend::Postgres).await);
        settings.redis.url = SecretUrl::new(services::redis_url());
        settings.retry.delays_ms = vec![100, 200];
        tweak(&mut settings);
        let publisher = TestApp::spawn_with(settings.clone()).await;
        let subscriber = TestSubscriber::spawn(settings.clone()).await;
        let redis = redis_conn().await;
        Self {
            publisher,
            subscriber,
            settings,
            redis,
        }
    }

    /// The Redis key prefix of this test.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.settings.redis.key_prefix)
    }

    /// The exchange of this test.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.settings.rabbitmq.prefix)
    }

    /// A confirm channel on the test broker.
    pub async fn channel(&self) -> (Connection, Channel) {
        amqp_channel().await
    }

    /// Publishes a crafted envelope straight to the exchange (confirmed).
    pub async fn publish_raw(&self, channel: &Channel, routing_key: &str, body: &[u8]) {
        let confirm = channel
            .basic_publish(
                self.exchange().as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }

    /// Publishes an envelope under its own event type.
    pub async fn publish(&self, channel: &Channel, env: &Envelope) {
        self.publish_raw(channel, &env.event_type.to_string(), &env.encode())
            .await;
    }
}

/// A Redis connection to the test server.
pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(services::redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// A channel with publisher confirms on the test broker.
pub async fn amqp_channel() -> (Connection, Channel) {
    let conn = Connection::connect(&services::amqp_url(), ConnectionProperties::default())
        .await
        .expect("amqp connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (conn, ch)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Environment that configures a `zealsync` child process exactly like `settings`.
pub fn cli_env(settings: &Settings) -> Vec<(String, String)> {
    vec![
        ("ZEALSYNC_ENV".into(), "test".into()),
        (
            "ZEALSYNC__PUBLISHER__DATABASE_URL".into(),
            settings.publisher.database_url.expose().into(),
        ),
        ("ZEALSYNC__PUBLISHER__PORT".into(), "0".into()),
        (
            "ZEALSYNC__SUBSCRIBER__DATABASE_URL".into(),
            settings.subscriber.database_url.expose().into(),
        ),
        ("ZEALSYNC__SUBSCRIBER__PORT".into(), "0".into()),
        (
            "ZEALSYNC__RABBITMQ__URL".into(),
            settings.rabbitmq.url.expose().into(),
        ),
        (
            "ZEALSYNC__RABBITMQ__PREFIX".into(),
            settings.rabbitmq.prefix.clone(),
        ),
        ("ZEALSYNC__RABBITMQ__QUEUE_TYPE".into(), "classic".into()),
        (
            "ZEALSYNC__RABBITMQ__QUEUE_EXPIRES_MS".into(),
            "600000".into(),
        ),
        ("ZEALSYNC__RETRY__DELAYS_MS".into(), "100,200".into()),
        (
            "ZEALSYNC__REDIS__URL".into(),
            settings.redis.url.expose().into(),
        ),
        (
            "ZEALSYNC__REDIS__KEY_PREFIX".into(),
            settings.redis.key_prefix.clone(),
        ),
        (
            "ZEALSYNC__LOG__DIR".into(),
            std::env::temp_dir()
                .join("zealsync-test-logs")
                .display()
                .to_string(),
        ),
        ("ZEALSYNC__LOG__LEVEL".into(), "warn".into()),
    ]
}
