//! Prometheus metrics: one recorder per process, rendered by each service's `GET /metrics`.
//!
//! Names: `zealsync_http_requests_total` and `zealsync_http_request_duration_seconds` (route,
//! method, status), `zealsync_outbox_pending`, `zealsync_outbox_oldest_pending_age_seconds`,
//! `zealsync_events_published_total`, `zealsync_publish_confirm_seconds`,
//! `zealsync_relay_delay_seconds`,
//! `zealsync_events_consumed_total` (queue, handler, outcome), `zealsync_sync_lag_seconds`
//! (queue), `zealsync_reconnects_total` (link).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds, from 1 ms to 10 s.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder on first use; later calls (another service in the same process,
/// tests) share it.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
                .inspect(|_| describe())
        })
        .as_ref()
}

/// HELP texts, so the exposition passes `promtool check metrics`.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "zealsync_http_requests_total",
        "HTTP requests by route, method and status"
    );
    describe_histogram!(
        "zealsync_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency"
    );
    describe_gauge!(
        "zealsync_outbox_pending",
        "Outbox rows not yet confirmed by the broker"
    );
    describe_gauge!(
        "zealsync_outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest pending outbox row"
    );
    describe_counter!(
        "zealsync_events_published_total",
        "Events published and confirmed by the broker"
    );
    describe_histogram!(
        "zealsync_relay_delay_seconds",
        Unit::Seconds,
        "Time from an outbox row's write to its publish (the relay's share of the sync lag)"
    );
    describe_histogram!(
        "zealsync_publish_confirm_seconds",
        Unit::Seconds,
        "Time to collect the confirms of one relay chunk"
    );
    describe_counter!(
        "zealsync_events_consumed_total",
        "Events handled by queue, handler and outcome"
    );
    describe_histogram!(
        "zealsync_sync_lag_seconds",
        Unit::Seconds,
        "Commit time minus occurred_at of applied events"
    );
    describe_counter!(
        "zealsync_reconnects_total",
        "Reconnection attempts after a lost broker link"
    );
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// Counts a reconnection attempt of `link` after a failure.
pub fn reconnect(link: &'static str) {
    metrics::counter!("zealsync_reconnects_total", "link" => link).increment(1);
}
