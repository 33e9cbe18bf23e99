//! `UserCache` and `CourseCache`: the Redis projections of users and courses.

use futures_util::future::BoxFuture;
use redis::Script;
use serde_json::json;

use crate::handlers::redis::keys::RedisKeys;
use crate::handlers::redis::scripts::{UPSERT_COURSE, UPSERT_HASH};
use crate::handlers::sql::data::{CourseData, UserData, read};
use crate::handlers::{EventHandler, HandlerError, Outcome};
use crate::rabbitmq::envelope::{Action, Envelope};

/// Maps a script's answer to an outcome.
fn outcome(code: i64) -> Outcome {
    match code {
        1 => Outcome::Applied,
        0 => Outcome::Duplicate,
        _ => Outcome::Stale,
    }
}

/// The notification announced on the changes channel.
fn notification(event: &Envelope) -> String {
    json!({
        "event_type": event.event_type.to_string(),
        "aggregate_id": event.aggregate_id,
        "version": event.version,
    })
    .to_string()
}

fn deleted_flag(event: &Envelope) -> &'static str {
    if event.event_type.action == Action::Deleted {
        "1"
    } else {
        "0"
    }
}

/// Keeps `<prefix>:user:<id>` equal to the publisher's users.
pub struct UserCache {
    pool: deadpool_redis::Pool,
    keys: RedisKeys,
    script: Script,
}

impl UserCache {
    /// The cache over `pool`, keys under `keys`.
    pub fn new(pool: deadpool_redis::Pool, keys: RedisKeys) -> Self {
        Self {
            pool,
            keys,
            script: Script::new(UPSERT_HASH),
        }
    }

    async fn apply_event(&self, event: &Envelope) -> Result<Outcome, HandlerError> {
        let user: UserData = read(event, |u: &UserData| u.id)?;
        let mut conn = self.pool.get().await?;
        let mut inv = self.script.key(self.keys.user(user.id));
        inv.arg(event.version)
            .arg(self.keys.changes())
            .arg(notification(event))
            .arg("id")
            .arg(user.id.to_string())
            .arg("email")
            .arg(user.email)
            .arg("name")
            .arg(user.name)
            .arg("role")
            .arg(user.role)
            .arg("deleted")
            .arg(deleted_flag(event))
            .arg("occurred_at")
            .arg(event.occurred_at.to_rfc3339());
        let code: i64 = inv.invoke_async(&mut *conn).await?;
        Ok(outcome(code))
    }
}

impl EventHandler for UserCache {
    fn name(&self) -> &'static str {
        "redis_users"
    }

    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(self.apply_event(event))
    }
}

/// Keeps `<prefix>:course:<id>` and the instructors' course sets equal to the publisher's courses.
pub struct CourseCache {
    pool: deadpool_redis::Pool,
    keys: RedisKeys,
    script: Script,
}

impl CourseCache {
    /// The cache over `pool`, keys under `keys`.
    pub fn new(pool: deadpool_redis::Pool, keys: RedisKeys) -> Self {
        Self {
            pool,
            keys,
            script: Script::new(UPSERT_COURSE),
        }
    }

    async fn apply_event(&self, event: &Envelope) -> Result<Outcome, HandlerError> {
        let course: CourseData = read(event, |c: &CourseData| c.id)?;
        let mut conn = self.pool.get().await?;
        let mut inv = self.script.key(self.keys.course(course.id));
        inv.key(self.keys.instructor_courses(course.instructor_id))
            .arg(event.version)
            .arg(self.keys.changes())
            .arg(notification(event))
            .arg(self.keys.instructor_prefix())
            .arg(course.id.to_string())
            .arg(deleted_flag(event))
            .arg(course.instructor_id.to_string())
            .arg("id")
            .arg(course.id.to_string())
            .arg("title")
            .arg(course.title)
            .arg("description")
            .arg(course.description)
            .arg("instructor_id")
            .arg(course.instructor_id.to_string())
            .arg("deleted")
            .arg(deleted_flag(event))
            .arg("occurred_at")
            .arg(event.occurred_at.to_rfc3339());
        let code: i64 = inv.invoke_async(&mut *conn).await?;
        Ok(outcome(code))
    }
}

impl EventHandler for CourseCache {
    fn name(&self) -> &'static str {
        "redis_courses"
    }

    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(self.apply_event(event))
    }
}
