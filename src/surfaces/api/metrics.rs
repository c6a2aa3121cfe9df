//! `GET /metrics`: herald's metrics in the Prometheus text format. Counters
//! and histograms come from the recorder installed at start (see
//! [`crate::base::metrics`]); the gauges are read from the store at each
//! scrape and written here, so a deleted or renamed webhook leaves no stale
//! series. Needs an API key of any scope unless `metrics.public = true`.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::base::metrics::{
    EVENTS_QUEUED, OLDEST_PENDING, QUEUE_PENDING, STREAM_SUBSCRIBERS, WEBHOOK_INFO, WEBHOOK_PAUSED,
};
use crate::surfaces::shared::keys::{bearer_token, refusal};
use crate::surfaces::shared::{ApiError, AppState};

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.config.metrics_public {
        match bearer_token(&headers) {
            None => {
                return refuse(
                    "GET /metrics needs an API key (any scope): `Authorization: Bearer hk_…`, or set metrics.public = true",
                );
            }
            Some(key) => match state
                .keys
                .lookup(&crate::engines::access::key_digest(key))
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return refuse("the API key is unknown or revoked"),
                Err(e) => return ApiError::internal(e).into_response(),
            },
        }
    }
    let Some(handle) = &state.metrics else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process",
        )
        .into_response();
    };
    let read = state
        .store
        .run(|s| {
            Ok((
                s.queue_depth()?,
                s.pending_deliveries()?,
                s.oldest_pending_delivery_at()?,
                s.webhooks()?,
            ))
        })
        .await;
    let (queued, pending, oldest, webhooks) = match read {
        Ok(r) => r,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let mut text = handle.render();
    let oldest_age = oldest
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_milliseconds()
                .max(0) as f64
                / 1000.0
        })
        .unwrap_or(0.0);
    gauge(
        &mut text,
        QUEUE_PENDING,
        "Deliveries waiting to be sent (first attempts and retries).",
        &[("", pending as f64)],
    );
    gauge(
        &mut text,
        EVENTS_QUEUED,
        "Events waiting to be routed.",
        &[("", queued as f64)],
    );
    gauge(
        &mut text,
        OLDEST_PENDING,
        "Age of the oldest pending delivery in seconds (0 when none).",
        &[("", oldest_age)],
    );
    let paused: Vec<(String, f64)> = webhooks
        .iter()
        .map(|w| {
            (
                format!("webhook=\"{}\"", w.id),
                if w.health.paused_at.is_some() {
                    1.0
                } else {
                    0.0
                },
            )
        })
        .collect();
    gauge_labelled(
        &mut text,
        WEBHOOK_PAUSED,
        "1 while the webhook is paused.",
        &paused,
    );
    let info: Vec<(String, f64)> = webhooks
        .iter()
        .map(|w| {
            (
                format!(
                    "webhook=\"{}\",name=\"{}\"",
                    w.id,
                    label_value(&w.spec.name)
                ),
                1.0,
            )
        })
        .collect();
    gauge_labelled(
        &mut text,
        WEBHOOK_INFO,
        "1 per webhook: its id and name.",
        &info,
    );
    gauge(
        &mut text,
        STREAM_SUBSCRIBERS,
        "Live-stream subscribers connected now.",
        &[("", state.hub.subscribers().len() as f64)],
    );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// One unlabelled gauge family.
fn gauge(out: &mut String, name: &str, help: &str, value: &[(&str, f64)]) {
    let labelled: Vec<(String, f64)> = value.iter().map(|(l, v)| (l.to_string(), *v)).collect();
    gauge_labelled(out, name, help, &labelled);
}

/// One gauge family with a sample per label set (`a="1",b="x"`, or empty).
fn gauge_labelled(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A label value escaped as the text format wants (`\`, `"`, newline).
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn refuse(message: &str) -> Response {
    refusal(StatusCode::UNAUTHORIZED, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        gauge_labelled(&mut out, "x", "h", &[("webhook=\"1\"".into(), 1.0)]);
        assert_eq!(out, "# HELP x h\n# TYPE x gauge\nx{webhook=\"1\"} 1\n");
    }
}
