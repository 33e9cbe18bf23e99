//! Replay: emits `*.snapshot` events of the current state through the outbox, in chunks and
//! throttled, so a subscriber can rebuild or repair its projections. Snapshots carry the
//! entity's current version and apply as version-guarded upserts: replaying into an up-to-date
//! projection changes nothing.

use std::time::Duration;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::entities::publisher::{courses, users};
use crate::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};
use crate::services::outbox;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRequest {
    /// Only this aggregate (both when `None`).
    pub aggregate: Option<AggregateType>,
    /// Only these ids (all when `None`).
    pub ids: Option<Vec<Uuid>>,
    /// Rows per transaction.
    pub chunk: u64,
    /// Pause between chunks, so a replay never floods the broker or starves live writes.
    pub pause: Duration,
    /// Stamped on every snapshot event.
    pub correlation_id: String,
}

/// How many snapshot events were queued, per aggregate.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplayReport {
    pub users: u64,
    pub courses: u64,
}

/// Queues snapshot events for the requested entities; wakes the relay after each chunk.
pub async fn replay(
    db: &DatabaseConnection,
    req: &ReplayRequest,
    wake: Option<&Notify>,
) -> Result<ReplayReport, DbErr> {
    let mut report = ReplayReport::default();
    if req.aggregate != Some(AggregateType::Course) {
        report.users = replay_all::<users::Entity>(
            db,
            req,
            wake,
            users::Column::Id,
            AggregateType::User,
            |u| (u.id, u.version),
        )
        .await?;
    }
    if req.aggregate != Some(AggregateType::User) {
        report.courses = replay_all::<courses::Entity>(
            db,
            req,
            wake,
            courses::Column::Id,
            AggregateType::Course,
            |c| (c.id, c.version),
        )
        .await?;
    }
    tracing::info!(users = report.users, courses = report.courses, correlation_id = %req.correlation_id, "replay queued");
    Ok(report)
}

/// Walks one entity table in id order, one chunk per transaction.
async fn replay_all<E>(
    db: &DatabaseConnection,
    req: &ReplayRequest,
    wake: Option<&Notify>,
    id_col: E::Column,
    agg: AggregateType,
    key: impl Fn(&E::Model) -> (Uuid, i64),
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: Serialize,
{
    let chunk = req.chunk.max(1);
    let mut after: Option<Uuid> = None;
    let mut total = 0;
    loop {
        let txn = db.begin().await?;
        let mut q = E::find().order_by_asc(id_col).limit(chunk);
        if let Some(a) = after {
            q = q.filter(id_col.gt(a));
        }
        if let Some(ids) = &req.ids {
            q = q.filter(id_col.is_in(ids.iter().copied()));
        }
        let rows = q.all(&txn).await?;
        for row in &rows {
            let (id, version) = key(row);
            let data = serde_json::to_value(row).unwrap_or_default();
            outbox::append(&txn, &snapshot(agg, id, version, data, req), None).await?;
        }
        txn.commit().await?;
        total += rows.len() as u64;
        after = rows.last().map(|r| key(r).0);
        if let Some(w) = wake {
            w.notify_one();
        }
        if (rows.len() as u64) < chunk {
            return Ok(total);
        }
        tokio::time::sleep(req.pause).await;
    }
}

fn snapshot(
    agg: AggregateType,
    id: Uuid,
    version: i64,
    data: serde_json::Value,
    req: &ReplayRequest,
) -> Envelope {
    Envelope::new(
        EventType::new(agg, Action::Snapshot),
        id,
        version,
        Some(req.correlation_id.clone()),
        data,
    )
}
