//! Courses: the same five operations, with the rule that the instructor must exist and be one.

use chrono::{SubsecRound, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::entities::publisher::{courses, users};
use crate::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};
use crate::rabbitmq::handoff::Slot;
use crate::services::WriteContext;
use crate::services::error::ServiceError;
use crate::services::outbox;
use crate::services::page::{Page, PageRequest};
use crate::services::users::check_version;
use crate::services::validation::{CourseInput, Role};

/// Creates a course (version 1) and its `course.created` event.
pub async fn create(
    db: &DatabaseConnection,
    input: CourseInput,
    ctx: &WriteContext<'_>,
) -> Result<courses::Model, ServiceError> {
    let (Some(title), Some(instructor_id)) = (input.title, input.instructor_id) else {
        return Err(ServiceError::field(
            "body",
            "title and instructor_id are required",
        ));
    };
    let slot = ctx.reserve();
    let txn = db.begin().await?;
    ensure_instructor(&txn, instructor_id).await?;
    let now = Utc::now().trunc_subsecs(6);
    let model = courses::Model {
        id: Uuid::now_v7(),
        title,
        description: input.description.unwrap_or_default(),
        instructor_id,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    courses::Entity::insert(courses::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await
        .map_err(fk_to_invalid)?;
    let row = outbox::append(
        &txn,
        &event(Action::Created, &model, 1, ctx),
        slot.as_ref().map(Slot::until),
    )
    .await?;
    txn.commit().await?;
    ctx.committed(slot, row);
    Ok(model)
}

/// Reads one course.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<courses::Model, ServiceError> {
    courses::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { kind: "course", id })
}

/// Lists courses in creation order, one keyset page at a time.
pub async fn list(
    db: &DatabaseConnection,
    page: PageRequest,
) -> Result<Page<courses::Model>, ServiceError> {
    let mut q = courses::Entity::find().order_by_asc(courses::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(courses::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page.limit, |c| c.id))
}

/// Applies `input` (all fields for PUT, some for PATCH) as version + 1.
pub async fn update(
    db: &DatabaseConnection,
    id: Uuid,
    input: CourseInput,
    if_match: Option<i64>,
    ctx: &WriteContext<'_>,
) -> Result<courses::Model, ServiceError> {
    let slot = ctx.reserve();
    let txn = db.begin().await?;
    let current = courses::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound { kind: "course", id })?;
    check_version(if_match, current.version)?;
    if let Some(instructor) = input.instructor_id
        && instructor != current.instructor_id
    {
        ensure_instructor(&txn, instructor).await?;
    }
    let next = courses::Model {
        title: input.title.unwrap_or(current.title.clone()),
        description: input.description.unwrap_or(current.description.clone()),
        instructor_id: input.instructor_id.unwrap_or(current.instructor_id),
        version: current.version + 1,
        updated_at: Utc::now().trunc_subsecs(6),
        ..current.clone()
    };
    let res = courses::Entity::update_many()
        .set(courses::ActiveModel {
            title: Set(next.title.clone()),
            description: Set(next.description.clone()),
            instructor_id: Set(next.instructor_id),
            version: Set(next.version),
            updated_at: Set(next.updated_at),
            ..Default::default()
        })
        .filter(courses::Column::Id.eq(id))
        .filter(courses::Column::Version.eq(current.version))
        .exec(&txn)
        .await
        .map_err(fk_to_invalid)?;
    if res.rows_affected != 1 {
        return Err(ServiceError::PreconditionFailed {
            current: current.version + 1,
        });
    }
    let row = outbox::append(
        &txn,
        &event(Action::Updated, &next, next.version, ctx),
        slot.as_ref().map(Slot::until),
    )
    .await?;
    txn.commit().await?;
    ctx.committed(slot, row);
    Ok(next)
}

/// Deletes a course; the event carries the last state at version + 1.
pub async fn delete(
    db: &DatabaseConnection,
    id: Uuid,
    if_match: Option<i64>,
    ctx: &WriteContext<'_>,
) -> Result<(), ServiceError> {
    let slot = ctx.reserve();
    let txn = db.begin().await?;
    let current = courses::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound { kind: "course", id })?;
    check_version(if_match, current.version)?;
    let res = courses::Entity::delete_many()
        .filter(courses::Column::Id.eq(id))
        .filter(courses::Column::Version.eq(current.version))
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ServiceError::PreconditionFailed {
            current: current.version + 1,
        });
    }
    let row = outbox::append(
        &txn,
        &event(Action::Deleted, &current, current.version + 1, ctx),
        slot.as_ref().map(Slot::until),
    )
    .await?;
    txn.commit().await?;
    ctx.committed(slot, row);
    Ok(())
}

/// The instructor must exist with role `instructor`; the row is share-locked so a concurrent
/// delete or role change waits for this transaction.
async fn ensure_instructor<C: ConnectionTrait>(conn: &C, id: Uuid) -> Result<(), ServiceError> {
    let user = users::Entity::find_by_id(id)
        .lock_shared()
        .one(conn)
        .await?;
    match user {
        None => Err(ServiceError::field(
            "instructor_id",
            "no user with this id exists",
        )),
        Some(u) if u.role != Role::Instructor.as_str() => Err(ServiceError::field(
            "instructor_id",
            "the user exists but is not an instructor",
        )),
        Some(_) => Ok(()),
    }
}

fn fk_to_invalid(e: sea_orm::DbErr) -> ServiceError {
    match e.sql_err() {
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
            ServiceError::field("instructor_id", "no user with this id exists")
        }
        _ => ServiceError::Database(e),
    }
}

fn event(
    action: Action,
    course: &courses::Model,
    version: i64,
    ctx: &WriteContext<'_>,
) -> Envelope {
    Envelope::new(
        EventType::new(AggregateType::Course, action),
        course.id,
        version,
        Some(ctx.correlation_id.to_string()),
        serde_json::to_value(course).unwrap_or_default(),
    )
}
