//! `GET /api/v1/stream`: the live event stream for outside apps, as a
//! WebSocket (RFC 6455) or, with `Accept: text/event-stream`, Server-Sent
//! Events. Subscribers choose `?events=` patterns and `?match=FIELD=VALUE`
//! filters within what their key allows, resume with `?since=` (or SSE's
//! `Last-Event-ID`), and are disconnected with a reason when they fall too
//! far behind, their key is revoked, or herald stops.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::base::subscription::{FieldMatch, Subscription};
use crate::pipeline::stream::{Ended, Feed, JoinError, Published};
use crate::surfaces::shared::keys::{Caller, KeyCache};
use crate::surfaces::shared::state::Hangup;
use crate::surfaces::shared::{ApiError, AppState};

/// How often an idle subscriber is pinged (a WebSocket ping, an SSE comment).
const PING_EVERY: Duration = Duration::from_secs(15);
/// How often a send that does not finish looks whether its subscriber has
/// meanwhile fallen too far behind.
const STUCK_CHECK: Duration = Duration::from_millis(100);
/// How long a closing message may take to reach a subscriber.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// SSE chunks between the subscriber's task and its response body.
const SSE_QUEUE: usize = 16;
/// Largest message a WebSocket subscriber may send (a subscribe message).
const MAX_CLIENT_MESSAGE: usize = 16 << 10;
/// Most events written to a subscriber at once (with one flush).
const BATCH: usize = 64;
/// Longest a write to a subscriber may wait on it (a client that stopped
/// reading while few events come, so it does not fall behind): it is then
/// dropped as too slow.
const STUCK_FOR: Duration = Duration::from_secs(30);

/// WebSocket close codes: herald stops; policy (revoked key); too slow (try
/// again later, with `since`); the stored events cannot be read.
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_ERROR: u16 = 1011;
const CLOSE_TRY_AGAIN: u16 = 1013;

/// Why a subscriber's stream ends.
enum Close {
    Stopping,
    Revoked,
    Feed(Ended),
    /// The client went away or its connection failed.
    Gone,
}

impl Close {
    fn code_and_reason(&self, buffer: usize) -> (u16, String) {
        match self {
            Close::Stopping => (CLOSE_GOING_AWAY, "herald is stopping".into()),
            Close::Revoked => (CLOSE_POLICY, "the API key was revoked".into()),
            Close::Feed(e @ Ended::TooSlow { .. }) => (CLOSE_TRY_AGAIN, e.reason(buffer)),
            Close::Feed(e) => (CLOSE_ERROR, e.reason(buffer)),
            Close::Gone => (CLOSE_GOING_AWAY, "the client went away".into()),
        }
    }
}

/// What the subscriber asked for in its query.
struct Asked {
    events: Option<String>,
    matches: Vec<String>,
    since: Option<i64>,
}

fn asked(uri: &Uri, headers: &HeaderMap) -> Result<Asked, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("the query cannot be read: {e}")))?;
    let mut a = Asked {
        events: None,
        matches: Vec::new(),
        since: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "events" => a.events = Some(v),
            "match" => a.matches.push(v),
            "since" => a.since = Some(position(&v, "since")?),
            "api_key" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; the stream takes events, match, since and api_key"
                )));
            }
        }
    }
    if a.since.is_none()
        && let Some(last) = headers.get("last-event-id")
    {
        let text = last.to_str().unwrap_or("");
        a.since = Some(position(text, "Last-Event-ID")?);
    }
    Ok(a)
}

fn position(text: &str, what: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{what} must be a stream position (a whole number >= 0), not {text:?}"
            ))
        })
}

/// The events `caller` may receive, and what it receives when it names no
/// events: a stream key its stored limits; an admin or read key (or the web
/// admin) everything, herald's own `herald.*` events on request.
fn limits_of(caller: &Caller) -> (Subscription, Vec<String>) {
    use crate::engines::access::Scope;
    let all = Subscription {
        events: vec!["*".into(), "herald.*".into()],
        matches: Vec::new(),
    };
    match caller {
        Caller::Key(k) if k.scope == Scope::Stream => {
            let limits = k.limits.clone().unwrap_or_else(Subscription::everything);
            let default = limits.events.clone();
            (limits, default)
        }
        _ => (all, vec!["*".into()]),
    }
}

