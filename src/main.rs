//! `zealsync`: one binary, one subcommand per role.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zealsync::config::{Settings, database, logging};
use zealsync::migration::{PublisherMigrator, SubscriberMigrator};
use zealsync::startup::{PublisherApp, SubscriberApp};

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
    /// Consume events into the SQL and Redis projections and serve the read API (port 8001).
    Subscriber,
    /// Run publisher and subscriber in one process (development).
    All,
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
        Command::Subscriber => "subscriber",
        Command::All => "all",
        Command::Migrate => "migrate",
    };
    let _guard = logging::init(&settings.log, stem);
    tracing::info!(settings = ?settings, "starting {stem}");
    let result = match cli.command {
        Command::Publisher => start(settings, true, false).await,
        Command::Subscriber => start(settings, false, true).await,
        Command::All => start(settings, true, true).await,
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

/// Builds the chosen services and runs them.
async fn start(
    settings: Settings,
    publisher: bool,
    subscriber: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let p = match publisher {
        true => Some(PublisherApp::build(settings.clone()).await?),
        false => None,
    };
    let s = match subscriber {
        true => Some(SubscriberApp::build(settings).await?),
        false => None,
    };
    run(p, s).await
}

/// Runs the given services until Ctrl-C / SIGTERM, then stops them gracefully (10 s at most).
async fn run(
    publisher: Option<PublisherApp>,
    subscriber: Option<SubscriberApp>,
) -> Result<(), Box<dyn std::error::Error>> {
    let handles: Vec<_> = publisher
        .iter()
        .map(|p| p.handle())
        .chain(subscriber.iter().map(|s| s.handle()))
        .collect();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        for h in &handles {
            h.stop().await;
        }
    });
    let p = async {
        match publisher {
            Some(p) => p.run_until_stopped().await,
            None => Ok(()),
        }
    };
    let s = async {
        match subscriber {
            Some(s) => s.run_until_stopped().await,
            None => Ok(()),
        }
    };
    let (p, s) = tokio::join!(p, s);
    p?;
    s?;
    tracing::info!("stopped");
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
