//! The AMQP properties and headers of an event message (DESIGN §4), so the management UI
//! shows what a message is without opening its body.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde::Deserialize;
use uuid::Uuid;

use crate::rabbitmq::envelope::{APP_ID, Envelope};

/// The envelope fields the properties are made of (read without the `data`).
#[derive(Debug, Deserialize)]
pub struct EnvelopeMeta {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub version: i64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub schema_version: u32,
    pub correlation_id: Option<String>,
}

impl From<&Envelope> for EnvelopeMeta {
    fn from(e: &Envelope) -> Self {
        Self {
            event_id: e.event_id,
            event_type: e.event_type.to_string(),
            aggregate_id: e.aggregate_id,
            version: e.version,
            occurred_at: e.occurred_at,
            schema_version: e.schema_version,
            correlation_id: e.correlation_id.clone(),
        }
    }
}

/// W3C trace context header, so tracing systems join the HTTP request and its event handling.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// `00-<trace id>-<span id>-01`: the trace id is the request id when it is a UUID (requests
/// without `X-Request-Id` get a UUID), else derived from the event id; the span id comes from
/// the event id.
pub fn traceparent(meta: &EnvelopeMeta) -> String {
    let trace = meta
        .correlation_id
        .as_deref()
        .and_then(|c| Uuid::parse_str(c).ok())
        .unwrap_or(meta.event_id)
        .simple()
        .to_string();
    let event = meta.event_id.simple().to_string();
    format!("00-{trace}-{}-01", &event[16..])
}

/// The `traceparent` of a delivery, if it carries one.
pub fn traceparent_of(props: &BasicProperties) -> Option<String> {
    match props.headers().as_ref()?.inner().get(TRACEPARENT_HEADER)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// Header carrying how many times a message has been tried (retries and parking).
pub const ATTEMPTS_HEADER: &str = "x-attempts";

/// Persistent, JSON, identified and typed: the properties of one event message.
pub fn event_properties(meta: &EnvelopeMeta) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-aggregate-id".into(),
        AMQPValue::LongString(LongString::from(meta.aggregate_id.to_string())),
    );
    headers.insert("x-version".into(), AMQPValue::LongLongInt(meta.version));
    headers.insert(
        "x-schema-version".into(),
        AMQPValue::LongLongInt(i64::from(meta.schema_version)),
    );
    headers.insert(
        TRACEPARENT_HEADER.into(),
        AMQPValue::LongString(LongString::from(traceparent(meta))),
    );
    let mut props = BasicProperties::default()
        .with_message_id(meta.event_id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(meta.occurred_at.timestamp().max(0) as u64)
        .with_type(meta.event_type.as_str().into())
        .with_app_id(APP_ID.into())
        .with_headers(headers);
    if let Some(c) = &meta.correlation_id {
        props = props.with_correlation_id(c.as_str().into());
    }
    props
}

/// The attempts recorded on a delivery (0 when never retried).
pub fn attempts(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPTS_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortInt(n) => Some(i64::from(*n)),
            _ => None,
        })
        .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

/// `props` with the attempts header set to `n`, the last failure's reason and the original
/// routing key.
pub fn with_attempts(
    props: &BasicProperties,
    n: u32,
    reason: &str,
    routing_key: &str,
) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(
        ROUTING_KEY_HEADER.into(),
        AMQPValue::LongString(LongString::from(routing_key)),
    );
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(i64::from(n)));
    let reason: String = reason.chars().take(1000).collect();
    headers.insert(
        "x-last-error".into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    props.clone().with_headers(headers)
}

/// Header keeping a message's original routing key while it passes through retry queues
/// (dead-lettering from a retry queue rewrites the routing key to the work queue's name).
pub const ROUTING_KEY_HEADER: &str = "x-routing-key";

/// Headers carrying just the original routing key.
pub fn routing_headers(routing_key: &str) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(
        ROUTING_KEY_HEADER.into(),
        AMQPValue::LongString(LongString::from(routing_key)),
    );
    h
}

/// The event's routing key: the header when the message came back from a retry queue.
pub fn original_routing_key(props: &BasicProperties, delivered_with: &str) -> String {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ROUTING_KEY_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| delivered_with.to_string())
}
