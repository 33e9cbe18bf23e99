//! `DeadLetterStore`: the parking lot. A message that cannot be applied goes to the
//! `<prefix>.dead-letters` queue and the `dead_letters` table with its reason, so the work
//! queue moves on and an operator can inspect, retry or delete it.

use chrono::Utc;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entities::subscriber::dead_letters;
use crate::rabbitmq::amqp::AmqpError;
use crate::rabbitmq::topology::Topology;

/// Why parking or un-parking failed.
#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    /// The table could not be written or read.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// The queue could not be published to.
    #[error(transparent)]
    Broker(#[from] AmqpError),
}

/// A message about to be parked.
#[derive(Debug, Clone)]
pub struct ParkedMessage<'a> {
    pub event_id: Option<Uuid>,
    pub routing_key: &'a str,
    pub source_queue: &'a str,
    pub reason: &'a str,
    pub attempts: u32,
    pub payload: &'a [u8],
    pub properties: &'a BasicProperties,
}

/// The `dead_letters` table and queue.
#[derive(Clone)]
pub struct DeadLetterStore {
    db: DatabaseConnection,
    topology: Topology,
}

impl DeadLetterStore {
    /// The store over the subscriber's database and `topology`'s parking queue.
    pub fn new(db: DatabaseConnection, topology: Topology) -> Self {
        Self { db, topology }
    }

    /// Records the message in the table, then publishes it (confirmed) to the parking queue.
    pub async fn park(
        &self,
        channel: &Channel,
        msg: ParkedMessage<'_>,
    ) -> Result<Uuid, ParkingError> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let headers = format!("{:?}", msg.properties.headers());
        let row = dead_letters::ActiveModel {
            id: Set(id),
            event_id: Set(msg.event_id),
            routing_key: Set(msg.routing_key.chars().take(255).collect()),
            source_queue: Set(msg.source_queue.to_string()),
            reason: Set(msg.reason.to_string()),
            attempts: Set(msg.attempts.min(i32::MAX as u32) as i32),
            payload: Set(String::from_utf8_lossy(msg.payload).into_owned()),
            headers: Set(headers),
            first_failed_at: Set(now),
            last_failed_at: Set(now),
        };
        dead_letters::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await?;
        let props = crate::rabbitmq::properties::with_attempts(
            msg.properties,
            msg.attempts,
            msg.reason,
            msg.routing_key,
        );
        publish_confirmed(
            channel,
            "",
            &self.topology.dead_letter_queue(),
            msg.payload,
            props,
        )
        .await?;
        Ok(id)
    }

    /// Parked messages, newest first, optionally only those of `routing_key`.
    pub async fn list(
        &self,
        routing_key: Option<&str>,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<dead_letters::Model>, DbErr> {
        let mut q = dead_letters::Entity::find().order_by_asc(dead_letters::Column::Id);
        if let Some(rk) = routing_key {
            q = q.filter(dead_letters::Column::RoutingKey.eq(rk));
        }
        if let Some(a) = after {
            q = q.filter(dead_letters::Column::Id.gt(a));
        }
        q.limit(limit).all(&self.db).await
    }

    /// One parked message.
    pub async fn get(&self, id: Uuid) -> Result<Option<dead_letters::Model>, DbErr> {
        dead_letters::Entity::find_by_id(id).one(&self.db).await
    }

    /// Removes a parked message from the table; `false` when it was not there.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DbErr> {
        Ok(dead_letters::Entity::delete_by_id(id)
            .exec(&self.db)
            .await?
            .rows_affected
            == 1)
    }

    /// Sends a parked message back to its source queue (confirmed), then removes it.
    pub async fn retry(
        &self,
        channel: &Channel,
        row: &dead_letters::Model,
    ) -> Result<(), ParkingError> {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(crate::rabbitmq::properties::routing_headers(
                &row.routing_key,
            ));
        publish_confirmed(
            channel,
            "",
            &row.source_queue,
            row.payload.as_bytes(),
            props,
        )
        .await?;
        self.delete(row.id).await?;
        Ok(())
    }
}

/// Publishes one message and waits for the broker's confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), AmqpError> {
    let confirm = crate::rabbitmq::amqp::bounded(async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                props,
            )
            .await?
            .await
    })
    .await?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err(AmqpError::NotAccepted(format!("publish to {routing_key}")))
    }
}
