//! Maps a routing key to the handler of its aggregate within one queue's group.

use std::sync::Arc;

use crate::handlers::EventHandler;
use crate::rabbitmq::envelope::{AggregateType, EventType};

/// The handlers of one group, by aggregate.
#[derive(Clone)]
pub struct Router {
    user: Arc<dyn EventHandler>,
    course: Arc<dyn EventHandler>,
}

/// A routing key this build cannot handle (a permanent failure).
#[derive(Debug, thiserror::Error)]
#[error("no handler for routing key `{0}`")]
pub struct UnknownRoute(pub String);

impl Router {
    /// A router sending `user.*` to `user` and `course.*` to `course`.
    pub fn new(user: Arc<dyn EventHandler>, course: Arc<dyn EventHandler>) -> Self {
        Self { user, course }
    }

    /// The handler for `routing_key`.
    pub fn route(
        &self,
        routing_key: &str,
    ) -> Result<(EventType, &Arc<dyn EventHandler>), UnknownRoute> {
        let event_type: EventType = routing_key
            .parse()
            .map_err(|_| UnknownRoute(routing_key.chars().take(255).collect()))?;
        let handler = match event_type.aggregate {
            AggregateType::User => &self.user,
            AggregateType::Course => &self.course,
        };
        Ok((event_type, handler))
    }
}
