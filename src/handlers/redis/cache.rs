//! `UserCache` and `CourseCache`: the Redis projections of users and courses. A batch of
//! events is one pipeline of version-checked script calls: one round trip for many events.

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

/// One script call: its keys and arguments.
pub struct Call {
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

/// Runs `calls` of `script` in one pipeline (loading the script once if Redis lost it).
async fn run_calls(
    pool: &deadpool_redis::Pool,
    script: &Script,
    calls: Vec<Result<Call, HandlerError>>,
) -> Vec<Result<Outcome, HandlerError>> {
    let mut pipe = redis::pipe();
    for call in calls.iter().flatten() {
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(call.keys.len())
            .arg(&call.keys)
            .arg(&call.args);
    }
    let run = async {
        let mut conn = pool.get().await?;
        let codes: Result<Vec<i64>, redis::RedisError> = pipe.query_async(&mut *conn).await;
        match codes {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut *conn).await?;
                Ok(pipe.query_async(&mut *conn).await?)
            }
            other => Ok::<_, HandlerError>(other?),
        }
    };
    let codes = match run.await {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            let unavailable = matches!(e, HandlerError::Unavailable(_));
            return calls
                .into_iter()
                .map(|c| {
                    c.and_then(|_| {
                        Err(if unavailable {
                            HandlerError::Unavailable(msg.clone())
                        } else {
                            HandlerError::Transient(msg.clone())
                        })
                    })
                })
                .collect();
        }
    };
    let mut codes = codes.into_iter();
    calls
        .into_iter()
        .map(|c| c.map(|_| outcome(codes.next().unwrap_or(-1))))
        .collect()
}

/// What differs between the user and the course projection: the script, and how an event
/// becomes one call of it.
pub trait CacheShape: Send + Sync + 'static {
    /// The handler name (metrics label).
    const NAME: &'static str;
    /// The Lua source.
    const SCRIPT: &'static str;
    /// The script call that applies `event`; a misfit of `data` is permanent.
    fn call(keys: &RedisKeys, event: &Envelope) -> Result<Call, HandlerError>;
}

/// A Redis projection of one aggregate: version-checked script calls, pipelined per batch.
pub struct Cache<S: CacheShape> {
    pool: deadpool_redis::Pool,
    keys: RedisKeys,
    script: Script,
    shape: std::marker::PhantomData<S>,
}

impl<S: CacheShape> Cache<S> {
    /// The cache over `pool`, keys under `keys`.
    pub fn new(pool: deadpool_redis::Pool, keys: RedisKeys) -> Self {
        Self {
            pool,
            keys,
            script: Script::new(S::SCRIPT),
            shape: std::marker::PhantomData,
        }
    }
}

impl<S: CacheShape> EventHandler for Cache<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn apply<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(async move {
            let mut r = run_calls(&self.pool, &self.script, vec![S::call(&self.keys, event)]).await;
            r.pop()
                .unwrap_or_else(|| Err(HandlerError::Transient("no result".into())))
        })
    }

    fn apply_batch<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Vec<Result<Outcome, HandlerError>>> {
        let calls = events.iter().map(|e| S::call(&self.keys, e)).collect();
        Box::pin(run_calls(&self.pool, &self.script, calls))
    }
}

/// Users: `<prefix>:user:<id>`.
pub struct Users;

impl CacheShape for Users {
    const NAME: &'static str = "redis_users";
    const SCRIPT: &'static str = UPSERT_HASH;

    fn call(keys: &RedisKeys, event: &Envelope) -> Result<Call, HandlerError> {
        let user: UserData = read(event, |u: &UserData| u.id)?;
        Ok(Call {
            keys: vec![keys.user(user.id)],
            args: vec![
                event.version.to_string(),
                keys.changes(),
                notification(event),
                "id".into(),
                user.id.to_string(),
                "email".into(),
                user.email,
                "name".into(),
                user.name,
                "role".into(),
                user.role,
                "deleted".into(),
                deleted_flag(event).into(),
                "occurred_at".into(),
                event.occurred_at.to_rfc3339(),
            ],
        })
    }
}

/// Courses: `<prefix>:course:<id>` and the instructors' course sets.
pub struct Courses;

impl CacheShape for Courses {
    const NAME: &'static str = "redis_courses";
    const SCRIPT: &'static str = UPSERT_COURSE;

    fn call(keys: &RedisKeys, event: &Envelope) -> Result<Call, HandlerError> {
        let course: CourseData = read(event, |c: &CourseData| c.id)?;
        Ok(Call {
            keys: vec![
                keys.course(course.id),
                keys.instructor_courses(course.instructor_id),
            ],
            args: vec![
                event.version.to_string(),
                keys.changes(),
                notification(event),
                keys.instructor_prefix(),
                course.id.to_string(),
                deleted_flag(event).into(),
                course.instructor_id.to_string(),
                "id".into(),
                course.id.to_string(),
                "title".into(),
                course.title,
                "description".into(),
                course.description,
                "instructor_id".into(),
                course.instructor_id.to_string(),
                "deleted".into(),
                deleted_flag(event).into(),
                "occurred_at".into(),
                event.occurred_at.to_rfc3339(),
            ],
        })
    }
}

/// Keeps `<prefix>:user:<id>` equal to the publisher's users.
pub type UserCache = Cache<Users>;

/// Keeps `<prefix>:course:<id>` and the instructors' course sets equal to the publisher's courses.
pub type CourseCache = Cache<Courses>;
