//! Typed settings: `config/default.toml` -> `config/$ZEALSYNC_ENV.toml` -> `ZEALSYNC__SECTION__KEY`.

use std::fmt;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file or variable could not be read or does not fit the settings tree.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    /// A value parsed but makes no sense (e.g. a zero batch size).
    #[error("invalid configuration: {0}")]
    Value(String),
}

/// The whole settings tree, one section per concern (DESIGN §2).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub publisher: ServiceSettings,
    pub subscriber: ServiceSettings,
    pub rabbitmq: RabbitSettings,
    pub redis: RedisSettings,
    pub outbox: OutboxSettings,
    pub retry: RetrySettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

/// The async runtime of the background work: the relay, the creation batcher, the
/// consumers. HTTP requests run on actix's own worker threads beside it.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeSettings {
    /// Its worker threads. That work waits on the database and the broker far more than it
    /// computes: one thread keeps a hand-over from one task to the next on the same core
    /// instead of waking another thread, which under load costs more than it saves.
    pub worker_threads: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

/// Where one HTTP service listens and which database it owns.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    pub host: String,
    pub port: u16,
    pub database_url: SecretUrl,
}

/// Broker connection and topology naming.
#[derive(Debug, Clone, Deserialize)]
pub struct RabbitSettings {
    pub url: SecretUrl,
    pub prefix: String,
    pub queue_type: QueueType,
    pub prefetch: u16,
    pub pool_size: usize,
    pub confirm_window: usize,
    /// Delete idle queues after this many ms (`x-expires`); for throw-away test prefixes only.
    #[serde(default)]
    pub queue_expires_ms: Option<u32>,
}

/// The queue flavour: quorum (replicated, the default) or classic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

/// Redis connection and the prefix of every key and channel ZealSync writes.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretUrl,
    pub key_prefix: String,
    pub pool_size: usize,
}

/// Outbox relay tuning and retention.
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    pub batch_size: u64,
    pub poll_interval_ms: u64,
    pub retention_hours: u64,
    /// How often the retention sweep runs (published outbox rows, processed-event records).
    #[serde(default = "default_cleanup_interval_ms")]
    pub cleanup_interval_ms: u64,
    /// Relay loops per publisher process (PostgreSQL; SQLite always uses one). Several loops
    /// overlap their confirm waits; `FOR UPDATE SKIP LOCKED` keeps them off each other's rows.
    #[serde(default = "default_relay_workers")]
    pub relay_workers: usize,
    /// How long a row its writer hands straight to its own relay stays claimed by it (PostgreSQL).
    /// Should that process die first, another relay publishes the row after this.
    #[serde(default = "default_handoff_lease_ms")]
    pub handoff_lease_ms: u64,
}

fn default_handoff_lease_ms() -> u64 {
    10_000
}

fn default_relay_workers() -> usize {
    1
}

fn default_cleanup_interval_ms() -> u64 {
    60_000
}

/// Subscriber retry policy for transient handler failures.
#[derive(Debug, Clone, Deserialize)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub delays_ms: Vec<u64>,
}

/// Admin API access; an empty token disables the admin routes.
#[derive(Clone, Deserialize)]
pub struct AdminSettings {
    pub token: String,
}

impl AdminSettings {
    /// The configured token, or `None` when admin routes are disabled.
    pub fn token(&self) -> Option<&str> {
        let t = self.token.trim();
        (!t.is_empty()).then_some(t)
    }
}

impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if self.token().is_some() {
            "<set>"
        } else {
            "<disabled>"
        };
        f.debug_struct("AdminSettings")
            .field("token", &shown)
            .finish()
    }
}

/// Log level filter, directory of the rolling file, and line format.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub dir: String,
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A connection URL whose password never reaches a log line: `Debug` and `Display` mask it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, for opening connections only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_password(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &url[scheme_end + 3 + at..]
        ),
        _ => url.to_string(),
    }
}

impl Settings {
    /// Loads defaults, `config/$ZEALSYNC_ENV.toml` (default `development`) and the environment.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var("ZEALSYNC_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let env = std::env::var("ZEALSYNC_ENV").unwrap_or_else(|_| "development".into());
        let dir = Path::new(&dir);
        let built = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false))
            .add_source(File::from(dir.join(format!("{env}.toml"))).required(false))
            .add_source(
                Environment::with_prefix("ZEALSYNC")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("retry.delays_ms")
                    .try_parsing(true),
            )
            .build()?;
        built.try_deserialize::<Settings>()?.validated()
    }

    /// The compiled-in defaults only: a base for tests and tools that set fields in code.
    pub fn defaults() -> Result<Self, SettingsError> {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?
            .try_deserialize::<Settings>()?
            .validated()
    }

    fn validated(self) -> Result<Self, SettingsError> {
        let bad = |m: &str| Err(SettingsError::Value(m.to_string()));
        if self.outbox.batch_size == 0 {
            return bad("outbox.batch_size must be at least 1");
        }
        if self.rabbitmq.prefetch == 0 {
            return bad("rabbitmq.prefetch must be at least 1");
        }
        if self.rabbitmq.confirm_window == 0 {
            return bad("rabbitmq.confirm_window must be at least 1");
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1");
        }
        if self.retry.delays_ms.is_empty() {
            return bad("retry.delays_ms needs at least one delay");
        }
        if !valid_name(&self.rabbitmq.prefix) || !valid_name(&self.redis.key_prefix) {
            return bad(
                "rabbitmq.prefix and redis.key_prefix: letters, digits, '-', '_', '.' only",
            );
        }
        Ok(self)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_password_only() {
        assert_eq!(
            mask_password("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            mask_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            mask_password("postgres://u:p@w@db/x"),
            "postgres://u:***@db/x"
        );
        assert_eq!(mask_password("sqlite://data/p.db"), "sqlite://data/p.db");
    }

    #[test]
    fn defaults_load_and_hide_secrets() {
        let s = Settings::defaults().expect("defaults parse");
        assert_eq!(s.publisher.port, 8000);
        assert_eq!(s.subscriber.port, 8001);
        assert!(format!("{s:?}").contains("guest:***@"));
        assert!(s.admin.token().is_none());
    }
}
