//! Opens a service's database (PostgreSQL or SQLite) and brings its schema up to date.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;

use crate::config::SecretUrl;

/// Connects with pool settings that suit the backend. SQLite gets one writer connection
/// (its database lock serialises writers anyway) and `data/` is created when missing.
pub async fn connect(url: &SecretUrl) -> Result<DatabaseConnection, DbErr> {
    open(url, 16, false).await
}

/// The outbox relay's own pool of at most `max` PostgreSQL connections, so it never queues
/// behind the API's requests, with `synchronous_commit = off` for the whole session: losing
/// a relay commit in a crash only means publishing rows again, which consumers absorb.
pub async fn connect_relay(url: &SecretUrl, max: u32) -> Result<DatabaseConnection, DbErr> {
    open(url, max, true).await
}

async fn open(url: &SecretUrl, max: u32, async_commit: bool) -> Result<DatabaseConnection, DbErr> {
    let raw = url.expose();
    let sqlite = raw.starts_with("sqlite:");
    if sqlite {
        ensure_sqlite_dir(raw);
    }
    let mut opts = ConnectOptions::new(raw.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    if sqlite {
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(max.max(1)).min_connections(1);
        if async_commit {
            opts.map_sqlx_postgres_opts(|o| o.options([("synchronous_commit", "off")]));
        }
    }
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
            .await?;
    }
    Ok(db)
}

/// Runs every pending migration of `M` on `db`.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> Result<(), DbErr> {
    M::up(db, None).await
}

fn ensure_sqlite_dir(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(parent);
    }
}
