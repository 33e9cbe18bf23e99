//! Counts of handled events per queue group and outcome, and recent sync lag, for
//! `GET /api/sync/status`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::handlers::Outcome;
use crate::rabbitmq::topology::Group;

/// How many lag samples each group keeps.
const LAG_SAMPLES: usize = 2048;

/// Counters of one group.
#[derive(Debug, Default)]
struct GroupStats {
    applied: AtomicU64,
    duplicate: AtomicU64,
    stale: AtomicU64,
    retried: AtomicU64,
    parked: AtomicU64,
    lag_ms: Mutex<VecDeque<u64>>,
}

/// Shared by the consumers (writers) and the status endpoint (reader).
#[derive(Debug, Default)]
pub struct SyncStats {
    sql: GroupStats,
    redis: GroupStats,
}

/// What the status endpoint shows for one group.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub applied: u64,
    pub duplicate: u64,
    pub stale: u64,
    pub retried: u64,
    pub parked: u64,
    pub lag_ms: LagReport,
}

/// Sync lag (commit time minus `occurred_at`) over the recent applied events.
#[derive(Debug, Serialize)]
pub struct LagReport {
    pub samples: usize,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

impl SyncStats {
    fn group(&self, g: Group) -> &GroupStats {
        match g {
            Group::Sql => &self.sql,
            Group::Redis => &self.redis,
        }
    }

    /// Records a handled event; `lag_ms` counts for applied ones.
    pub fn handled(&self, g: Group, outcome: Outcome, lag_ms: u64) {
        let s = self.group(g);
        let counter = match outcome {
            Outcome::Applied => &s.applied,
            Outcome::Duplicate => &s.duplicate,
            Outcome::Stale => &s.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Applied
            && let Ok(mut lag) = s.lag_ms.lock()
        {
            if lag.len() == LAG_SAMPLES {
                lag.pop_front();
            }
            lag.push_back(lag_ms);
        }
    }

    /// Records a message sent to a retry queue.
    pub fn retried(&self, g: Group) {
        self.group(g).retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a parked message.
    pub fn parked(&self, g: Group) {
        self.group(g).parked.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of one group.
    pub fn report(&self, g: Group) -> GroupReport {
        let s = self.group(g);
        let mut lag: Vec<u64> = s
            .lag_ms
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default();
        lag.sort_unstable();
        let pct = |p: f64| -> Option<u64> {
            (!lag.is_empty()).then(|| lag[((lag.len() - 1) as f64 * p).round() as usize])
        };
        GroupReport {
            applied: s.applied.load(Ordering::Relaxed),
            duplicate: s.duplicate.load(Ordering::Relaxed),
            stale: s.stale.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            parked: s.parked.load(Ordering::Relaxed),
            lag_ms: LagReport {
                samples: lag.len(),
                p50: pct(0.50),
                p95: pct(0.95),
                p99: pct(0.99),
                max: lag.last().copied(),
            },
        }
    }
}
