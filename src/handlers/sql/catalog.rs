//! `CatalogProjection`: courses denormalised with their instructor's name, taken from
//! `profiles` when a course event applies (the user side pushes later renames).

use chrono::Utc;
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, TransactionTrait};

use crate::entities::subscriber::{course_catalog, profiles};
use crate::handlers::sql::data::{CourseData, read};
use crate::handlers::sql::inbox;
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

    async fn apply_event(&self, event: &Envelope) -> Result<Outcome, HandlerError> {
        let course: CourseData = read(event, |c: &CourseData| c.id)?;
        let deleted = event.event_type.action == Action::Deleted;
        let txn = self.db.begin().await?;
        if !inbox::record(&txn, event.event_id, self.name()).await? {
            return Ok(Outcome::Duplicate);
        }
        // Same lock as the profile side: a rename cannot slip between our read and our write.
        inbox::lock_instructor(&txn, course.instructor_id).await?;
        let instructor = profiles::Entity::find_by_id(course.instructor_id)
            .one(&txn)
            .await?;
        let row = course_catalog::ActiveModel {
            course_id: Set(course.id),
            title: Set(course.title),
            description: Set(course.description),
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
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(if applied == 0 {
            Outcome::Stale
        } else {
            Outcome::Applied
        })
    }
}

impl EventHandler for CatalogProjection {
    fn name(&self) -> &'static str {
        "course_catalog"
    }

    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(self.apply_event(event))
    }
}
