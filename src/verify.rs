//! Drift verification: compares the publisher's users and courses with the subscriber's
//! tables and Redis keys (presence, version, content, tombstones) and, on request, repairs
//! exactly the drifted entities by clearing them and replaying their current state.

use std::collections::{HashMap, HashSet};
use std::fmt;

use redis::AsyncCommands;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::entities::publisher::{courses, users};
use crate::entities::subscriber::{course_catalog, profiles};
use crate::handlers::redis::RedisKeys;

/// Why verification could not finish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A database could not be read or written.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// Redis could not be read or written.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How a projection differs from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The source has it; the projection does not (or holds a tombstone).
    Missing,
    /// The projection holds another version.
    Stale,
    /// Same version, different content (edited by hand).
    Mismatch,
    /// The projection holds a live entry the source no longer has.
    Orphan,
}

/// One drifted entity in one store.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub store: &'static str,
    pub kind: DriftKind,
    pub id: Uuid,
}

/// The result of a verification.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Entities checked per store.
    pub checked: Vec<(&'static str, usize)>,
    pub drifts: Vec<Drift>,
}

impl VerifyReport {
    /// Whether every store equals the source.
    pub fn is_clean(&self) -> bool {
        self.drifts.is_empty()
    }

    fn count(&self, store: &str, kind: DriftKind) -> usize {
        self.drifts
            .iter()
            .filter(|d| d.store == store && d.kind == kind)
            .count()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "store", "checked", "missing", "stale", "mismatch", "orphan"
        )?;
        for (store, checked) in &self.checked {
            writeln!(
                f,
                "{:<16} {:>8} {:>8} {:>8} {:>9} {:>8}",
                store,
                checked,
                self.count(store, DriftKind::Missing),
                self.count(store, DriftKind::Stale),
                self.count(store, DriftKind::Mismatch),
                self.count(store, DriftKind::Orphan),
            )?;
        }
        if self.drifts.is_empty() {
            writeln!(f, "no drift")
        } else {
            writeln!(f, "drifted:")?;
            for d in &self.drifts {
                writeln!(
                    f,
                    "  {:<16} {:<9} {}",
                    d.store,
                    format!("{:?}", d.kind).to_lowercase(),
                    d.id
                )?;
            }
            Ok(())
        }
    }
}

/// What a store holds of one entity: version, tombstone flag and the compared fields.
struct Held {
    version: i64,
    deleted: bool,
    fields: Vec<String>,
}

fn compare(
    report: &mut VerifyReport,
    store: &'static str,
    source: &HashMap<Uuid, (i64, Vec<String>)>,
    held: &HashMap<Uuid, Held>,
) {
    report.checked.push((store, source.len()));
    for (id, (version, fields)) in source {
        let kind = match held.get(id) {
            None => Some(DriftKind::Missing),
            Some(h) if h.deleted => Some(DriftKind::Missing),
            Some(h) if h.version != *version => Some(DriftKind::Stale),
            Some(h) if &h.fields != fields => Some(DriftKind::Mismatch),
            Some(_) => None,
        };
        if let Some(kind) = kind {
            report.drifts.push(Drift {
                store,
                kind,
                id: *id,
            });
        }
    }
    for (id, h) in held {
        if !h.deleted && !source.contains_key(id) {
            report.drifts.push(Drift {
                store,
                kind: DriftKind::Orphan,
                id: *id,
            });
        }
    }
}

/// The stores, their names in reports.
pub const PROFILES: &str = "profiles";
/// See [`PROFILES`].
pub const CATALOG: &str = "course_catalog";
/// See [`PROFILES`].
pub const REDIS_USERS: &str = "redis_users";
/// See [`PROFILES`].
pub const REDIS_COURSES: &str = "redis_courses";

/// Everything verification reads and repair writes.
pub struct Stores<'a> {
    pub publisher: &'a DatabaseConnection,
    pub subscriber: &'a DatabaseConnection,
    pub redis: redis::aio::MultiplexedConnection,
    pub keys: RedisKeys,
}

