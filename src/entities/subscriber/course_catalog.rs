//! `course_catalog`: courses denormalised with their instructor's name.

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One catalog entry, as served by `GET /api/catalog/courses/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "course_catalog")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub course_id: Uuid,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub instructor_id: Uuid,
    pub instructor_name: Option<String>,
    /// The instructor's profile version the name was taken from.
    pub instructor_version: Option<i64>,
    pub source_version: i64,
    pub deleted: bool,
    pub occurred_at: DateTimeUtc,
    pub synced_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
