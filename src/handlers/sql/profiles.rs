//! `ProfileProjection`: a profile per user, created when the user registers, updated and
//! tombstoned with it; pushes the user's name to the catalog rows they instruct.

use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};
use uuid::Uuid;

use crate::entities::subscriber::{course_catalog, profiles};
use crate::handlers::sql::batch::{SqlProjection, apply_many, apply_one};
use crate::handlers::sql::data::{UserData, read};
use crate::handlers::sql::{inbox, student_batch};
use crate::handlers::{EventHandler, HandlerError, Outcome};
use crate::rabbitmq::envelope::{Action, Envelope};

/// Keeps `profiles` equal to the publisher's users.
pub struct ProfileProjection {
    db: DatabaseConnection,
}

impl ProfileProjection {
    /// The projection over the subscriber's database.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    async fn upsert(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        user: &UserData,
    ) -> Result<Outcome, DbErr> {
        let deleted = event.event_type.action == Action::Deleted;
        let now = Utc::now();
        let row = profiles::ActiveModel {
            user_id: Set(user.id),
            email: Set(user.email.clone()),
            name: Set(user.name.clone()),
            role: Set(user.role.clone()),
            source_version: Set(event.version),
            deleted: Set(deleted),
            occurred_at: Set(event.occurred_at),
            synced_at: Set(now),
        };
        let applied = profiles::Entity::insert(row)
            .on_conflict(
                OnConflict::column(profiles::Column::UserId)
                    .update_columns([
                        profiles::Column::Email,
                        profiles::Column::Name,
                        profiles::Column::Role,
                        profiles::Column::SourceVersion,
                        profiles::Column::Deleted,
                        profiles::Column::OccurredAt,
                        profiles::Column::SyncedAt,
                    ])
                    .action_and_where(
                        Expr::col((profiles::Entity, profiles::Column::SourceVersion))
                            .lt(event.version),
                    )
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        if applied == 0 {
            // The inbox record stays: this event has been handled (as stale).
            return Ok(Outcome::Stale);
        }
        // The instructor's name converges from this side too, guarded by the user's version.
        push_name(txn, user, event.version, now).await?;
        Ok(Outcome::Applied)
    }
}

impl ProfileProjection {
    /// A batch in a handful of statements whatever its size: one statement that takes the
    /// locks and writes the inbox records, one multi-row version-guarded upsert, and a name
    /// push for the instructors only (students instruct nothing). Without instructors, one
    /// statement in all (see [`student_batch`]).
    async fn apply_set(
        &self,
        events: &[&Envelope],
    ) -> Result<Vec<Result<Outcome, HandlerError>>, DbErr> {
        let mut results: Vec<Option<Result<Outcome, HandlerError>>> =
            Vec::with_capacity(events.len());
        let mut valid: Vec<(usize, UserData)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match self.prepare(e) {
                Ok(d) => {
                    results.push(None);
                    valid.push((i, d));
                }
                Err(err) => results.push(Some(Err(err))),
            }
        }
        let users: Vec<&UserData> = valid.iter().map(|(_, d)| d).collect();
        if !valid.is_empty() && student_batch::fits(&self.db, &users) {
            let batch: Vec<(&Envelope, &UserData)> =
                valid.iter().map(|(i, d)| (events[*i], d)).collect();
            let outcomes = student_batch::apply(&self.db, self.name(), &batch, Utc::now()).await?;
            for ((i, _), o) in valid.iter().zip(outcomes) {
                results[*i] = Some(Ok(o));
            }
        }
        if results.iter().all(Option::is_some) {
            return Ok(results
                .into_iter()
                .map(|r| r.unwrap_or(Ok(Outcome::Duplicate)))
                .collect());
        }
        let txn = self.db.begin().await?;
        let fresh = inbox::lock_and_record_many(
            &txn,
            valid.iter().map(|(_, d)| d.id),
            valid.iter().map(|(i, _)| events[*i].event_id),
            self.name(),
        )
        .await?;
        // Of the fresh events, the newest per user competes; older ones in the batch are stale.
        let mut newest: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
        for (i, d) in &valid {
            let e = events[*i];
            if !fresh.contains(&e.event_id) {
                results[*i] = Some(Ok(Outcome::Duplicate));
                continue;
            }
            match newest.get(&d.id) {
                Some(j) if events[*j].version >= e.version => {
                    results[*i] = Some(Ok(Outcome::Stale))
                }
                Some(j) => {
                    results[*j] = Some(Ok(Outcome::Stale));
                    newest.insert(d.id, *i);
                }
                None => {
                    newest.insert(d.id, *i);
                }
            }
        }
        let now = Utc::now();
        let data: std::collections::HashMap<usize, &UserData> =
            valid.iter().map(|(i, d)| (*i, d)).collect();
        let rows: Vec<profiles::ActiveModel> = newest
            .values()
            .filter_map(|i| data.get(i).map(|d| (events[*i], *d)))
            .map(|(e, d)| profiles::ActiveModel {
                user_id: Set(d.id),
                email: Set(d.email.clone()),
                name: Set(d.name.clone()),
                role: Set(d.role.clone()),
                source_version: Set(e.version),
                deleted: Set(e.event_type.action == Action::Deleted),
                occurred_at: Set(e.occurred_at),
                synced_at: Set(now),
            })
            .collect();
        let applied: std::collections::HashSet<Uuid> = if rows.is_empty() {
            Default::default()
        } else {
            let upsert = profiles::Entity::insert_many(rows).on_conflict(
                OnConflict::column(profiles::Column::UserId)
                    .update_columns([
                        profiles::Column::Email,
                        profiles::Column::Name,
                        profiles::Column::Role,
                        profiles::Column::SourceVersion,
                        profiles::Column::Deleted,
                        profiles::Column::OccurredAt,
                        profiles::Column::SyncedAt,
                    ])
                    .action_and_where(
                        Expr::col((profiles::Entity, profiles::Column::SourceVersion)).lt(
                            Expr::col((
                                sea_orm::sea_query::Alias::new("excluded"),
                                profiles::Column::SourceVersion,
                            )),
                        ),
                    )
                    .to_owned(),
            );
            match upsert.exec_with_returning_keys(&txn).await {
                Ok(keys) => keys.into_iter().collect(),
                Err(DbErr::RecordNotInserted) => Default::default(),
                Err(e) => return Err(e),
            }
        };
        for (id, i) in &newest {
            let e = events[*i];
            if !applied.contains(id) {
                results[*i] = Some(Ok(Outcome::Stale));
                continue;
            }
            results[*i] = Some(Ok(Outcome::Applied));
            if let Some(d) = data.get(i)
                && d.role == "instructor"
            {
                push_name(&txn, d, e.version, now).await?;
            }
        }
        txn.commit().await?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Ok(Outcome::Duplicate)))
            .collect())
    }
}

