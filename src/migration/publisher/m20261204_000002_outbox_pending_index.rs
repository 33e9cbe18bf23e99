//! A partial index over the outbox rows still to publish. The relay claims the oldest pending
//! rows every round; without it, that claim walks every published row kept for retention, and
//! slows down as the table grows. On PostgreSQL the outbox is also vacuumed early, since every
//! row is updated once when it is published.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_outbox_pending ON outbox (id) WHERE published_at IS NULL",
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.02, \
                 autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, \
                 autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor)",
            )
            .await?;
        }
        db.execute_unprepared("DROP INDEX IF EXISTS idx_outbox_pending")
            .await?;
        Ok(())
    }
}