/// Compares every projection with the source.
pub async fn verify(stores: &mut Stores<'_>) -> Result<VerifyReport, VerifyError> {
    let src_users = users::Entity::find().all(stores.publisher).await?;
    let src_courses = courses::Entity::find().all(stores.publisher).await?;
    let names: HashMap<Uuid, String> = src_users.iter().map(|u| (u.id, u.name.clone())).collect();
    let user_src: HashMap<Uuid, (i64, Vec<String>)> = src_users
        .iter()
        .map(|u| {
            (
                u.id,
                (
                    u.version,
                    vec![u.email.clone(), u.name.clone(), u.role.clone()],
                ),
            )
        })
        .collect();
    let course_src: HashMap<Uuid, (i64, Vec<String>)> = src_courses
        .iter()
        .map(|c| {
            (
                c.id,
                (
                    c.version,
                    vec![
                        c.title.clone(),
                        c.description.clone(),
                        c.instructor_id.to_string(),
                    ],
                ),
            )
        })
        .collect();
    // The catalog also carries the instructor's current name.
    let catalog_src: HashMap<Uuid, (i64, Vec<String>)> = src_courses
        .iter()
        .map(|c| {
            let mut f = course_src
                .get(&c.id)
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            f.push(names.get(&c.instructor_id).cloned().unwrap_or_default());
            (c.id, (c.version, f))
        })
        .collect();

    let mut report = VerifyReport::default();
    let held: HashMap<Uuid, Held> = profiles::Entity::find()
        .all(stores.subscriber)
        .await?
        .into_iter()
        .map(|p| {
            (
                p.user_id,
                Held {
                    version: p.source_version,
                    deleted: p.deleted,
                    fields: vec![p.email, p.name, p.role],
                },
            )
        })
        .collect();
    compare(&mut report, PROFILES, &user_src, &held);
    let held: HashMap<Uuid, Held> = course_catalog::Entity::find()
        .all(stores.subscriber)
        .await?
        .into_iter()
        .map(|c| {
            let fields = vec![
                c.title,
                c.description,
                c.instructor_id.to_string(),
                c.instructor_name.unwrap_or_default(),
            ];
            (
                c.course_id,
                Held {
                    version: c.source_version,
                    deleted: c.deleted,
                    fields,
                },
            )
        })
        .collect();
    compare(&mut report, CATALOG, &catalog_src, &held);

    let held = redis_hashes(stores, "user", &["email", "name", "role"]).await?;
    compare(&mut report, REDIS_USERS, &user_src, &held);
    let mut held =
        redis_hashes(stores, "course", &["title", "description", "instructor_id"]).await?;
    // A live course must also be in its instructor's set.
    for (id, h) in held.iter_mut() {
        if let Some(instructor) = h.fields.get(2).and_then(|s| Uuid::parse_str(s).ok())
            && !h.deleted
        {
            let member: bool = stores
                .redis
                .sismember(stores.keys.instructor_courses(instructor), id.to_string())
                .await?;
            if !member {
                h.fields.push("not in the instructor's set".into());
            }
        }
    }
    compare(&mut report, REDIS_COURSES, &course_src, &held);
    Ok(report)
}

/// Reads every `<prefix>:<kind>:<id>` hash.
async fn redis_hashes(
    stores: &mut Stores<'_>,
    kind: &str,
    fields: &[&str],
) -> Result<HashMap<Uuid, Held>, VerifyError> {
    let pattern = stores.keys.pattern(kind);
    let mut keys: Vec<String> = Vec::new();
    {
        let mut iter: redis::AsyncIter<String> = stores
            .redis
            .scan_options(
                redis::ScanOptions::default()
                    .with_pattern(pattern)
                    .with_count(1000),
            )
            .await?;
        while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
            keys.push(k?);
        }
    }
    let mut out = HashMap::new();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.hgetall(k);
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut stores.redis).await?;
        for (k, h) in chunk.iter().zip(hashes) {
            let Some(id) = k.rsplit(':').next().and_then(|s| Uuid::parse_str(s).ok()) else {
                continue;
            };
            let held = Held {
                version: h.get("version").and_then(|v| v.parse().ok()).unwrap_or(0),
                deleted: h.get("deleted").is_some_and(|d| d == "1"),
                fields: fields
                    .iter()
                    .map(|f| h.get(*f).cloned().unwrap_or_default())
                    .collect(),
            };
            out.insert(id, held);
        }
    }
    Ok(out)
}

/// Clears each drifted entry so a snapshot can apply again (orphans become tombstones), and
/// returns the ids to replay.
pub async fn clear_drifted(
    stores: &mut Stores<'_>,
    report: &VerifyReport,
) -> Result<Vec<Uuid>, VerifyError> {
    let mut replay: HashSet<Uuid> = HashSet::new();
    for d in &report.drifts {
        let orphan = d.kind == DriftKind::Orphan;
        match d.store {
            PROFILES if orphan => {
                profiles::Entity::update_many()
                    .col_expr(
                        profiles::Column::Deleted,
                        sea_orm::sea_query::Expr::value(true),
                    )
                    .filter(profiles::Column::UserId.eq(d.id))
                    .exec(stores.subscriber)
                    .await?;
            }
            PROFILES => {
                profiles::Entity::delete_by_id(d.id)
                    .exec(stores.subscriber)
                    .await?;
            }
            CATALOG if orphan => {
                course_catalog::Entity::update_many()
                    .col_expr(
                        course_catalog::Column::Deleted,
                        sea_orm::sea_query::Expr::value(true),
                    )
                    .filter(course_catalog::Column::CourseId.eq(d.id))
                    .exec(stores.subscriber)
                    .await?;
            }
            CATALOG => {
                course_catalog::Entity::delete_by_id(d.id)
                    .exec(stores.subscriber)
                    .await?;
            }
            REDIS_USERS if orphan => {
                let _: () = stores
                    .redis
                    .hset(stores.keys.user(d.id), "deleted", "1")
                    .await?;
            }
            REDIS_USERS => {
                let _: () = stores.redis.del(stores.keys.user(d.id)).await?;
            }
            REDIS_COURSES => {
                let key = stores.keys.course(d.id);
                let instructor: Option<String> = stores.redis.hget(&key, "instructor_id").await?;
                if let Some(i) = instructor.and_then(|s| Uuid::parse_str(&s).ok()) {
                    let _: () = stores
                        .redis
                        .srem(stores.keys.instructor_courses(i), d.id.to_string())
                        .await?;
                }
                if orphan {
                    let _: () = stores.redis.hset(&key, "deleted", "1").await?;
                } else {
                    let _: () = stores.redis.del(&key).await?;
                }
            }
            _ => {}
        }
        if !orphan {
            replay.insert(d.id);
        }
    }
    Ok(replay.into_iter().collect())
}
