//! `GET /api/sync/status`: queue depths, handled counts by outcome and recent lag.

use actix_web::{HttpResponse, web};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;

use crate::controllers::ApiError;
use crate::controllers::state::SubscriberState;
use crate::rabbitmq::topology::Group;

async fn queue_depths(state: &SubscriberState) -> serde_json::Value {
    let conn = match state.amqp.get().await {
        Ok(c) => c,
        Err(e) => return json!({"error": format!("broker unreachable: {e}")}),
    };
    let mut out = serde_json::Map::new();
    for name in state.topology.queues() {
        // A passive declare reads the depth; on a missing queue the broker closes the channel,
        // so each queue gets its own.
        let depth = match conn.create_channel().await {
            Ok(ch) => {
                let r = ch
                    .queue_declare(
                        name.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await;
                let v = match r {
                    Ok(q) => {
                        json!({"messages": q.message_count(), "consumers": q.consumer_count()})
                    }
                    Err(e) => json!({"error": e.to_string()}),
                };
                let _ = ch.close(200, "status read".into()).await;
                v
            }
            Err(e) => json!({"error": e.to_string()}),
        };
        out.insert(name, depth);
    }
    serde_json::Value::Object(out)
}

/// Queue depths, handled counts by outcome and recent lag.
#[utoipa::path(get, path = "/api/sync/status", tag = "read models", responses((status = 200, description = "`{queues, handled}`")))]
pub async fn status(state: web::Data<SubscriberState>) -> Result<HttpResponse, ApiError> {
    let queues = queue_depths(&state).await;
    let handled: serde_json::Map<String, serde_json::Value> = Group::ALL
        .iter()
        .map(|g| (g.as_str().to_string(), json!(state.stats.report(*g))))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"queues": queues, "handled": handled})))
}

/// Registers the status route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/sync/status", web::get().to(status));
}
