//! Integration tests against a real database (and, for the pipeline, RabbitMQ and Redis).

mod courses;
mod health;
mod helpers;
mod outbox;
mod services;
mod users;
