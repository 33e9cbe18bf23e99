//! Everything that talks AMQP: the envelope, topology, the outbox relay and the consumers.

pub mod envelope;
pub mod topology;
