//! Log setup: stdout plus a daily-rolling file under `log.dir`, as JSON or human-readable lines.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the file writer.
pub fn init(settings: &LogSettings, file_stem: &str) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (file_writer, guard) = match std::fs::create_dir_all(&settings.dir) {
        Ok(()) => {
            let appender =
                tracing_appender::rolling::daily(&settings.dir, format!("{file_stem}.log"));
            let (w, g) = tracing_appender::non_blocking(appender);
            (Some(w), Some(g))
        }
        Err(e) => {
            eprintln!(
                "log directory {} unusable ({e}); logging to stdout only",
                settings.dir
            );
            (None, None)
        }
    };
    let json = settings.format == LogFormat::Json;
    let stdout = if json {
        fmt::layer().json().with_current_span(true).boxed()
    } else {
        fmt::layer().boxed()
    };
    // The file always gets JSON lines, so `grep correlation_id logs/*` works whatever stdout shows.
    let file = file_writer.map(|w| {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(w)
            .with_ansi(false)
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stdout)
        .with(file)
        .try_init();
    guard
}
