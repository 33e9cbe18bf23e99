//! The subscriber service: one consumer per queue group feeding the SQL and Redis
//! projections, plus the read, status and admin API.

use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::web;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;

use crate::config::{Settings, database};
use crate::controllers::admin_auth::AdminToken;
use crate::controllers::health::Readiness;
use crate::controllers::state::SubscriberState;
use crate::controllers::{dashboard, dead_letters, health, read_models, sync_status};
use crate::handlers::redis::{CourseCache, RedisKeys, UserCache};
use crate::handlers::sql::{CatalogProjection, ProfileProjection};
use crate::links::LinkFlag;
use crate::migration::SubscriberMigrator;
use crate::rabbitmq::amqp;
use crate::rabbitmq::consumer::QueueConsumer;
use crate::rabbitmq::parking::DeadLetterStore;
use crate::rabbitmq::router::Router;
use crate::rabbitmq::stats::SyncStats;
use crate::rabbitmq::topology::{Group, Topology};
use crate::shutdown::{self, ShutdownTrigger};
use crate::startup::publisher::AppHandle;
use crate::startup::{StartupError, http};

/// A running subscriber: its HTTP server and its consumers.
pub struct SubscriberApp {
    port: u16,
    server: Server,
    db: DatabaseConnection,
    /// Consumers and the retention sweep.
    consumers: Vec<JoinHandle<()>>,
    stop: ShutdownTrigger,
}

/// Creates the Redis pool of `settings`.
pub fn redis_pool(settings: &Settings) -> Result<deadpool_redis::Pool, StartupError> {
    let mut cfg = deadpool_redis::Config::from_url(settings.redis.url.expose());
    cfg.pool = Some(deadpool_redis::PoolConfig::new(
        settings.redis.pool_size.max(1),
    ));
    cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .map_err(|e| StartupError::Redis(e.to_string()))
}

impl SubscriberApp {
    /// Opens and migrates the database, starts both consumers (they connect, and reconnect,
    /// in the background), binds the listener (port 0 allowed) and starts serving.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        crate::telemetry::handle();
        let db = database::connect(&settings.subscriber.database_url).await?;
        database::migrate::<SubscriberMigrator>(&db).await?;
        let (listener, port) = http::bind(&settings.subscriber.host, settings.subscriber.port)?;
        let redis = redis_pool(&settings)?;
        let amqp = amqp::pool(&settings.rabbitmq, "zealsync-subscriber-admin")
            .map_err(StartupError::Broker)?;
        let topology = Topology::new(&settings.rabbitmq, &settings.retry);
        let stats = Arc::new(SyncStats::default());
        let parking = DeadLetterStore::new(db.clone(), topology.clone());
        let keys = RedisKeys::new(settings.redis.key_prefix.clone());
        let stream_keys = keys.clone();
        let routers = [
            (
                Group::Sql,
                Router::new(
                    Arc::new(ProfileProjection::new(db.clone())),
                    Arc::new(CatalogProjection::new(db.clone())),
                ),
            ),
            (
                Group::Redis,
                Router::new(
                    Arc::new(UserCache::new(redis.clone(), keys.clone())),
                    Arc::new(CourseCache::new(redis.clone(), keys)),
                ),
            ),
        ];
        let (stop, signal) = shutdown::channel();
        let mut links = Vec::new();
        let mut consumers = Vec::new();
        for (group, router) in routers {
            let link = LinkFlag::new(match group {
                Group::Sql => "rabbitmq_sql_consumer",
                Group::Redis => "rabbitmq_redis_consumer",
            });
            links.push(link.clone());
            let consumer = QueueConsumer {
                group,
                url: settings.rabbitmq.url.clone(),
                prefetch: settings.rabbitmq.prefetch,
                max_attempts: settings.retry.max_attempts,
                topology: topology.clone(),
                router,
                parking: parking.clone(),
                stats: stats.clone(),
                link,
            };
            consumers.push(tokio::spawn(consumer.run(signal.clone())));
        }
        {
            let db = db.clone();
            consumers.push(tokio::spawn(crate::retention::sweep(
                "processed_events",
                settings.outbox.retention_hours,
                std::time::Duration::from_millis(settings.outbox.cleanup_interval_ms.max(10)),
                signal.clone(),
                move |cutoff, limit| {
                    let db = db.clone();
                    async move { crate::handlers::sql::inbox::prune(&db, cutoff, limit).await }
                },
            )));
        }
        let state = web::Data::new(SubscriberState {
            db: db.clone(),
            amqp,
            topology,
            stats,
            parking,
            admin: AdminToken::new(settings.admin.token()),
            redis_url: settings.redis.url.clone(),
            keys: stream_keys,
        });
        let readiness = web::Data::new(Readiness {
            db: db.clone(),
            links,
            redis: Some(redis),
        });
        let server = http::serve(listener, move |cfg| {
            cfg.app_data(state.clone())
                .app_data(readiness.clone())
                .configure(read_models::routes)
                .configure(dashboard::routes)
                .configure(sync_status::routes)
                .configure(dead_letters::routes)
                .configure(health::routes)
                .configure(crate::controllers::openapi::subscriber_routes)
                .configure(crate::controllers::metrics::subscriber_routes);
        })?;
        tracing::info!(port, "subscriber listening");
        Ok(Self {
            port,
            server,
            db,
            consumers,
            stop,
        })
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The subscriber's database (for tools and tests that inspect it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A handle that stops the HTTP server and the consumers.
    pub fn handle(&self) -> AppHandle {
        AppHandle::new(self.server.handle(), self.stop.clone())
    }

    /// Serves until stopped, then lets each consumer finish the message in hand.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.stop.trigger();
        for c in self.consumers {
            let _ = c.await;
        }
        served
    }
}
