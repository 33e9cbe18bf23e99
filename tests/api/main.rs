//! Integration tests against a real database (and, for the pipeline, RabbitMQ and Redis).

mod courses;
mod fault_proxy;
mod faults;
mod handoff;
mod health;
mod helpers;
mod observability;
mod outbox;
mod pipeline;
mod replay_verify;
mod services;
mod stack;
mod users;
