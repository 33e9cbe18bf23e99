//! Throw-away resources for the isolated benchmarks: a database next to the configured one,
//! a topology prefix and a Redis key prefix, all removed afterwards.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend};
use uuid::Uuid;

use crate::bench::BenchError;
use crate::config::{SecretUrl, Settings};

/// A scratch database (PostgreSQL beside the configured one, or a temporary SQLite file).
pub struct ScratchDb {
    pub url: SecretUrl,
    admin: Option<(String, String)>,
    file: Option<std::path::PathBuf>,
}

impl ScratchDb {
    /// Creates it next to `like` (a database URL of the same server).
    pub async fn create(like: &SecretUrl) -> Result<Self, BenchError> {
        let name = format!("zealsync_bench_{}", Uuid::new_v4().simple());
        let raw = like.expose();
        if raw.starts_with("postgres") {
            let admin = Database::connect(raw).await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await?;
            let _ = admin.close().await;
            let mut url = url::Url::parse(raw).map_err(|e| BenchError::Other(e.to_string()))?;
            url.set_path(&format!("/{name}"));
            Ok(Self {
                url: SecretUrl::new(url.to_string()),
                admin: Some((raw.to_string(), name)),
                file: None,
            })
        } else {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            Ok(Self {
                url: SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display())),
                admin: None,
                file: Some(path),
            })
        }
    }

    /// Drops the database (connections to it must be closed).
    pub async fn drop_it(self, conn: DatabaseConnection) {
        let backend = conn.get_database_backend();
        let _ = conn.close().await;
        if let (DbBackend::Postgres, Some((admin, name))) = (backend, self.admin)
            && let Ok(admin) = Database::connect(admin).await
        {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
        if let Some(f) = self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Settings for an isolated run: fresh AMQP and Redis prefixes, queues that expire.
pub fn isolated(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    let tag = format!("zsbench-{}", &Uuid::new_v4().simple().to_string()[..10]);
    s.rabbitmq.prefix = tag.clone();
    s.rabbitmq.queue_expires_ms = Some(300_000);
    s.redis.key_prefix = tag;
    s
}

/// Deletes every queue of `settings`' topology.
pub async fn delete_queues(settings: &Settings) {
    let topology = crate::rabbitmq::topology::Topology::new(&settings.rabbitmq, &settings.retry);
    if let Ok(conn) = lapin::Connection::connect(
        settings.rabbitmq.url.expose(),
        lapin::ConnectionProperties::default(),
    )
    .await
        && let Ok(ch) = conn.create_channel().await
    {
        for q in topology.queues() {
            let _ = ch
                .queue_delete(
                    q.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
        let _ = ch
            .exchange_delete(
                topology.exchange().as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = conn.close(200, "bench done".into()).await;
    }
}
