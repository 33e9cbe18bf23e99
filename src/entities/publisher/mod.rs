//! Entities of the publisher's database.

pub mod courses;
pub mod outbox;
pub mod users;
