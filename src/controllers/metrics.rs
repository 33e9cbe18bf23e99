//! `GET /metrics`: the Prometheus text exposition. The publisher refreshes its outbox gauges
//! from the database at each scrape, so they are exact whichever instance is scraped.

use actix_web::{HttpResponse, web};

use crate::controllers::state::PublisherState;
use crate::services::outbox;
use crate::telemetry;

fn exposition() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(telemetry::render())
}

/// The publisher's metrics, outbox gauges refreshed.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn publisher_metrics(state: web::Data<PublisherState>) -> HttpResponse {
    match outbox::stats(&state.db).await {
        Ok(s) => {
            metrics::gauge!("zealsync_outbox_pending").set(s.pending as f64);
            metrics::gauge!("zealsync_outbox_oldest_pending_age_seconds")
                .set(s.oldest_pending_age_ms as f64 / 1000.0);
        }
        Err(e) => tracing::warn!(error = %e, "outbox gauges not refreshed"),
    }
    exposition()
}

/// The subscriber's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn subscriber_metrics() -> HttpResponse {
    exposition()
}

/// Registers `/metrics` for the publisher.
pub fn publisher_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(publisher_metrics));
}

/// Registers `/metrics` for the subscriber.
pub fn subscriber_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(subscriber_metrics));
}
