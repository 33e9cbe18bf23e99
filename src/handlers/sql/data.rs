//! The entity states carried in an event's `data`, as the handlers read them.

use serde::Deserialize;
use uuid::Uuid;

use crate::handlers::HandlerError;
use crate::rabbitmq::envelope::Envelope;

/// A user's state in a `user.*` event.
#[derive(Debug, Clone, Deserialize)]
pub struct UserData {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
}

/// A course's state in a `course.*` event.
#[derive(Debug, Clone, Deserialize)]
pub struct CourseData {
    pub id: Uuid,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub instructor_id: Uuid,
}

/// Reads `data` as `T` and checks it describes the event's aggregate; a misfit is permanent.
pub fn read<T: serde::de::DeserializeOwned>(
    event: &Envelope,
    id: impl Fn(&T) -> Uuid,
) -> Result<T, HandlerError> {
    let data: T = serde_json::from_value(event.data.clone()).map_err(|e| {
        HandlerError::Permanent(format!("data does not fit {}: {e}", event.event_type))
    })?;
    if id(&data) != event.aggregate_id {
        return Err(HandlerError::Permanent(format!(
            "data.id {} differs from aggregate_id {}",
            id(&data),
            event.aggregate_id
        )));
    }
    Ok(data)
}
