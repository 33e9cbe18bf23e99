//! The publisher service: REST API on users and courses, plus the outbox relay.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::config::database;
use crate::controllers::admin_auth::AdminToken;
use crate::controllers::health::Readiness;
use crate::controllers::state::PublisherState;
use crate::controllers::{courses, health, outbox_admin, replay_admin, users};
use crate::links::LinkFlag;
use crate::migration::PublisherMigrator;
use crate::rabbitmq::amqp;
use crate::rabbitmq::handoff::Handoff;
use crate::rabbitmq::producer::{OutboxRelay, ROUNDS_IN_FLIGHT};
use crate::rabbitmq::topology::Topology;
use crate::services::create_batch::CreateBatcher;
use crate::shutdown::{self, ShutdownTrigger};
use crate::startup::{StartupError, http};

/// A running publisher: its HTTP server and its outbox relay.
pub struct PublisherApp {
    port: u16,
    server: Server,
    db: DatabaseConnection,
    relays: Vec<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    stop: ShutdownTrigger,
}

impl PublisherApp {
    /// Opens and migrates the database, starts the relay, binds the listener (port 0
    /// allowed) and starts serving. The broker may be down: writes still succeed and wait in
    /// the outbox.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        crate::telemetry::handle();
        let db = database::connect(&settings.publisher.database_url).await?;
        database::migrate::<PublisherMigrator>(&db).await?;
        let (listener, port) = http::bind(&settings.publisher.host, settings.publisher.port)?;
        let wake = Arc::new(Notify::new());
        let broker = LinkFlag::new("rabbitmq");
        let pool =
            amqp::pool(&settings.rabbitmq, "zealsync-publisher").map_err(StartupError::Broker)?;
        let (stop, signal) = shutdown::channel();
        let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let workers = if postgres {
            settings.outbox.relay_workers.max(1)
        } else {
            1
        };
        // The relay gets connections of its own: under API load it must not wait in the
        // requests' queue for one. SQLite keeps its single writer connection.
        let relay_db = if postgres {
            database::connect_relay(
                &settings.publisher.database_url,
                (ROUNDS_IN_FLIGHT * workers) as u32,
            )
            .await?
        } else {
            db.clone()
        };
        let topology = Topology::new(&settings.rabbitmq, &settings.retry);
        // Writers hand their committed rows to the first relay (PostgreSQL, where rows can be
        // claimed); the others, and its own polling, claim what is left.
        let lease = Duration::from_millis(settings.outbox.handoff_lease_ms.max(1));
        let (handoff, mut handed) = if postgres {
            let (tx, rx) = Handoff::channel(4 * settings.rabbitmq.confirm_window.max(1), lease);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let relays: Vec<JoinHandle<()>> = (0..workers)
            .map(|_| {
                let mut relay = OutboxRelay::new(
                    relay_db.clone(),
                    pool.clone(),
                    topology.clone(),
                    settings.outbox.clone(),
                    settings.rabbitmq.confirm_window,
                    wake.clone(),
                    broker.clone(),
                );
                if let Some(rx) = handed.take() {
                    relay = relay.with_handoff(rx, lease);
                }
                tokio::spawn(relay.run(signal.clone()))
            })
            .collect();
        let sweeper = {
            let db = db.clone();
            tokio::spawn(crate::retention::sweep(
                "outbox",
                settings.outbox.retention_hours,
                std::time::Duration::from_millis(settings.outbox.cleanup_interval_ms.max(10)),
                signal,
                move |cutoff, limit| {
                    let db = db.clone();
                    async move { crate::services::outbox::prune_published(&db, cutoff, limit).await }
                },
            ))
        };
        let state = web::Data::new(PublisherState {
            db: db.clone(),
            relay_wake: wake.clone(),
            creates: postgres
                .then(|| CreateBatcher::start(db.clone(), handoff.clone(), wake.clone())),
            handoff,
            admin: AdminToken::new(settings.admin.token()),
        });
        let readiness = web::Data::new(Readiness {
            db: db.clone(),
            links: vec![broker],
            redis: None,
        });
        let server = http::serve(listener, move |cfg| {
            cfg.app_data(state.clone())
                .app_data(readiness.clone())
                .configure(users::routes)
                .configure(courses::routes)
                .configure(health::routes)
                .configure(crate::controllers::openapi::publisher_routes)
                .configure(crate::controllers::metrics::publisher_routes)
                .configure(outbox_admin::routes)
                .configure(replay_admin::routes);
        })?;
        tracing::info!(port, "publisher listening");
        Ok(Self {
            port,
            server,
            db,
            relays,
            sweeper,
            stop,
        })
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The publisher's database (for tools and tests that inspect it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A handle that stops the HTTP server and then the relay.
    pub fn handle(&self) -> AppHandle {
        AppHandle::new(self.server.handle(), self.stop.clone())
    }

    /// Serves until stopped, then lets the relay finish its round.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.stop.trigger();
        for r in self.relays {
            let _ = r.await;
        }
        let _ = self.sweeper.await;
        served
    }
}

/// Stops a running service gracefully: HTTP first (in-flight requests finish), then workers.
#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
    stop: ShutdownTrigger,
}

impl AppHandle {
    /// A handle over a server and its workers' stop trigger.
    pub fn new(server: ServerHandle, stop: ShutdownTrigger) -> Self {
        Self { server, stop }
    }

    /// Stops the service; `run_until_stopped` returns once everything has finished.
    pub async fn stop(&self) {
        self.server.stop(true).await;
        self.stop.trigger();
    }
}
