//! Integration tests against a real database (and, for the pipeline, RabbitMQ and Redis).

mod courses;
mod health;
mod helpers;
mod outbox;
mod pipeline;
mod services;
mod stack;
mod users;
