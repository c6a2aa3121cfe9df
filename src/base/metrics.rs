//! The names of herald's Prometheus metrics, in one place, and what each
//! means (`# HELP`). Counters and histograms are recorded where things
//! happen through the `metrics` facade; without an installed recorder (every
//! CLI command) recording does nothing. Gauges are read from the store when
//! `/metrics` is scraped. Labels name webhooks by id (`webhook="3"`;
//! `herald_webhook_info` maps ids to names), never by URL, so series stay
//! as few as the webhooks.

/// Events taken from the queue, by how they arrived: `source` = `api`,
/// `cli` (`herald emit`), `sql` (a producer's INSERT) or `herald` (its
/// own alerts).
pub const EVENTS_INGESTED: &str = "herald_events_ingested_total";
/// Events routed (valid, deliveries made for every matching webhook).
pub const EVENTS_ROUTED: &str = "herald_events_routed_total";
/// Delivery attempts by `webhook` and `outcome` (`delivered`, `retry`:
/// failed and tried again later, `failed`: given up).
pub const DELIVERIES: &str = "herald_deliveries_total";
/// Request durations by `webhook`, in seconds.
pub const DELIVERY_DURATION: &str = "herald_delivery_duration_seconds";
/// Buckets of [`DELIVERY_DURATION`], seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Token fetches from auth URLs by `webhook` and `outcome` (`ok`, `failed`).
pub const TOKEN_FETCHES: &str = "herald_token_fetches_total";
/// Deliveries waiting to be sent (first attempts and retries).
pub const QUEUE_PENDING: &str = "herald_queue_pending";
/// Events waiting to be routed.
pub const EVENTS_QUEUED: &str = "herald_events_queued";
/// Age of the oldest pending delivery, seconds (0 when none).
pub const OLDEST_PENDING: &str = "herald_oldest_pending_seconds";
/// 1 while webhook `webhook` is paused, else 0.
pub const WEBHOOK_PAUSED: &str = "herald_webhook_paused";
/// 1 per webhook, labelled with its `webhook` id and `name`.
pub const WEBHOOK_INFO: &str = "herald_webhook_info";
/// Live-stream subscribers connected now.
pub const STREAM_SUBSCRIBERS: &str = "herald_stream_subscribers";

/// Registers the counters' and the histogram's help text with the
/// installed recorder (the gauges are written with theirs at each scrape).
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        EVENTS_INGESTED,
        "Events taken from the queue, by how they arrived (api, cli, sql)."
    );
    describe_counter!(
        EVENTS_ROUTED,
        "Events routed to the webhooks that subscribe to them."
    );
    describe_counter!(
        DELIVERIES,
        "Delivery attempts by webhook id and outcome (delivered, retry, failed)."
    );
    describe_histogram!(
        DELIVERY_DURATION,
        metrics::Unit::Seconds,
        "Delivery request durations by webhook id."
    );
    describe_counter!(
        TOKEN_FETCHES,
        "Token fetches from auth URLs by webhook id and outcome (ok, failed)."
    );
}