/// The subscription asked for, within `limits`: 400 when it cannot be
/// read, 403 naming what lies outside the key's limits.
fn subscription(
    events: Vec<String>,
    matches: Vec<FieldMatch>,
    limits: &Subscription,
) -> Result<Subscription, ApiError> {
    let asked = Subscription::new(events, matches).map_err(ApiError::bad_request)?;
    asked
        .within(limits)
        .map_err(|m| ApiError::new(StatusCode::FORBIDDEN, m))
}

/// Whether a browser's `Origin` names the host it connects to.
fn same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// What a subscriber's loop needs beside its feed.
struct Context {
    shutdown: CancellationToken,
    keys: Arc<KeyCache>,
    /// The key's digest (`None`: the web admin's session).
    digest: Option<String>,
    limits: Subscription,
    /// What the subscriber receives when it names no events.
    default_events: Vec<String>,
    buffer: usize,
}

impl Context {
    /// Resolves when the subscriber's key is no longer live.
    async fn revoked(&self, changes: &mut watch::Receiver<u64>) {
        let Some(digest) = &self.digest else {
            return std::future::pending().await;
        };
        loop {
            if self.keys.known(digest).is_none() {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// `GET /api/v1/stream`.
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "stream",
    params(
        ("events" = Option<String>, Query, description = "Event patterns, comma-separated (default: all the key allows)"),
        ("match" = Option<Vec<String>>, Query, description = "FIELD=VALUE filters on event fields and dot paths; repeat for more"),
        ("since" = Option<i64>, Query, description = "Replay stored events after this stream position first"),
        ("Last-Event-ID" = Option<i64>, Header, description = "SSE: as since"),
    ),
    responses(
        (status = 101, description = "WebSocket (Upgrade: websocket): one JSON text message per event; send {\"subscribe\": {...}} to change what arrives"),
        (status = 200, description = "Server-Sent Events (Accept: text/event-stream): `id:` the position, `data:` the event", content_type = "text/event-stream"),
        (status = 400, description = "Neither a WebSocket upgrade nor Accept: text/event-stream, or a parameter cannot be read", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "Events or filters outside the key's limits (named), or a scope that may not stream", body = crate::surfaces::shared::error::Body), (status = 503, description = "stream.max_subscribers reached (or SSE at half of server.max_connections)", body = crate::surfaces::shared::error::Body)
    ),
    security(("bearer" = []), ("api_key_query" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    hangup: Option<Extension<Hangup>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match open(state, caller, hangup, uri, headers, upgrade).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(
    state: AppState,
    caller: Option<Extension<Caller>>,
    hangup: Option<Extension<Hangup>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Some(Extension(caller)) = caller else {
        return Err(ApiError::internal(
            "the API gate let a request through without a caller",
        ));
    };
    if matches!(caller, Caller::Session) && upgrade.is_ok() && !same_origin(&headers) {
        // The session cookie goes with a WebSocket from any page of this
        // host (another port too): only the admin's own pages may use it.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a WebSocket with the web admin's session must come from its own pages (Origin)",
        ));
    }
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if upgrade.is_err() && !sse {
        return Err(ApiError::bad_request(
            "the stream is a WebSocket (an Upgrade: websocket request) or Server-Sent Events (Accept: text/event-stream)",
        ));
    }
    let asked = asked(&uri, &headers)?;
    let (limits, default_events) = limits_of(&caller);
    let events = match &asked.events {
        Some(e) => e.split(',').map(str::to_owned).collect(),
        None => default_events.clone(),
    };
    let matches = asked
        .matches
        .iter()
        .map(|m| FieldMatch::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let subscription = subscription(events, matches, &limits)?;
    let (key_name, digest) = match &caller {
        Caller::Key(k) => (k.name.clone(), Some(k.digest.clone())),
        Caller::Session => ("web admin".to_owned(), None),
    };
    let protocol = if upgrade.is_ok() { "websocket" } else { "sse" };
    let feed = state
        .hub
        .join(
            state.store.clone(),
            &key_name,
            protocol,
            subscription,
            asked.since,
        )
        .map_err(|e| match e {
            JoinError::Full(0) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the live stream is off (stream.max_subscribers = 0)",
            ),
            e => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        })?;
    let ctx = Context {
        shutdown: state.shutdown.clone(),
        keys: state.keys.clone(),
        digest,
        limits,
        default_events,
        buffer: state.hub.buffer(),
    };
    tracing::info!(key = %key_name, protocol, subscription = %feed.info().subscription.lock().unwrap_or_else(|p| p.into_inner()).describe(), "live-stream subscriber connected");
    match upgrade {
        // Subscribers send only small subscribe messages.
        Ok(ws) => Ok(ws
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .on_failed_upgrade(
                |e| tracing::debug!(error = %e, "live-stream WebSocket upgrade failed"),
            )
            .on_upgrade(move |socket| websocket(socket, feed, ctx))),
        Err(_) => Ok(server_sent_events(feed, ctx, hangup.map(|Extension(h)| h))),
    }
}

// ------------------------------------------------------------- WebSocket

/// Serves one WebSocket subscriber until it ends.
async fn websocket(mut socket: WebSocket, mut feed: Feed, ctx: Context) {
    use futures_util::SinkExt;
    let mut changes = ctx.keys.changes();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let close = loop {
        // Every event given out so far was handed to the socket: a
        // subscriber dropped while the next send is stuck resumes after this.
        let resume = feed.position();
        let batch: Vec<Message> = tokio::select! {
            _ = ctx.shutdown.cancelled() => break Close::Stopping,
            _ = ctx.revoked(&mut changes) => break Close::Revoked,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    vec![Message::Text(resubscribe(&feed, &ctx, &text).into())]
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Close::Gone,
                // Pongs need nothing; pings are answered by the socket.
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => vec![Message::Ping(Bytes::new())],
            next = feed.next() => match next {
                Ok(p) => match ready_batch(&mut feed, p) {
                    Ok(events) => events.iter().map(|p| Message::Text(p.message().clone())).collect(),
                    Err(ended) => break Close::Feed(ended),
                },
                Err(ended) => break Close::Feed(ended),
            },
        };
        // Written together, flushed once: under load one write carries
        // many events instead of one system call each.
        let socket = &mut socket;
        let write = async move {
            for m in batch {
                socket.feed(m).await?;
            }
            socket.flush().await
        };
        if let Err(close) = guarded(write, &feed, &ctx, &mut changes, resume).await {
            break close;
        }
    };
    let (code, reason) = close.code_and_reason(ctx.buffer);
    tracing::info!(key = %feed.info().key_name, sent = feed.info().sent.load(std::sync::atomic::Ordering::Relaxed), reason = %reason, "live-stream subscriber disconnected");
    if !matches!(close, Close::Gone) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        // A client that stopped reading does not get it: dropping the
        // socket then closes the connection.
        let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame)))).await;
    }
}

