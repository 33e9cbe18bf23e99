//! `CatalogProjection`: courses denormalised with their instructor's name, taken from
//! `profiles` when a course event applies (the user side pushes later renames).

use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait};
use uuid::Uuid;

use crate::entities::subscriber::{course_catalog, profiles};
use crate::handlers::sql::batch::{SqlProjection, apply_many, apply_one};
use crate::handlers::sql::data::{CourseData, read};
use crate::handlers::{EventHandler, HandlerError, Outcome};
use crate::rabbitmq::envelope::{Action, Envelope};

/// Keeps `course_catalog` equal to the publisher's courses.
pub struct CatalogProjection {
    db: DatabaseConnection,
}

impl CatalogProjection {
    /// The projection over the subscriber's database.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    async fn upsert(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        course: &CourseData,
    ) -> Result<Outcome, DbErr> {
        let deleted = event.event_type.action == Action::Deleted;
        // Under the instructor's lock: a rename cannot slip between this read and the write.
        let instructor = profiles::Entity::find_by_id(course.instructor_id)
            .one(txn)
            .await?;
        let row = course_catalog::ActiveModel {
            course_id: Set(course.id),
            title: Set(course.title.clone()),
            description: Set(course.description.clone()),
            instructor_id: Set(course.instructor_id),
            instructor_name: Set(instructor.as_ref().map(|p| p.name.clone())),
            instructor_version: Set(instructor.as_ref().map(|p| p.source_version)),
            source_version: Set(event.version),
            deleted: Set(deleted),
            occurred_at: Set(event.occurred_at),
            synced_at: Set(Utc::now()),
        };
        let applied = course_catalog::Entity::insert(row)
            .on_conflict(
                OnConflict::column(course_catalog::Column::CourseId)
                    .update_columns([
                        course_catalog::Column::Title,
                        course_catalog::Column::Description,
                        course_catalog::Column::InstructorId,
                        course_catalog::Column::InstructorName,
                        course_catalog::Column::InstructorVersion,
                        course_catalog::Column::SourceVersion,
                        course_catalog::Column::Deleted,
                        course_catalog::Column::OccurredAt,
                        course_catalog::Column::SyncedAt,
                    ])
                    .action_and_where(
                        Expr::col((
                            course_catalog::Entity,
                            course_catalog::Column::SourceVersion,
                        ))
                        .lt(event.version),
                    )
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        Ok(if applied == 0 {
            Outcome::Stale
        } else {
            Outcome::Applied
        })
    }
}

impl SqlProjection for CatalogProjection {
    type Data = CourseData;

    fn handler_name(&self) -> &'static str {
        "course_catalog"
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    fn prepare(&self, event: &Envelope) -> Result<CourseData, HandlerError> {
        read(event, |c: &CourseData| c.id)
    }

    fn lock_key(&self, data: &CourseData) -> Uuid {
        data.instructor_id
    }

    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a Envelope,
        data: &'a CourseData,
    ) -> BoxFuture<'a, Result<Outcome, DbErr>> {
        Box::pin(self.upsert(txn, event, data))
    }
}

impl EventHandler for CatalogProjection {
    fn name(&self) -> &'static str {
        "course_catalog"
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
