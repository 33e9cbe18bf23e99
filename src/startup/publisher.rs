//! The publisher service: REST API on users and courses, plus the outbox relay.

use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::config::database;
use crate::config::Settings;
use crate::controllers::admin_auth::AdminToken;
use crate::controllers::health::Readiness;
use crate::controllers::state::PublisherState;
use crate::controllers::{courses, health, outbox_admin, users};
use crate::migration::PublisherMigrator;
use crate::startup::{StartupError, http};

/// A running publisher: its HTTP server and background workers.
pub struct PublisherApp {
    port: u16,
    server: Server,
    db: DatabaseConnection,
}

impl PublisherApp {
    /// Opens and migrates the database, binds the listener (port 0 allowed) and starts serving.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let db = database::connect(&settings.publisher.database_url).await?;
        database::migrate::<PublisherMigrator>(&db).await?;
        let (listener, port) = http::bind(&settings.publisher.host, settings.publisher.port)?;
        let state = web::Data::new(PublisherState {
            db: db.clone(),
            relay_wake: Arc::new(Notify::new()),
            admin: AdminToken::new(settings.admin.token()),
        });
        let readiness = web::Data::new(Readiness {
            db: db.clone(),
            links: vec![],
        });
        let server = http::serve(listener, move |cfg| {
            cfg.app_data(state.clone())
                .app_data(readiness.clone())
                .configure(users::routes)
                .configure(courses::routes)
                .configure(health::routes)
                .configure(outbox_admin::routes);
        })?;
        tracing::info!(port, "publisher listening");
        Ok(Self { port, server, db })
    }

    /// The port the server is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The publisher's database (for tools and tests that inspect it).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