/// Gives the instructor's name to the catalog rows that hold an older one.
async fn push_name(
    txn: &DatabaseTransaction,
    user: &UserData,
    version: i64,
    now: chrono::DateTime<Utc>,
) -> Result<(), DbErr> {
    course_catalog::Entity::update_many()
        .col_expr(
            course_catalog::Column::InstructorName,
            Expr::value(user.name.clone()),
        )
        .col_expr(
            course_catalog::Column::InstructorVersion,
            Expr::value(version),
        )
        .col_expr(course_catalog::Column::SyncedAt, Expr::value(now))
        .filter(course_catalog::Column::InstructorId.eq(user.id))
        .filter(
            course_catalog::Column::InstructorVersion
                .is_null()
                .or(course_catalog::Column::InstructorVersion.lt(version)),
        )
        .exec(txn)
        .await?;
    Ok(())
}

impl SqlProjection for ProfileProjection {
    type Data = UserData;

    fn handler_name(&self) -> &'static str {
        "profiles"
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn prepare(&self, event: &Envelope) -> Result<UserData, HandlerError> {
        read(event, |u: &UserData| u.id)
    }

    fn lock_key(&self, data: &UserData) -> Uuid {
        data.id
    }

    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a Envelope,
        data: &'a UserData,
    ) -> BoxFuture<'a, Result<Outcome, DbErr>> {
        Box::pin(self.upsert(txn, event, data))
    }
}

impl EventHandler for ProfileProjection {
    fn name(&self) -> &'static str {
        "profiles"
    }

    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(apply_one(self, event))
    }

    fn apply_batch<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Vec<Result<Outcome, HandlerError>>> {
        Box::pin(async move {
            // Several events of one user in a batch: apply them one after the other (still in
            // one transaction), so each counts as what it did.
            let mut seen = std::collections::HashSet::new();
            if !events.iter().all(|e| seen.insert(e.aggregate_id)) {
                return apply_many(self, events).await;
            }
            match self.apply_set(events).await {
                Ok(results) => results,
                // Anything unexpected: the general path isolates the event that fails.
                Err(e) => {
                    tracing::debug!(error = %e, "set-based batch failed; applying event by event");
                    apply_many(self, events).await
                }
            }
        })
    }
}
