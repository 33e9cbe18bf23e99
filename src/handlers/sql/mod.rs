//! SQL projections in the subscriber's database: `profiles` and `course_catalog`.

pub mod batch;
pub mod catalog;
pub mod data;
pub mod inbox;
pub mod profiles;
pub mod student_batch;

pub use catalog::CatalogProjection;
pub use profiles::ProfileProjection;
