//! Appends events to the outbox inside the caller's transaction, and reports its backlog.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::NotSet, ConnectionTrait, DbErr, EntityTrait, Statement};
use serde::Serialize;

use crate::entities::publisher::outbox;
use crate::rabbitmq::envelope::Envelope;

/// Writes `envelope` as an unpublished outbox row in the caller's transaction, claimed until
/// `claimed_until` when it is to be handed to the relay; returns the row as written.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    envelope: &Envelope,
    claimed_until: Option<DateTime<Utc>>,
) -> Result<outbox::Model, DbErr> {
    let mut row = model(envelope, claimed_until);
    let mut insert = outbox::ActiveModel::from(row.clone());
    insert.id = NotSet;
    row.id = outbox::Entity::insert(insert)
        .exec(conn)
        .await?
        .last_insert_id;
    Ok(row)
}

/// The outbox row of `envelope`, unpublished (its id is the database's to give).
pub fn model(envelope: &Envelope, claimed_until: Option<DateTime<Utc>>) -> outbox::Model {
    outbox::Model {
        id: 0,
        event_id: envelope.event_id,
        aggregate_type: envelope.aggregate_type.as_str().to_string(),
        aggregate_id: envelope.aggregate_id,
        routing_key: envelope.event_type.to_string(),
        version: envelope.version,
        payload: String::from_utf8_lossy(&envelope.encode()).into_owned(),
        headers: envelope.headers_json().to_string(),
        created_at: Utc::now(),
        published_at: None,
        claimed_until,
    }
}

/// The outbox columns a new row sets, in the order of [`values`].
pub const COLUMNS: [&str; 9] = [
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "routing_key",
    "version",
    "payload",
    "headers",
    "created_at",
    "claimed_until",
];

/// The values of `row` (as [`model`] makes it) for [`COLUMNS`], for statements built by hand.
pub fn values(row: &outbox::Model) -> [sea_orm::Value; 9] {
    [
        row.event_id.into(),
        row.aggregate_type.clone().into(),
        row.aggregate_id.into(),
        row.routing_key.clone().into(),
        row.version.into(),
        row.payload.clone().into(),
        row.headers.clone().into(),
        row.created_at.into(),
        row.claimed_until.into(),
    ]
}

/// The relay's backlog, as `GET /admin/outbox` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxStats {
    pub pending: i64,
    pub oldest_pending_age_ms: i64,
    pub published_total: i64,
}

/// Counts the rows still to publish (through the partial index on pending rows).
pub async fn pending<C: ConnectionTrait>(conn: &C) -> Result<i64, DbErr> {
    let sql = "SELECT COUNT(*) AS v FROM outbox WHERE published_at IS NULL";
    Ok(scalar(conn, sql).await?.unwrap_or(0))
}

/// Whether any row is still to publish: one probe of the partial index on pending rows, cheap
/// enough to ask often (unlike [`pending`], which counts them all).
pub async fn any_pending<C: ConnectionTrait>(conn: &C) -> Result<bool, DbErr> {
    let sql = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL) AS v";
    Ok(scalar(conn, sql).await?.unwrap_or(false))
}

/// The column `v` of the one row `sql` returns.
async fn scalar<C: ConnectionTrait, T: sea_orm::TryGetable>(
    conn: &C,
    sql: &str,
) -> Result<Option<T>, DbErr> {
    let stmt = Statement::from_string(conn.get_database_backend(), sql);
    match conn.query_one_raw(stmt).await? {
        Some(r) => r.try_get::<T>("", "v").map(Some),
        None => Ok(None),
    }
}

/// Counts pending and published rows and the age of the oldest pending one.
pub async fn stats<C: ConnectionTrait>(conn: &C) -> Result<OutboxStats, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT \
               (SELECT COUNT(*) FROM outbox WHERE published_at IS NULL) AS pending, \
               (SELECT COUNT(*) FROM outbox WHERE published_at IS NOT NULL) AS published",
        ))
        .await?;
    let (pending, published_total) = match row {
        Some(r) => (
            r.try_get::<i64>("", "pending")?,
            r.try_get::<i64>("", "published")?,
        ),
        None => (0, 0),
    };
    let oldest = outbox::Entity::find()
        .filter_pending()
        .one(conn)
        .await?
        .map(|m| (Utc::now() - m.created_at).num_milliseconds().max(0))
        .unwrap_or(0);
    Ok(OutboxStats {
        pending,
        oldest_pending_age_ms: oldest,
        published_total,
    })
}

/// Query helpers on the outbox.
trait PendingFilter {
    fn filter_pending(self) -> Self;
}

impl PendingFilter for sea_orm::Select<outbox::Entity> {
    fn filter_pending(self) -> Self {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        self.filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
    }
}

/// Deletes up to `limit` rows published before `cutoff`; returns how many went.
pub async fn prune_published<C: ConnectionTrait>(
    conn: &C,
    cutoff: chrono::DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let oldest = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .and_where(Expr::col(outbox::Column::PublishedAt).is_not_null())
        .and_where(Expr::col(outbox::Column::PublishedAt).lt(cutoff))
        .order_by(outbox::Column::Id, sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    let stmt = Query::delete()
        .from_table(outbox::Entity)
        .and_where(Expr::col(outbox::Column::Id).in_subquery(oldest))
        .to_owned();
    Ok(conn.execute(&stmt).await?.rows_affected())
}
