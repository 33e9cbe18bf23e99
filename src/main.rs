//! `zealsync`: one binary, one subcommand per role.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zealsync::config::{Settings, database, logging};
use zealsync::handlers::redis::RedisKeys;
use zealsync::migration::{PublisherMigrator, SubscriberMigrator};
use zealsync::rabbitmq::envelope::AggregateType;
use zealsync::services::{self, replay::ReplayRequest};
use zealsync::startup::{PublisherApp, SubscriberApp};
use zealsync::verify;

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
    /// Queue `*.snapshot` events of the current state (the running relay publishes them).
    Replay {
        /// Only this aggregate.
        #[arg(long, value_parser = ["user", "course"])]
        aggregate: Option<String>,
        /// Only these ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ids: Option<Vec<uuid::Uuid>>,
    },
    /// Measure throughput and latency on this deployment.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Compare the source with the subscriber's tables and Redis keys; exit 1 on drift.
    Verify {
        /// Clear the drifted entries and replay exactly those ids.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// N user creations against a running publisher, until both projections hold them.
    E2e {
        /// Creations.
        #[arg(short, long, default_value_t = 20_000)]
        n: u64,
        /// Concurrent HTTP connections.
        #[arg(short, long, default_value_t = 64)]
        concurrency: usize,
        /// Offer this many writes per second instead of a closed loop.
        #[arg(long)]
        rate: Option<f64>,
        /// Publisher base URL (default: http://127.0.0.1:<publisher.port>).
        #[arg(long)]
        publisher: Option<String>,
        /// Wait for and check the SQL projection only (`profiles` with `user_id`,
        /// `source_version`, `occurred_at`, `synced_at`), to drive another implementation of
        /// the contract, such as the Node.js baseline, with the same load.
        #[arg(long)]
        sql_only: bool,
    },
    /// Fill a scratch outbox with N rows and time the relay publishing them.
    Relay {
        #[arg(short, long, default_value_t = 20_000)]
        n: u64,
    },
    /// Fill both subscriber queues with N events and time the consumers applying them.
    Consume {
        #[arg(short, long, default_value_t = 20_000)]
        n: u64,
    },
    /// The raw broker ceiling: confirmed publishes and manual-ack consumption with lapin alone.
    Broker {
        #[arg(short, long, default_value_t = 20_000)]
        n: u64,
        /// Then offer this many messages/s for 10 s and report publish-to-delivery latency
        /// (the broker's floor under the sync lag); 0 skips it.
        #[arg(long, default_value_t = 1000.0)]
        latency_rate: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.runtime.worker_threads.max(1))
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(command(cli, settings)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen command on the runtime.
async fn command(cli: Cli, mut settings: Settings) -> ExitCode {
    let stem = match cli.command {
        Command::Publisher => "publisher",
        Command::Subscriber => "subscriber",
        Command::All => "all",
        Command::Migrate => "migrate",
        Command::Replay { .. } => "replay",
        Command::Verify { .. } => "verify",
        Command::Bench { .. } => "bench",
    };
    if matches!(cli.command, Command::Bench { .. }) {
        // Benchmarks print a table on stdout; only warnings go to the log.
        settings.log.level = "warn".into();
    }
    let _guard = logging::init(&settings.log, stem);
    tracing::info!(settings = ?settings, "starting {stem}");
    let result = match cli.command {
        Command::Publisher => start(settings, true, false).await,
        Command::Subscriber => start(settings, false, true).await,
        Command::All => start(settings, true, true).await,
        Command::Migrate => migrate(settings).await,
        Command::Replay { aggregate, ids } => replay(settings, aggregate, ids).await,
        Command::Bench { which, json } => match bench(settings, which, json).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Verify { repair } => match verify(settings, repair).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
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

async fn replay(
    settings: Settings,
    aggregate: Option<String>,
    ids: Option<Vec<uuid::Uuid>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = database::connect(&settings.publisher.database_url).await?;
    database::migrate::<PublisherMigrator>(&db).await?;
    let request = ReplayRequest {
        aggregate: match aggregate.as_deref() {
            Some("user") => Some(AggregateType::User),
            Some("course") => Some(AggregateType::Course),
            _ => None,
        },
        ids,
        chunk: 500,
        pause: std::time::Duration::from_millis(50),
        correlation_id: format!("replay-{}", uuid::Uuid::now_v7()),
    };
    let report = services::replay::replay(&db, &request, None).await?;
    println!(
        "queued {} user and {} course snapshot events (correlation_id {}); the publisher's relay publishes them",
        report.users, report.courses, request.correlation_id
    );
    Ok(())
}

/// Runs one benchmark and prints its report; returns whether its checks held.
async fn bench(
    settings: Settings,
    which: BenchCommand,
    json: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    use zealsync::bench;
    let report = match which {
        BenchCommand::E2e {
            n,
            concurrency,
            rate,
            publisher,
            sql_only,
        } => {
            let opts = bench::e2e::E2eOptions {
                publisher: publisher
                    .unwrap_or_else(|| format!("http://127.0.0.1:{}", settings.publisher.port)),
                n,
                concurrency,
                rate,
                sql_only,
            };
            bench::e2e::run(&settings, &opts, json).await?
        }
        BenchCommand::Relay { n } => bench::relay::run(&settings, n, json).await?,
        BenchCommand::Consume { n } => bench::consume::run(&settings, n, json).await?,
        BenchCommand::Broker { n, latency_rate } => {
            bench::broker::run(&settings, n, latency_rate, json).await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(report.ok())
}

/// Returns whether no drift was found.
async fn verify(settings: Settings, repair: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let publisher = database::connect(&settings.publisher.database_url).await?;
    let subscriber = database::connect(&settings.subscriber.database_url).await?;
    let redis = redis::Client::open(settings.redis.url.expose())?
        .get_multiplexed_async_connection()
        .await?;
    let mut stores = verify::Stores {
        publisher: &publisher,
        subscriber: &subscriber,
        redis,
        keys: RedisKeys::new(settings.redis.key_prefix.clone()),
    };
    let report = verify::verify(&mut stores).await?;
    print!("{report}");
    if repair && !report.is_clean() {
        let ids = verify::clear_drifted(&mut stores, &report).await?;
        let request = ReplayRequest {
            aggregate: None,
            ids: Some(ids.clone()),
            chunk: 500,
            pause: std::time::Duration::from_millis(50),
            correlation_id: format!("repair-{}", uuid::Uuid::now_v7()),
        };
        let queued = services::replay::replay(&publisher, &request, None).await?;
        println!(
            "repair: cleared the drifted entries and queued {} snapshot events ({} ids); run verify again to confirm",
            queued.users + queued.courses,
            ids.len()
        );
    }
    Ok(report.is_clean())
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