/// `first` and the events ready right after it, up to [`BATCH`].
fn ready_batch(feed: &mut Feed, first: Arc<Published>) -> Result<Vec<Arc<Published>>, Ended> {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match feed.try_next()? {
            Some(p) => batch.push(p),
            None => break,
        }
    }
    Ok(batch)
}

/// Runs a write to the subscriber; while it waits on a client that does
/// not read, ends the subscriber when it falls too far behind (to resume
/// after `resume`, the last event handed over before this write), when the
/// write has waited [`STUCK_FOR`], when its key is revoked, or when herald
/// stops.
async fn guarded<E>(
    write: impl Future<Output = Result<(), E>>,
    feed: &Feed,
    ctx: &Context,
    changes: &mut watch::Receiver<u64>,
    resume: i64,
) -> Result<(), Close> {
    tokio::pin!(write);
    let too_slow = || Close::Feed(Ended::TooSlow { position: resume });
    let deadline = tokio::time::sleep(STUCK_FOR);
    tokio::pin!(deadline);
    let mut check = tokio::time::interval(STUCK_CHECK);
    check.tick().await;
    loop {
        tokio::select! {
            done = &mut write => return done.map_err(|_| Close::Gone),
            _ = check.tick() => {
                if feed.behind() {
                    return Err(too_slow());
                }
            }
            _ = &mut deadline => return Err(too_slow()),
            _ = ctx.shutdown.cancelled() => return Err(Close::Stopping),
            _ = ctx.revoked(changes) => return Err(Close::Revoked),
        }
    }
}

