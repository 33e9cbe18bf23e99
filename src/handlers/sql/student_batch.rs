//! A batch of profile events that touch no catalog row (no instructor among them, at most one
//! event per user) in ONE autocommit statement on PostgreSQL: the inbox records and the
//! version-guarded upsert together, one round trip where a transaction takes four. No lock is
//! needed: the instructor's lock only keeps a name push and a course write apart, and neither
//! happens here; the inbox's unique key and the upsert's version guard settle concurrent
//! deliveries by themselves.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use crate::handlers::Outcome;
use crate::handlers::sql::data::UserData;
use crate::rabbitmq::envelope::{Action, Envelope};

/// The columns of one event's row in the statement's `VALUES`, in order.
const FIELDS: usize = 8;

/// Whether [`apply`] may take this batch: PostgreSQL, and no event of an instructor (whose
/// name goes to catalog rows under a lock).
pub fn fits<C: ConnectionTrait>(conn: &C, users: &[&UserData]) -> bool {
    conn.get_database_backend() == DbBackend::Postgres
        && users.iter().all(|u| u.role != "instructor")
}

/// Records and applies `events` (each with its user, one per user) for `handler`; returns
/// each event's outcome in order: `Duplicate` when the inbox had it, `Stale` when the profile
/// already holds that version or a newer one.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    handler: &str,
    events: &[(&Envelope, &UserData)],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>, DbErr> {
    let rows = conn.query_all_raw(statement(handler, events, now)).await?;
    let (mut fresh, mut applied) = (HashSet::new(), HashSet::new());
    for r in &rows {
        let id = r.try_get::<Uuid>("", "id")?;
        if r.try_get::<bool>("", "applied")? {
            applied.insert(id);
        } else {
            fresh.insert(id);
        }
    }
    Ok(events
        .iter()
        .map(|(e, u)| {
            if !fresh.contains(&e.event_id) {
                Outcome::Duplicate
            } else if applied.contains(&u.id) {
                Outcome::Applied
            } else {
                Outcome::Stale
            }
        })
        .collect())
}

/// `WITH fresh AS (inbox insert) , up AS (guarded upsert of the fresh ones)`, returning the
/// fresh event ids (`applied = false`) and the users written (`applied = true`). Rows go in
/// key order, so batches applied side by side cannot deadlock. Placeholders only, so the text
/// depends on the batch's size alone and its prepared statement is reused.
fn statement(handler: &str, events: &[(&Envelope, &UserData)], now: DateTime<Utc>) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(2 + events.len() * FIELDS);
    values.push(handler.into());
    values.push(now.into());
    let mut slots = Vec::with_capacity(events.len());
    for (e, u) in events {
        let first = values.len() + 1;
        values.extend([
            e.event_id.into(),
            u.id.into(),
            u.email.clone().into(),
            u.name.clone().into(),
            u.role.clone().into(),
            e.version.into(),
            (e.event_type.action == Action::Deleted).into(),
            e.occurred_at.into(),
        ]);
        let params: Vec<String> = (first..first + FIELDS).map(|p| format!("${p}")).collect();
        slots.push(format!("({})", params.join(", ")));
    }
    let sql = format!(
        "WITH d (event_id, user_id, email, name, role, version, deleted, occurred_at) AS \
           (VALUES {}), \
         fresh AS (INSERT INTO processed_events (event_id, handler, processed_at) \
           SELECT event_id, $1, now() FROM d ORDER BY event_id \
           ON CONFLICT (event_id, handler) DO NOTHING RETURNING event_id), \
         up AS (INSERT INTO profiles \
           (user_id, email, name, role, source_version, deleted, occurred_at, synced_at) \
           SELECT d.user_id, d.email, d.name, d.role, d.version, d.deleted, d.occurred_at, $2 \
           FROM d JOIN fresh ON fresh.event_id = d.event_id ORDER BY d.user_id \
           ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name, \
             role = excluded.role, source_version = excluded.source_version, \
             deleted = excluded.deleted, occurred_at = excluded.occurred_at, \
             synced_at = excluded.synced_at \
           WHERE profiles.source_version < excluded.source_version \
           RETURNING user_id) \
         SELECT event_id AS id, false AS applied FROM fresh \
         UNION ALL SELECT user_id, true FROM up",
        slots.join(", ")
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}
