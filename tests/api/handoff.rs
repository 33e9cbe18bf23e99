//! The relay hand-off: a writer gives its committed outbox rows straight to its own relay,
//! claimed for a lease; no other claim touches them until the lease runs out.

use std::time::{Duration, Instant};

use lapin::Channel;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use sea_orm::EntityTrait;
use serde_json::json;
use uuid::Uuid;
use zealsync::entities::publisher::outbox;
use zealsync::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};

use crate::pipeline::tap;
use crate::stack::{TestStack, eventually};

const WAIT: Duration = Duration::from_secs(20);

async fn next_message(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("get")
}

async fn row(stack: &TestStack, event_id: Uuid) -> outbox::Model {
    outbox::Entity::find()
        .all(&stack.publisher.db)
        .await
        .expect("rows")
        .into_iter()
        .find(|r| r.event_id == event_id)
        .expect("the event's outbox row")
}

#[tokio::test]
async fn a_write_is_published_through_the_hand_off_without_the_polling_claim() {
    // The polling claim would only come after a minute: what arrives came through the hand-off.
    let stack = TestStack::spawn_with(|s| s.outbox.poll_interval_ms = 60_000).await;
    let (_conn, ch) = stack.channel().await;
    let queue = tap(&stack, &ch).await;
    let started = Instant::now();
    let res = stack
        .publisher
        .post(
            "/api/users",
            &json!({"email": "handed@example.com", "name": "Hand", "role": "student"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let msg = eventually("the user.created event", WAIT, || async {
        next_message(&ch, &queue).await
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(msg.delivery.routing_key.as_str(), "user.created");
    let event_id = msg
        .delivery
        .properties
        .message_id()
        .as_ref()
        .and_then(|m| Uuid::parse_str(m.as_str()).ok())
        .expect("message_id");
    msg.delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    let published = eventually("the row marked published", WAIT, || async {
        let r = row(&stack, event_id).await;
        r.published_at.is_some().then_some(r)
    })
    .await;
    assert!(
        published.claimed_until.is_some(),
        "the row was written claimed for its relay"
    );
}

#[tokio::test]
async fn a_dead_writers_claimed_row_is_published_once_when_its_claim_runs_out() {
    let stack = TestStack::spawn_with(|s| s.outbox.poll_interval_ms = 100).await;
    let (_conn, ch) = stack.channel().await;
    let queue = tap(&stack, &ch).await;
    // A writer that committed its row claimed, then died before handing it over.
    let id = Uuid::now_v7();
    let envelope = Envelope::new(
        EventType::new(AggregateType::User, Action::Created),
        id,
        1,
        Some("dead-writer".into()),
        json!({"id": id, "email": "gone@example.com", "name": "Gone", "role": "student"}),
    );
    let lease = Duration::from_secs(2);
    let until = chrono::Utc::now() + chrono::Duration::from_std(lease).expect("lease");
    let started = Instant::now();
    zealsync::services::outbox::append(&stack.publisher.db, &envelope, Some(until))
        .await
        .expect("claimed row");

    // The relay polls every 100 ms, and leaves the claimed row alone.
    tokio::time::sleep(lease - Duration::from_millis(600)).await;
    assert!(
        next_message(&ch, &queue).await.is_none(),
        "published while another relay's claim held"
    );
    assert!(row(&stack, envelope.event_id).await.published_at.is_none());

    let msg = eventually("the event, once the claim ran out", WAIT, || async {
        next_message(&ch, &queue).await
    })
    .await;
    assert!(started.elapsed() >= lease - Duration::from_millis(300));
    assert_eq!(
        msg.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some(envelope.event_id.to_string().as_str())
    );
    msg.delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    eventually("the row marked published", WAIT, || async {
        row(&stack, envelope.event_id)
            .await
            .published_at
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        next_message(&ch, &queue).await.is_none(),
        "published only once"
    );
}
