//! Users: create, read, list, replace, patch, delete — each write with its outbox row in one transaction.

use chrono::{SubsecRound, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
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
use crate::services::validation::{Role, UserInput};

/// Creates a user (version 1) and its `user.created` event.
pub async fn create(
    db: &DatabaseConnection,
    input: UserInput,
    ctx: &WriteContext<'_>,
) -> Result<users::Model, ServiceError> {
    let (Some(email), Some(name), Some(role)) = (input.email, input.name, input.role) else {
        return Err(ServiceError::field(
            "body",
            "email, name and role are required",
        ));
    };
    let now = Utc::now().trunc_subsecs(6);
    let model = users::Model {
        id: Uuid::now_v7(),
        email,
        name,
        role: role.as_str().into(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let envelope = event(Action::Created, &model, model.version, ctx);
    let taken =
        || ServiceError::Conflict(format!("a user with email {} already exists", model.email));
    // The unique index on email is the check: no read before the insert.
    if let Some(batcher) = ctx.creates {
        // With the other creations waiting now, in one statement (PostgreSQL).
        // The batcher hands the rows to the relay itself.
        if !batcher.create(model.clone(), envelope).await? {
            return Err(taken());
        }
    } else {
        let conflict = |e: sea_orm::DbErr| match unique_to_conflict(e) {
            ServiceError::Conflict(_) => taken(),
            other => other,
        };
        let slot = ctx.reserve();
        let txn = db.begin().await?;
        users::Entity::insert(users::ActiveModel::from(model.clone()))
            .exec_without_returning(&txn)
            .await
            .map_err(conflict)?;
        let row = outbox::append(&txn, &envelope, slot.as_ref().map(Slot::until)).await?;
        txn.commit().await?;
        ctx.committed(slot, row);
    }
    Ok(model)
}

/// Reads one user.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> Result<users::Model, ServiceError> {
    users::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ServiceError::NotFound { kind: "user", id })
}

/// Lists users in creation order, one keyset page at a time.
pub async fn list(
    db: &DatabaseConnection,
    page: PageRequest,
) -> Result<Page<users::Model>, ServiceError> {
    let mut q = users::Entity::find().order_by_asc(users::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(users::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page.limit, |u| u.id))
}

/// Applies `input` (all fields for PUT, some for PATCH) as version + 1.
pub async fn update(
    db: &DatabaseConnection,
    id: Uuid,
    input: UserInput,
    if_match: Option<i64>,
    ctx: &WriteContext<'_>,
) -> Result<users::Model, ServiceError> {
    let slot = ctx.reserve();
    let txn = db.begin().await?;
    let current = users::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound { kind: "user", id })?;
    check_version(if_match, current.version)?;
    if let Some(email) = &input.email
        && *email != current.email
    {
        ensure_email_free(&txn, email, Some(id)).await?;
    }
    if input.role == Some(Role::Student) && current.role == Role::Instructor.as_str() {
        let taught = courses::Entity::find()
            .filter(courses::Column::InstructorId.eq(id))
            .count(&txn)
            .await?;
        if taught > 0 {
            return Err(ServiceError::Conflict(format!(
                "user {id} instructs {taught} course(s); reassign them before changing the role"
            )));
        }
    }
    let next = users::Model {
        email: input.email.unwrap_or(current.email.clone()),
        name: input.name.unwrap_or(current.name.clone()),
        role: input
            .role
            .map(|r| r.as_str().to_string())
            .unwrap_or(current.role.clone()),
        version: current.version + 1,
        updated_at: Utc::now().trunc_subsecs(6),
        ..current.clone()
    };
    let res = users::Entity::update_many()
        .set(users::ActiveModel {
            email: Set(next.email.clone()),
            name: Set(next.name.clone()),
            role: Set(next.role.clone()),
            version: Set(next.version),
            updated_at: Set(next.updated_at),
            ..Default::default()
        })
        .filter(users::Column::Id.eq(id))
        .filter(users::Column::Version.eq(current.version))
        .exec(&txn)
        .await
        .map_err(unique_to_conflict)?;
    if res.rows_affected != 1 {
        // Another writer got in between (SQLite has no row lock): report the race as a mismatch.
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

/// Deletes a user that instructs no course; the event carries the last state at version + 1.
pub async fn delete(
    db: &DatabaseConnection,
    id: Uuid,
    if_match: Option<i64>,
    ctx: &WriteContext<'_>,
) -> Result<(), ServiceError> {
    let slot = ctx.reserve();
    let txn = db.begin().await?;
    let current = users::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(ServiceError::NotFound { kind: "user", id })?;
    check_version(if_match, current.version)?;
    let taught = courses::Entity::find()
        .filter(courses::Column::InstructorId.eq(id))
        .count(&txn)
        .await?;
    if taught > 0 {
        return Err(ServiceError::Conflict(format!(
            "user {id} instructs {taught} course(s); delete or reassign them first"
        )));
    }
    let res = users::Entity::delete_many()
        .filter(users::Column::Id.eq(id))
        .filter(users::Column::Version.eq(current.version))
        .exec(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                ServiceError::Conflict(format!("user {id} still instructs a course"))
            }
            _ => ServiceError::Database(e),
        })?;
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

/// `If-Match` must name the current version when sent.
pub(crate) fn check_version(if_match: Option<i64>, current: i64) -> Result<(), ServiceError> {
    match if_match {
        Some(v) if v != current => Err(ServiceError::PreconditionFailed { current }),
        _ => Ok(()),
    }
}

async fn ensure_email_free<C: sea_orm::ConnectionTrait>(
    conn: &C,
    email: &str,
    except: Option<Uuid>,
) -> Result<(), ServiceError> {
    let mut q = users::Entity::find().filter(users::Column::Email.eq(email));
    if let Some(id) = except {
        q = q.filter(users::Column::Id.ne(id));
    }
    if q.count(conn).await? > 0 {
        return Err(ServiceError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    Ok(())
}

fn unique_to_conflict(e: sea_orm::DbErr) -> ServiceError {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
            ServiceError::Conflict("a user with this email already exists".into())
        }
        _ => ServiceError::Database(e),
    }
}

fn event(action: Action, user: &users::Model, version: i64, ctx: &WriteContext<'_>) -> Envelope {
    Envelope::new(
        EventType::new(AggregateType::User, action),
        user.id,
        version,
        Some(ctx.correlation_id.to_string()),
        serde_json::to_value(user).unwrap_or_default(),
    )
}
