//! Bounded storage: a background sweep that deletes what has outlived `outbox.retention_hours`
//! (published outbox rows on the publisher, processed-event records on the subscriber) in small
//! batches. Concurrent sweeps from several instances only race to delete the same rows, which
//! is harmless.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::shutdown::Shutdown;

/// Rows deleted per statement, so no sweep holds locks for long.
pub const BATCH: u64 = 500;

/// Runs `prune(cutoff, BATCH)` every `interval` until `shutdown`, repeating while batches come
/// back full.
pub async fn sweep<F, Fut>(
    what: &'static str,
    retention_hours: u64,
    interval: Duration,
    mut shutdown: Shutdown,
    prune: F,
) where
    F: Fn(DateTime<Utc>, u64) -> Fut,
    Fut: Future<Output = Result<u64, DbErr>>,
{
    while !shutdown.sleep(interval).await {
        let cutoff = Utc::now() - chrono::Duration::hours(retention_hours.min(1_000_000) as i64);
        let mut total = 0;
        loop {
            match prune(cutoff, BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < BATCH || shutdown.is_stopping() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, "retention sweep failed; next time");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(what, deleted = total, "retention sweep");
        }
    }
}
