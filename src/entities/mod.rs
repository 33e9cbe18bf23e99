//! sea-orm entities, one set per service database.

pub mod publisher;
pub mod subscriber;
