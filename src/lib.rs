//! ZealSync: keeps data in sync between microservices through RabbitMQ.
//!
//! The path of a change reads top to bottom: `controllers` -> `services` -> `rabbitmq` (relay,
//! consumer, router) -> `handlers` -> the subscriber's SQL tables and Redis keys.

pub mod bench;
pub mod config;
pub mod controllers;
pub mod entities;
pub mod handlers;
pub mod links;
pub mod migration;
pub mod rabbitmq;
pub mod retention;
pub mod services;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod verify;
