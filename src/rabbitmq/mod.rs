//! Everything that talks AMQP: the envelope, topology, the outbox relay and the consumers.

pub mod acks;
pub mod amqp;
pub mod backoff;
pub mod consumer;
pub mod envelope;
pub mod handoff;
pub mod parking;
pub mod producer;
pub mod properties;
pub mod router;
pub mod stats;
pub mod topology;
