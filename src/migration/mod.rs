//! Schema migrations, one migrator per service database.

pub mod publisher;
pub mod subscriber;

pub use publisher::PublisherMigrator;
pub use subscriber::SubscriberMigrator;
