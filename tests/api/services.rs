//! Where the tests find PostgreSQL, RabbitMQ and Redis: environment variables first
//! (`ZEALSYNC_TEST_DATABASE_URL`, `ZEALSYNC_TEST_AMQP_URL`, `ZEALSYNC_TEST_REDIS_URL`),
//! testcontainers otherwise; with neither, a panic that says what to set.

use std::sync::OnceLock;

use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::rabbitmq::RabbitMq;
use testcontainers_modules::redis::Redis;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, Image};

/// Starts `image` in a container that lives as long as the test process; returns host:port.
fn start_container<I: Image + 'static>(image: I, port: u16) -> Result<String, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let c: ContainerAsync<I> = image.start().await.map_err(|e| e.to_string())?;
            let host = c.get_host().await.map_err(|e| e.to_string())?;
            let port = c
                .get_host_port_ipv4(port)
                .await
                .map_err(|e| e.to_string())?;
            // Kept running until the process exits (testcontainers' reaper removes it).
            std::mem::forget(c);
            Ok(format!("{host}:{port}"))
        })
    })
    .join()
    .map_err(|_| "container start panicked".to_string())?
}

fn resolve(
    var: &str,
    cell: &'static OnceLock<Result<String, String>>,
    start: fn() -> Result<String, String>,
) -> String {
    if let Ok(url) = std::env::var(var)
        && !url.trim().is_empty()
    {
        return url;
    }
    match cell.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(e) => panic!(
            "no {var} set and testcontainers could not start one ({e}). Set {var} to a running \
             service (see .ci/run: ZEALSYNC_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres, \
             ZEALSYNC_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f, \
             ZEALSYNC_TEST_REDIS_URL=redis://127.0.0.1:6379) or run a Docker engine."
        ),
    }
}

/// An admin URL of a PostgreSQL server on which tests may create databases.
pub fn postgres_url() -> String {
    static CELL: OnceLock<Result<String, String>> = OnceLock::new();
    resolve("ZEALSYNC_TEST_DATABASE_URL", &CELL, || {
        start_container(Postgres::default(), 5432)
            .map(|hp| format!("postgres://postgres:postgres@{hp}/postgres"))
    })
}

/// The AMQP URL of a RabbitMQ broker.
pub fn amqp_url() -> String {
    static CELL: OnceLock<Result<String, String>> = OnceLock::new();
    resolve("ZEALSYNC_TEST_AMQP_URL", &CELL, || {
        start_container(RabbitMq::default(), 5672).map(|hp| format!("amqp://guest:guest@{hp}/%2f"))
    })
}

/// The URL of a Redis server.
#[allow(dead_code)]
pub fn redis_url() -> String {
    static CELL: OnceLock<Result<String, String>> = OnceLock::new();
    resolve("ZEALSYNC_TEST_REDIS_URL", &CELL, || {
        start_container(Redis::default(), 6379).map(|hp| format!("redis://{hp}"))
    })
}
