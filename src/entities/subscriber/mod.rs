//! Entities of the subscriber's database.

pub mod course_catalog;
pub mod dead_letters;
pub mod profiles;
