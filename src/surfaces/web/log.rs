//! The Event log tab: every attempt, alert and invalid event, newest first,
//! paged and filtered; an entry's detail with the event's data and every
//! attempt of its delivery; retry buttons; and a server-sent-events stream
//! that tells an open page when new entries were written.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::page::{WebError, tab_page};
use crate::store::{DeliveryFilter, LogFilter, Replay, Session, now_ms};
use crate::surfaces::shared::AppState;
use crate::surfaces::shared::ops;

/// Entries per page.
const PAGE: usize = 50;
/// How often the live stream looks for new entries.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// The filters of the log page, as in its URL (empty fields are unset).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
pub struct LogQuery {
    #[serde(default)]
    webhook: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// An event uuid or a ticket id.
    #[serde(default)]
    q: String,
    #[serde(default)]
    before: String,
    /// `rows`: only the table rows (the live update fetches them).
    #[serde(default)]
    fragment: String,
    #[serde(default)]
    notice: String,
    #[serde(default)]
    n: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A date-time input (`2026-11-23T10:00`, taken as UTC) or RFC 3339 time,
/// as stored times are written.
fn time_filter(field: &str, text: &str) -> Result<Option<String>, WebError> {
    let Some(t) = opt(text) else { return Ok(None) };
    // A browser's date-time field has no offset: it is taken as UTC.
    let local = || {
        chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S"))
            .ok()
            .and_then(|n| {
                crate::base::event::to_stored_time(&format!("{}Z", n.format("%Y-%m-%dT%H:%M:%S")))
            })
    };
    crate::base::event::to_stored_time(&t)
        .or_else(local)
        .map(Some)
        .ok_or_else(|| {
            WebError::new(
                StatusCode::BAD_REQUEST,
                format!("{field}: {t:?} is not a time (e.g. 2026-11-23T10:00, UTC)"),
            )
        })
}

impl LogQuery {
    /// The store filter; a bad field is a 400 naming it.
    fn filter(&self) -> Result<LogFilter, WebError> {
        let number = |field: &str, s: &str| -> Result<Option<i64>, WebError> {
            opt(s)
                .map(|v| {
                    v.parse().map_err(|_| {
                        WebError::new(
                            StatusCode::BAD_REQUEST,
                            format!("{field}: {v:?} is not a number"),
                        )
                    })
                })
                .transpose()
        };
        let status = opt(&self.status);
        if let Some(s) = &status
            && !["delivered", "retrying", "failed", "paused"].contains(&s.as_str())
        {
            return Err(WebError::new(
                StatusCode::BAD_REQUEST,
                format!("status: {s:?} is not one of delivered, retrying, failed, paused"),
            ));
        }
        // One search box: a uuid finds the event, anything else a ticket.
        let q = opt(&self.q);
        let (event_uuid, ticket_id) = match q {
            Some(q) if uuid::Uuid::parse_str(&q).is_ok() => (Some(q.to_ascii_lowercase()), None),
            Some(q) => (None, Some(q)),
            None => (None, None),
        };
        Ok(LogFilter {
            webhook_id: number("webhook", &self.webhook)?,
            event_uuid,
            ticket_id,
            event_type: opt(&self.kind),
            status,
            from: time_filter("from", &self.from)?,
            to: time_filter("to", &self.to)?,
            before_id: number("before", &self.before)?,
            limit: PAGE,
            ..LogFilter::default()
        })
    }

