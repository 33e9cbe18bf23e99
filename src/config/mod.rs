//! Settings, database connection + migrations, and logging setup.

pub mod database;
pub mod logging;
pub mod settings;

pub use settings::{
    AdminSettings, LogFormat, LogSettings, OutboxSettings, QueueType, RabbitSettings,
    RedisSettings, RetrySettings, SecretUrl, ServiceSettings, Settings, SettingsError,
};
