//! The one event envelope (DESIGN §4), shared by the outbox, relay, consumer, replay and bench.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The only envelope layout this build understands.
pub const SCHEMA_VERSION: u32 = 1;
/// Larger bodies are refused (a permanent error): no entity of ours comes near it.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;
/// `app_id` of every message the relay publishes.
pub const APP_ID: &str = "zealsync-publisher";

/// The kind of entity an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateType {
    User,
    Course,
}

impl AggregateType {
    /// The routing-key and table word for this aggregate.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Course => "course",
        }
    }
}

/// What happened to the aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Created,
    Updated,
    Deleted,
    /// Replayed current state, applied like an upsert.
    Snapshot,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Snapshot => "snapshot",
        }
    }
}

/// `<aggregate>.<action>`: both the envelope's `event_type` and the routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    pub aggregate: AggregateType,
    pub action: Action,
}

impl EventType {
    /// Builds an event type from its two parts.
    pub fn new(aggregate: AggregateType, action: Action) -> Self {
        Self { aggregate, action }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.aggregate.as_str(), self.action.as_str())
    }
}

impl FromStr for EventType {
    type Err = EnvelopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || EnvelopeError::UnknownEventType(s.chars().take(100).collect());
        let (agg, act) = s.split_once('.').ok_or_else(unknown)?;
        let aggregate = match agg {
            "user" => AggregateType::User,
            "course" => AggregateType::Course,
            _ => return Err(unknown()),
        };
        let action = match act {
            "created" => Action::Created,
            "updated" => Action::Updated,
            "deleted" => Action::Deleted,
            "snapshot" => Action::Snapshot,
            _ => return Err(unknown()),
        };
        Ok(Self { aggregate, action })
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a message body is not a usable envelope. Every variant is permanent: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body of {0} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte limit")]
    Oversized(usize),
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("envelope does not fit the schema: {0}")]
    Invalid(String),
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error("unknown schema_version {0} (this build understands {SCHEMA_VERSION})")]
    UnknownSchemaVersion(u64),
    #[error("event_type {event_type} does not match aggregate_type {aggregate_type}")]
    Mismatch {
        event_type: String,
        aggregate_type: String,
    },
}

/// One event: what changed, which version it produced, and the entity's full state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub aggregate_type: AggregateType,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
    pub schema_version: u32,
    pub correlation_id: Option<String>,
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new event with a fresh UUID v7 id, stamped now.
    pub fn new(
        event_type: EventType,
        aggregate_id: Uuid,
        version: i64,
        correlation_id: Option<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            aggregate_type: event_type.aggregate,
            aggregate_id,
            version,
            occurred_at: Utc::now().trunc_subsecs(6),
            schema_version: SCHEMA_VERSION,
            correlation_id,
            data,
        }
    }

    /// Serialises to the wire body.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data structs into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a wire body; every failure is a reason to park the message.
    pub fn decode(body: &[u8]) -> Result<Self, EnvelopeError> {
        if body.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::Oversized(body.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        // Check the schema version first, so a future layout is reported as such.
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => return Err(EnvelopeError::UnknownSchemaVersion(v)),
            None => {
                return Err(EnvelopeError::Invalid(
                    "missing or non-integer field `schema_version`".into(),
                ));
            }
        }
        if let Some(t) = value.get("event_type").and_then(|v| v.as_str()) {
            t.parse::<EventType>()?;
        }
        let env: Envelope =
            serde_json::from_value(value).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
        if env.event_type.aggregate != env.aggregate_type {
            return Err(EnvelopeError::Mismatch {
                event_type: env.event_type.to_string(),
                aggregate_type: env.aggregate_type.as_str().into(),
            });
        }
        if env.version < 1 {
            return Err(EnvelopeError::Invalid("version must be at least 1".into()));
        }
        if !env.data.is_object() {
            return Err(EnvelopeError::Invalid("data must be an object".into()));
        }
        Ok(env)
    }

    /// The AMQP headers that travel beside the body (DESIGN §4).
    pub fn headers_json(&self) -> serde_json::Value {
        serde_json::json!({
            "x-aggregate-id": self.aggregate_id.to_string(),
            "x-version": self.version,
            "x-schema-version": self.schema_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope::new(
            EventType::new(AggregateType::User, Action::Created),
            Uuid::now_v7(),
            1,
            Some("req-1".into()),
            serde_json::json!({"name": "Ada"}),
        )
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(Envelope::decode(&e.encode()), Ok(e));
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(matches!(
            Envelope::decode(b"{nope"),
            Err(EnvelopeError::NotJson(_))
        ));
        let mut v = serde_json::to_value(sample()).expect("value");
        v["schema_version"] = 7.into();
        let body = serde_json::to_vec(&v).expect("bytes");
        assert_eq!(
            Envelope::decode(&body),
            Err(EnvelopeError::UnknownSchemaVersion(7))
        );
        v["schema_version"] = 1.into();
        v["event_type"] = "user.exploded".into();
        let body = serde_json::to_vec(&v).expect("bytes");
        assert!(matches!(
            Envelope::decode(&body),
            Err(EnvelopeError::UnknownEventType(_))
        ));
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::decode(&big),
            Err(EnvelopeError::Oversized(_))
        ));
    }
}