    /// The query string of these filters without paging, for links.
    fn filters_query(&self) -> String {
        let mut q = self.clone();
        q.before.clear();
        q.fragment.clear();
        q.notice.clear();
        q.n.clear();
        let pairs: Vec<(&str, &str)> = [
            ("webhook", q.webhook.as_str()),
            ("type", q.kind.as_str()),
            ("status", q.status.as_str()),
            ("from", q.from.as_str()),
            ("to", q.to.as_str()),
            ("q", q.q.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// `GET /log`: the page, or with `fragment=rows` only its rows.
pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(q): Query<LogQuery>,
) -> Result<Response, WebError> {
    let filter = q.filter()?;
    let now = chrono::Utc::now();
    let since = super::charts::since(now);
    let fragment = q.fragment == "rows";
    let (entries, webhooks, last_id, hourly) = state
        .store
        .run(move |s| {
            // The rows fragment (live updates) needs no chart.
            let hourly = if fragment {
                Vec::new()
            } else {
                s.hourly_log(&since)?
            };
            Ok((
                s.log_entries(&filter)?,
                s.webhooks()?,
                s.last_log_id()?,
                hourly,
            ))
        })
        .await?;
    let older = (entries.len() == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    if q.fragment == "rows" {
        let html = super::page::pages()
            .render("log_rows.html", serde_json::json!({ "entries": entries }))?;
        return Ok(html.into_response());
    }
    let notice = retried_notice(&q);
    tab_page(
        &state,
        &session,
        "log.html",
        "log",
        serde_json::json!({
            "entries": entries,
            "webhooks": webhooks,
            "f": q.clone(),
            "filters": q.filters_query(),
            "older": older,
            "first_page": q.before.is_empty(),
            "last_id": last_id,
            "known_types": crate::base::event::KNOWN_TYPES,
            "notice": notice,
            "chart": super::charts::svg(
                &super::charts::all(&hourly, &super::charts::last_hours(now)),
                false,
                "Event log",
            ),
        }),
    )
    .await
}

/// The notice after a retry (`?notice=retried&n=N`): built from the
/// number only, so nothing from the URL is shown as text.
fn retried_notice(q: &LogQuery) -> Option<String> {
    if q.notice != "retried" {
        return None;
    }
    let n = q.n.parse::<usize>().unwrap_or(0);
    Some(format!(
        "{n} deliver{} queued to be sent again.",
        if n == 1 { "y" } else { "ies" }
    ))
}

/// `GET /log/{id}`: one entry, the event's data, and every attempt of its delivery.
pub async fn entry(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, WebError> {
    let id: i64 = id
        .parse()
        .map_err(|_| WebError::not_found(format!("log entry {id:?}")))?;
    let (entry, attempts, event, delivery) = state
        .store
        .run(move |s| {
            let entry = s.log_entry(id)?;
            let attempts = match entry.delivery_id {
                Some(d) => s.log_entries(&LogFilter {
                    delivery_id: Some(d),
                    limit: 1000,
                    ..LogFilter::default()
                })?,
                None => vec![entry.clone()],
            };
            let event = match &entry.event_uuid {
                Some(u) => s.event_by_uuid(u)?,
                None => None,
            };
            let delivery = match entry.delivery_id {
                Some(d) => s
                    .deliveries(&DeliveryFilter {
                        delivery_id: Some(d),
                        limit: 1,
                        ..DeliveryFilter::default()
                    })?
                    .into_iter()
                    .next(),
                None => None,
            };
            Ok((entry, attempts, event, delivery))
        })
        .await?;
    // The stored data, pretty-printed when it is JSON.
    let data = event.as_ref().map(|e| {
        serde_json::from_str::<serde_json::Value>(&e.data)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| e.data.clone())
    });
    tab_page(
        &state,
        &session,
        "log_entry.html",
        "log",
        serde_json::json!({
            "entry": entry,
            "attempts": attempts,
            "event": event,
            "data": data,
            "delivery": delivery,
            "notice": retried_notice(&q),
        }),
    )
    .await
}

/// The retry form: one delivery, or every failed delivery of a webhook.
#[derive(Debug, Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    delivery: Option<i64>,
    #[serde(default)]
    webhook: Option<i64>,
    /// Where to come back to (a local path).
    #[serde(default)]
    back: Option<String>,
}

/// `POST /log/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Form(f): Form<RetryForm>,
) -> Result<Response, WebError> {
    let which = Replay {
        delivery_id: f.delivery,
        webhook_id: if f.delivery.is_some() {
            None
        } else {
            f.webhook
        },
        failed_only: f.delivery.is_none(),
        ..Replay::default()
    };
    let store = state.store.clone();
    let n = tokio::task::spawn_blocking(move || ops::replay(&store, &which))
        .await
        .map_err(WebError::internal)??
        .len();
    state.deliver_wake.notify_one();
    let back = match super::session::local_path(f.back.as_deref()) {
        b if b.starts_with("/log") => b.to_owned(),
        _ => "/log".to_owned(),
    };
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}notice=retried&n={n}")).into_response())
}

/// `GET /log/stream`: server-sent events; an `entries` event (data: the
/// newest id) whenever new log entries were written. The stream ends when
/// its session does (logout, expiry, password change) or herald stops.
pub async fn stream(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, WebError> {
    // From the newest entry the page showed: one written between the page
    // and this stream is announced at once, not missed.
    let start = match q.after {
        Some(id) => id,
        None => state.store.run(|s| s.last_log_id()).await?,
    };
    let watch = Watch {
        state,
        digest: session.digest,
        last: start,
    };
    let events = futures_util::stream::unfold(watch, |mut w| async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(STREAM_POLL) => {}
                _ = w.state.shutdown.cancelled() => return None,
            }
            let digest = w.digest.clone();
            let polled = w
                .state
                .store
                .run(move |s| Ok((s.session_alive(&digest, now_ms())?, s.last_log_id()?)))
                .await;
            match polled {
                Ok((false, _)) => return None,
                Ok((true, id)) if id != w.last => {
                    w.last = id;
                    let ev = SseEvent::default().event("entries").data(id.to_string());
                    return Some((Ok::<_, Infallible>(ev), w));
                }
                Ok(_) => {}
                // The page keeps what it has; the next poll tries again.
                Err(e) => tracing::warn!(error = %e, "event log stream: cannot read the log"),
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `?after=ID` of the live stream: the newest entry the page has.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    after: Option<i64>,
}

/// What the live stream carries from one poll to the next.
struct Watch {
    state: AppState,
    digest: String,
    last: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_a_search_is_a_uuid_or_a_ticket() {
        let q = LogQuery {
            q: "5D1F2E3A-0000-4000-8000-000000000001".into(),
            from: "2026-11-23T10:00".into(),
            status: "retrying".into(),
            ..LogQuery::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(
            f.event_uuid.as_deref(),
            Some("5d1f2e3a-0000-4000-8000-000000000001")
        );
        assert_eq!(f.from.as_deref(), Some("2026-11-23T10:00:00.000Z"));
        let q = LogQuery {
            q: "T-42".into(),
            ..LogQuery::default()
        };
        assert_eq!(q.filter().unwrap().ticket_id.as_deref(), Some("T-42"));
        for bad in [
            LogQuery {
                status: "lost".into(),
                ..LogQuery::default()
            },
            LogQuery {
                from: "yesterday".into(),
                ..LogQuery::default()
            },
            LogQuery {
                webhook: "x".into(),
                ..LogQuery::default()
            },
        ] {
            assert!(bad.filter().is_err());
        }
    }
}
