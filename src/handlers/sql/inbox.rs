//! `processed_events`: the inbox that makes redeliveries harmless. A handler records the
//! event in the same transaction as its write; a second record of the same pair is refused.

use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// Records `(event_id, handler)`; `false` when it was recorded before (a duplicate).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    handler: &str,
) -> Result<bool, DbErr> {
    let stmt = Query::insert()
        .into_table(Alias::new("processed_events"))
        .columns([
            Alias::new("event_id"),
            Alias::new("handler"),
            Alias::new("processed_at"),
        ])
        .values_panic([event_id.into(), handler.into(), Utc::now().into()])
        .on_conflict(
            OnConflict::columns([Alias::new("event_id"), Alias::new("handler")])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    let res = conn.execute(&stmt).await?;
    Ok(res.rows_affected() == 1)
}

/// Records many events of `handler` at once; returns the ids that were new.
pub async fn record_many<C: ConnectionTrait>(
    conn: &C,
    event_ids: impl Iterator<Item = Uuid>,
    handler: &str,
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    let now = Utc::now();
    let mut q = Query::insert();
    q.into_table(Alias::new("processed_events")).columns([
        Alias::new("event_id"),
        Alias::new("handler"),
        Alias::new("processed_at"),
    ]);
    let mut any = false;
    for id in event_ids {
        q.values_panic([id.into(), handler.into(), now.into()]);
        any = true;
    }
    if !any {
        return Ok(Default::default());
    }
    q.on_conflict(
        OnConflict::columns([Alias::new("event_id"), Alias::new("handler")])
            .do_nothing()
            .to_owned(),
    )
    .returning_col(Alias::new("event_id"));
    let rows = conn.query_all(&q).await?;
    rows.iter()
        .map(|r| r.try_get::<Uuid>("", "event_id"))
        .collect()
}

/// Takes the instructors' locks (as [`lock_instructors`]) and records the events (as
/// [`record_many`]) in one statement on PostgreSQL, so a batch costs one round trip less;
/// returns the ids that were new. The locks are an init plan of the insert: all are held
/// before the first record is written.
pub async fn lock_and_record_many<C: ConnectionTrait>(
    conn: &C,
    lock_ids: impl Iterator<Item = Uuid>,
    event_ids: impl Iterator<Item = Uuid>,
    handler: &str,
) -> Result<std::collections::HashSet<Uuid>, DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        lock_instructors(conn, lock_ids).await?;
        return record_many(conn, event_ids, handler).await;
    }
    let lock_ids: Vec<Uuid> = lock_ids.collect();
    let events: Vec<Uuid> = event_ids.collect();
    if events.is_empty() {
        lock_instructors(conn, lock_ids.into_iter()).await?;
        return Ok(Default::default());
    }
    let mut keys: Vec<String> = lock_ids.iter().map(|u| u.to_string()).collect();
    keys.sort_unstable();
    keys.dedup();
    // Placeholders only, so the text depends on the batch's shape alone and its prepared
    // statement is reused.
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(1 + keys.len() + events.len());
    values.push(handler.into());
    let locks = if keys.is_empty() {
        "SELECT 1 WHERE false".to_string()
    } else {
        let slots: Vec<String> = (0..keys.len()).map(|i| format!("(${})", i + 2)).collect();
        values.extend(keys.into_iter().map(sea_orm::Value::from));
        format!(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM (VALUES {}) AS t(k) ORDER BY k",
            slots.join(",")
        )
    };
    let first = values.len() + 1;
    let slots: Vec<String> = (0..events.len())
        .map(|i| format!("(${}::uuid)", first + i))
        .collect();
    values.extend(events.into_iter().map(sea_orm::Value::from));
    let sql = format!(
        "WITH locks AS ({locks}) \
         INSERT INTO processed_events (event_id, handler, processed_at) \
         SELECT v.event_id, $1, now() FROM (VALUES {}) AS v(event_id) \
         WHERE (SELECT count(*) FROM locks) >= 0 \
         ON CONFLICT (event_id, handler) DO NOTHING RETURNING event_id",
        slots.join(",")
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<Uuid>("", "event_id"))
        .collect()
}

/// Takes the locks of many instructors in one statement, in id order (no deadlock between
/// concurrent batches). PostgreSQL only; SQLite has a single writer already.
pub async fn lock_instructors<C: ConnectionTrait>(
    conn: &C,
    ids: impl Iterator<Item = Uuid>,
) -> Result<(), DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut ids: Vec<String> = ids.map(|u| u.to_string()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    // UUIDs printed by `Uuid` are hex and dashes only: safe to inline.
    let values: Vec<String> = ids.iter().map(|id| format!("('{id}')")).collect();
    conn.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM (VALUES {}) AS t(k) ORDER BY k",
        values.join(",")
    ))
    .await?;
    Ok(())
}

/// Serialises handlers that touch one instructor's rows (PostgreSQL advisory lock for the
/// transaction; SQLite has a single writer already).
pub async fn lock_instructor<C: ConnectionTrait>(
    conn: &C,
    instructor_id: Uuid,
) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [instructor_id.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// Deletes inbox records older than `cutoff`, at most `limit` at a time; returns how many went.
pub async fn prune<C: ConnectionTrait>(
    conn: &C,
    cutoff: chrono::DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    let sub = Query::select()
        .columns([Alias::new("event_id"), Alias::new("handler")])
        .from(Alias::new("processed_events"))
        .and_where(Expr::col(Alias::new("processed_at")).lt(cutoff))
        .limit(limit)
        .to_owned();
    let stmt = Query::delete()
        .from_table(Alias::new("processed_events"))
        .and_where(
            Expr::tuple([
                Expr::col(Alias::new("event_id")),
                Expr::col(Alias::new("handler")),
            ])
            .in_subquery(sub),
        )
        .to_owned();
    Ok(conn.execute(&stmt).await?.rows_affected())
}
