//! Migrations of the subscriber's database.

use sea_orm_migration::prelude::*;

mod m20261204_000001_create_subscriber_tables;

/// Runs the subscriber's migrations in order.
pub struct SubscriberMigrator;

#[async_trait::async_trait]
impl MigratorTrait for SubscriberMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(
            m20261204_000001_create_subscriber_tables::Migration,
        )]
    }

    fn migration_table_name() -> DynIden {
        Alias::new("seaql_migrations_subscriber").into_iden()
    }
}
