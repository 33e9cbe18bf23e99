//! Redis projections: one hash per user and course, each instructor's live-course set, and a
//! PUBLISH on `<key_prefix>:changes` for every change actually applied.

pub mod cache;
pub mod keys;
mod scripts;

pub use cache::{CourseCache, UserCache};
pub use keys::RedisKeys;
