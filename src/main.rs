//! `zealsync`: one binary, one subcommand per role.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zealsync::config::{Settings, database, logging};
use zealsync::migration::{PublisherMigrator, SubscriberMigrator};
use zealsync::startup::PublisherApp;

/// Keeps data in sync between microservices through RabbitMQ.
#[derive(Parser)]
#[command(name = "zealsync", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the publisher's REST API (port 8000) and run its outbox relay.
    Publisher,
    /// Run the migrations of both service databases, then exit.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let stem = match cli.command {
        Command::Publisher => "publisher",
        Command::Migrate => "migrate",
    };
    let _guard = logging::init(&settings.log, stem);
    tracing::info!(settings = ?settings, "starting {stem}");
    let result = match cli.command {
        Command::Publisher => run_publisher(settings).await,
        Command::Migrate => migrate(settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{stem} failed");
            eprintln!("zealsync {stem}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_publisher(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let app = PublisherApp::build(settings).await?;
    let handle = app.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let db = database::connect(&settings.publisher.database_url).await?;
    database::migrate::<PublisherMigrator>(&db).await?;
    let db = database::connect(&settings.subscriber.database_url).await?;
    database::migrate::<SubscriberMigrator>(&db).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
