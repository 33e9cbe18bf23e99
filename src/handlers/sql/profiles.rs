//! `ProfileProjection`: a profile per user, created when the user registers, updated and
//! tombstoned with it; pushes the user's name to the catalog rows they instruct.

use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter,
};
use uuid::Uuid;

use crate::entities::subscriber::{course_catalog, profiles};
use crate::handlers::sql::batch::{SqlProjection, apply_many, apply_one};
use crate::handlers::sql::data::{UserData, read};
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
        course_catalog::Entity::update_many()
            .col_expr(
                course_catalog::Column::InstructorName,
                Expr::value(user.name.clone()),
            )
            .col_expr(
                course_catalog::Column::InstructorVersion,
                Expr::value(event.version),
            )
            .col_expr(course_catalog::Column::SyncedAt, Expr::value(now))
            .filter(course_catalog::Column::InstructorId.eq(user.id))
            .filter(
                course_catalog::Column::InstructorVersion
                    .is_null()
                    .or(course_catalog::Column::InstructorVersion.lt(event.version)),
            )
            .exec(txn)
            .await?;
        Ok(Outcome::Applied)
    }
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
        Box::pin(apply_many(self, events))
    }
}
