//! The live dashboard (`GET /` on the subscriber, one self-contained page) and the stream
//! that feeds its live view: `GET /api/sync/stream`, Server-Sent Events relayed from the
//! Redis changes channel.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use futures_util::stream;

use crate::controllers::ApiError;
#[allow(unused_imports)]
use crate::controllers::openapi::Problem;
use crate::controllers::state::SubscriberState;

/// The page, compiled in: no build step, no external assets.
const PAGE: &str = include_str!("dashboard.html");

/// The live dashboard page.
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(PAGE)
}

/// One SSE frame carrying a change notification.
fn frame(payload: &str) -> Bytes {
    let data = payload.replace('\n', "\ndata: ");
    Bytes::from(format!("event: change\ndata: {data}\n\n"))
}

/// Applied changes as Server-Sent Events (`event: change`).
#[utoipa::path(get, path = "/api/sync/stream", tag = "read models", responses((status = 200, description = "`event: change` frames with `{event_type, aggregate_id, version}`", content_type = "text/event-stream"), (status = 503, description = "Redis unreachable", body = Problem, content_type = "application/problem+json")))]
pub async fn changes(state: web::Data<SubscriberState>) -> Result<HttpResponse, ApiError> {
    let client = redis::Client::open(state.redis_url.expose())
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    pubsub
        .subscribe(state.keys.changes())
        .await
        .map_err(|e| ApiError::Unavailable(format!("redis: {e}")))?;
    let changes = pubsub.into_on_message().map(|msg| {
        let payload: String = msg.get_payload().unwrap_or_default();
        Ok::<_, actix_web::Error>(frame(&payload))
    });
    // A comment every 15 s keeps proxies from closing an idle stream.
    let keepalive = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((
            Ok::<_, actix_web::Error>(Bytes::from_static(b": keepalive\n\n")),
            (),
        ))
    });
    let hello =
        stream::once(async { Ok::<_, actix_web::Error>(Bytes::from_static(b": connected\n\n")) });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(hello.chain(stream::select(changes, keepalive))))
}

/// Registers the page and its stream.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/api/sync/stream", web::get().to(changes));
}
