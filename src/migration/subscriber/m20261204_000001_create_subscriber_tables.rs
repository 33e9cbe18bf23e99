//! The subscriber's tables: the `profiles` and `course_catalog` projections, the
//! `processed_events` inbox and the `dead_letters` parking lot.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Profiles {
    Table,
    UserId,
    Email,
    Name,
    Role,
    SourceVersion,
    Deleted,
    OccurredAt,
    SyncedAt,
}

#[derive(DeriveIden)]
enum CourseCatalog {
    Table,
    CourseId,
    Title,
    Description,
    InstructorId,
    InstructorName,
    InstructorVersion,
    SourceVersion,
    Deleted,
    OccurredAt,
    SyncedAt,
}

#[derive(DeriveIden)]
enum ProcessedEvents {
    Table,
    EventId,
    Handler,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    EventId,
    RoutingKey,
    SourceQueue,
    Reason,
    Attempts,
    Payload,
    Headers,
    FirstFailedAt,
    LastFailedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Profiles::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Profiles::Email).string_len(254).not_null())
                    .col(ColumnDef::new(Profiles::Name).string_len(200).not_null())
                    .col(ColumnDef::new(Profiles::Role).string_len(20).not_null())
                    .col(ColumnDef::new(Profiles::SourceVersion).big_integer().not_null())
                    .col(ColumnDef::new(Profiles::Deleted).boolean().not_null())
                    .col(ColumnDef::new(Profiles::OccurredAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Profiles::SyncedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CourseCatalog::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(CourseCatalog::CourseId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(CourseCatalog::Title).string_len(200).not_null())
                    .col(ColumnDef::new(CourseCatalog::Description).text().not_null())
                    .col(ColumnDef::new(CourseCatalog::InstructorId).uuid().not_null())
                    .col(ColumnDef::new(CourseCatalog::InstructorName).string_len(200).null())
                    .col(ColumnDef::new(CourseCatalog::InstructorVersion).big_integer().null())
                    .col(ColumnDef::new(CourseCatalog::SourceVersion).big_integer().not_null())
                    .col(ColumnDef::new(CourseCatalog::Deleted).boolean().not_null())
                    .col(
                        ColumnDef::new(CourseCatalog::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CourseCatalog::SyncedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_catalog_instructor")
                    .table(CourseCatalog::Table)
                    .col(CourseCatalog::InstructorId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProcessedEvents::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ProcessedEvents::EventId).uuid().not_null())
                    .col(ColumnDef::new(ProcessedEvents::Handler).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ProcessedEvents::ProcessedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ProcessedEvents::EventId)
                            .col(ProcessedEvents::Handler),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_processed_events_at")
                    .table(ProcessedEvents::Table)
                    .col(ProcessedEvents::ProcessedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeadLetters::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(DeadLetters::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(DeadLetters::EventId).uuid().null())
                    .col(ColumnDef::new(DeadLetters::RoutingKey).string_len(255).not_null())
                    .col(ColumnDef::new(DeadLetters::SourceQueue).string_len(255).not_null())
                    .col(ColumnDef::new(DeadLetters::Reason).text().not_null())
                    .col(ColumnDef::new(DeadLetters::Attempts).integer().not_null())
                    .col(ColumnDef::new(DeadLetters::Payload).text().not_null())
                    .col(ColumnDef::new(DeadLetters::Headers).text().not_null())
                    .col(
                        ColumnDef::new(DeadLetters::FirstFailedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeadLetters::LastFailedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dead_letters_routing_key")
                    .table(DeadLetters::Table)
                    .col(DeadLetters::RoutingKey)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            DeadLetters::Table.into_iden(),
            ProcessedEvents::Table.into_iden(),
            CourseCatalog::Table.into_iden(),
            Profiles::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
