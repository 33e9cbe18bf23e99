//! `zealsync bench`: measures a deployment on its own machine and prints a table (or JSON).
//! `e2e` drives a running publisher and waits for both projections; `relay`, `consume` and
//! `broker` run against throw-away databases, queues and keys, so they never touch real data.

pub mod broker;
pub mod broker_latency;
pub mod consume;
pub mod e2e;
pub mod relay;
pub mod scratch;

use std::fmt::Write as _;

use serde::Serialize;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Other(String),
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

/// What a benchmark prints.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub bench: &'static str,
    pub figures: Vec<Figure>,
    /// Checks that must hold for the figures to mean anything (e.g. projections equal source).
    pub checks: Vec<(String, bool)>,
}

impl BenchReport {
    /// A report for `bench`.
    pub fn new(bench: &'static str) -> Self {
        Self {
            bench,
            ..Default::default()
        }
    }

    /// Adds a figure.
    pub fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
        });
    }

    /// Adds a correctness check.
    pub fn check(&mut self, name: impl Into<String>, ok: bool) {
        self.checks.push((name.into(), ok));
    }

    /// Whether every check held.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .figures
            .iter()
            .map(|f| f.name.len())
            .chain(self.checks.iter().map(|c| c.0.len()))
            .max()
            .unwrap_or(10);
        let _ = writeln!(out, "zealsync bench {}", self.bench);
        for f in &self.figures {
            let _ = writeln!(out, "  {:<width$}  {:>12.1} {}", f.name, f.value, f.unit);
        }
        for (name, ok) in &self.checks {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>12}",
                name,
                if *ok { "yes" } else { "NO" }
            );
        }
        out
    }
}

/// Percentile `p` (0..=1) of sorted `values`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A progress bar on stderr (hidden with `--json`).
pub fn progress(len: u64, what: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
