//! `profiles`: the subscriber's projection of users (tombstoned on delete).

use sea_orm::entity::prelude::*;
use serde::Serialize;

/// One profile, as served by `GET /api/profiles/{user_id}`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub source_version: i64,
    pub deleted: bool,
    pub occurred_at: DateTimeUtc,
    pub synced_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
