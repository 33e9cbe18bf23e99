//! Thin actix handlers: parse the request, call a service, shape the response.

pub mod admin_auth;
pub mod courses;
pub mod dashboard;
pub mod dead_letters;
pub mod health;
pub mod json_body;
pub mod metrics;
pub mod openapi;
pub mod outbox_admin;
pub mod pagination;
pub mod preconditions;
pub mod problem;
pub mod read_models;
pub mod replay_admin;
pub mod request_id;
pub mod state;
pub mod sync_status;
pub mod users;

pub use problem::ApiError;
