//! Migrations of the publisher's database.

use sea_orm_migration::prelude::*;

mod m20261204_000001_create_publisher_tables;
mod m20261204_000002_outbox_pending_index;
mod m20261205_000001_outbox_claimed_until;

/// Runs the publisher's migrations in order.
pub struct PublisherMigrator;

#[async_trait::async_trait]
impl MigratorTrait for PublisherMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261204_000001_create_publisher_tables::Migration),
            Box::new(m20261204_000002_outbox_pending_index::Migration),
            Box::new(m20261205_000001_outbox_claimed_until::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_publisher").into_iden()
    }
}