/// Applies a `{"subscribe": {"events": [...], "match": {...}}}` message;
/// the reply says what the subscriber now receives, or why not (the old
/// subscription then stays).
fn resubscribe(feed: &Feed, ctx: &Context, text: &str) -> String {
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(text);
    let result = match parsed.as_ref().ok().and_then(|v| v.get("subscribe")) {
        None => Err(r#"expected {"subscribe": {"events": [...], "match": {...}}}"#.to_owned()),
        Some(sub) => {
            let default = serde_json::json!(ctx.default_events);
            let events = sub
                .get("events")
                .filter(|e| !e.is_null())
                .unwrap_or(&default);
            Subscription::from_json(Some(events), sub.get("match"))
                .and_then(|asked| asked.within(&ctx.limits))
        }
    };
    match result {
        Ok(s) => {
            let reply = serde_json::json!({"subscribed": &s}).to_string();
            feed.resubscribe(s);
            reply
        }
        Err(e) => serde_json::json!({"error": e}).to_string(),
    }
}

// ------------------------------------------------------------------- SSE

/// Answers with an SSE body fed by a task of its own, so a client that
/// stops reading is noticed (the body is then no longer polled) and its
/// connection dropped.
fn server_sent_events(feed: Feed, ctx: Context, hangup: Option<Hangup>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(SSE_QUEUE);
    tokio::spawn(sse_pump(feed, ctx, tx, hangup));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Feeds one SSE subscriber until it ends.
async fn sse_pump(mut feed: Feed, ctx: Context, tx: mpsc::Sender<Bytes>, hangup: Option<Hangup>) {
    let mut changes = ctx.keys.changes();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let close = loop {
        let resume = feed.position();
        let chunk = tokio::select! {
            _ = ctx.shutdown.cancelled() => break Close::Stopping,
            _ = ctx.revoked(&mut changes) => break Close::Revoked,
            _ = tx.closed() => break Close::Gone,
            _ = ping.tick() => Bytes::from_static(b": ping\n\n"),
            next = feed.next() => match next.and_then(|p| ready_batch(&mut feed, p)) {
                Ok(events) if events.len() == 1 => events[0].sse_chunk().clone(),
                Ok(events) => {
                    let mut all = Vec::with_capacity(events.iter().map(|p| p.sse_chunk().len()).sum());
                    for p in &events {
                        all.extend_from_slice(p.sse_chunk());
                    }
                    Bytes::from(all)
                }
                Err(ended) => break Close::Feed(ended),
            },
        };
        let send = async { tx.send(chunk).await.map_err(|_| ()) };
        if let Err(close) = guarded(send, &feed, &ctx, &mut changes, resume).await {
            break close;
        }
    };
    let (_, reason) = close.code_and_reason(ctx.buffer);
    tracing::info!(key = %feed.info().key_name, sent = feed.info().sent.load(std::sync::atomic::Ordering::Relaxed), reason = %reason, "live-stream subscriber disconnected");
    if matches!(close, Close::Gone) {
        return;
    }
    // The reason as a comment, then the end of the body; a client that
    // does not read it in time has its connection dropped.
    let last = Bytes::from(format!(": closed: {reason}\n\n"));
    let delivered = tokio::time::timeout(CLOSE_GRACE, async {
        if tx.send(last).await.is_err() {
            return;
        }
        while tx.capacity() < tx.max_capacity() && !tx.is_closed() {
            tokio::time::sleep(STUCK_CHECK).await;
        }
    })
    .await
    .is_ok();
    if !delivered && let Some(Hangup(h)) = hangup {
        h.cancel();
    }
}
