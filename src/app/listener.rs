//! The HTTP listener: HTTP/1.1 connections served by hyper within limits a
//! client on the same box cannot get around. Headers (and the idle time
//! between kept-alive requests) must arrive within `server.header_timeout`,
//! a body within `server.body_timeout`, and at most `server.max_connections`
//! are open at once — sized so that file descriptors remain for deliveries
//! and the database. At the cap, a new connection closes the one idle
//! longest, so idle sockets cannot starve the listener.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::base::config::Config;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// cannot spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often a wait for a free connection slot looks again.
const SLOT_POLL: Duration = Duration::from_millis(50);
/// How long an evicted connection may take to close once asked, unless a
/// request is in progress on it.
const EVICT_GRACE: Duration = Duration::from_secs(1);
/// Evicted connections that may still be closing (holding descriptors
/// beyond the cap) at once.
const CLOSING_AT_ONCE: usize = 8;
/// Most one repeated listener warning is logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The listener's limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Headers of a request, and the idle time before one, must arrive within this.
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers are in.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, with the connection cap fitted into the
    /// process's open-file limit (see [`fit_open_files`]).
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            max_connections: fit_open_files(
                config.max_connections,
                reserved_descriptors(config.delivery_concurrency, config.stream_max_subscribers),
            ),
        }
    }
}

/// File descriptors kept for all but the listener's connections: two per
/// request in flight (its connection and one kept idle for reuse), one per
/// live-stream WebSocket (which leaves the listener's count once upgraded),
/// plus the database, its WAL, the wake socket, the lock file and logs.
fn reserved_descriptors(concurrency: usize, stream_subscribers: usize) -> u64 {
    concurrency as u64 * 2 + stream_subscribers as u64 + 64
}

/// Makes room for `max_connections` in the open-file limit: raises the soft
/// limit towards the hard one when it is too small, and when even that is
/// not enough, lowers the cap (with a warning) so the listener cannot use
/// the descriptors deliveries and the database need.
fn fit_open_files(max_connections: usize, reserved: u64) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let needed = max_connections as u64 + reserved;
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let Some(mut soft) = limit.current else {
        return max_connections;
    };
    if soft < needed {
        let raised = limit.maximum.map_or(needed, |hard| hard.min(needed));
        if raised > soft
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(raised),
                    maximum: limit.maximum,
                },
            )
            .is_ok()
        {
            soft = raised;
        }
    }
    if soft >= needed {
        return max_connections;
    }
    let fitted = soft.saturating_sub(reserved).max(4) as usize;
    tracing::warn!(
        open_file_limit = soft,
        max_connections = fitted,
        "the open-file limit leaves room for only {fitted} of server.max_connections = {max_connections} (it keeps {reserved} for deliveries, live-stream WebSockets and the database); raise the limit (LimitNOFILE in the systemd unit) or lower server.max_connections"
    );
    fitted
}

/// One open connection, as the cap sees it.
struct Slot {
    /// Requests being answered on it now.
    busy: AtomicUsize,
    /// Since when it has had no request in progress.
    idle_since: Mutex<Instant>,
    /// Cancelled to close it at once (evicted, or herald stops).
    close: CancellationToken,
    /// Asked to close to make room; it still counts (and holds its
    /// descriptor) until its task has ended.
    evicted: AtomicBool,
}

/// A request in progress on a connection; dropped when its answer has been
/// sent (or abandoned), which makes the connection idle again.
struct Busy(Arc<Slot>);

impl Busy {
    fn new(slot: Arc<Slot>) -> Busy {
        slot.busy.fetch_add(1, Ordering::SeqCst);
        Busy(slot)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

/// The open connections, within the cap.
struct Connections {
    cap: usize,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    /// Told whenever a connection's task ends and its slot is free.
    closed: tokio::sync::Notify,
    next_id: AtomicU64,
    /// When the last "all busy" warning was logged.
    warned: Mutex<Option<Instant>>,
}

impl Connections {
    /// A slot for a connection just accepted: a free one, or, at the cap,
    /// the slot of the connection idle longest, which is asked to close.
    /// Connections still closing count too, so the descriptors in use stay
    /// within the cap plus [`CLOSING_AT_ONCE`]. With every connection busy
    /// (or closing), waits (accepting nothing meanwhile) until one ends;
    /// `None` when herald stops first.
    async fn admit(self: &Arc<Self>, stop: &CancellationToken) -> Option<Admitted> {
        loop {
            let closed = self.closed.notified();
            let closing = match self.try_admit(stop) {
                Ok(admitted) => return Some(admitted),
                Err(closing) => closing,
            };
            if !closing {
                self.warn_all_busy();
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = closed => {}
                _ = tokio::time::sleep(SLOT_POLL) => {}
            }
        }
    }

    /// Admits now if there is room, evicting the idlest connection at the
    /// cap. Otherwise says whether connections are closing (`Err(true)`)
    /// or every one is busy (`Err(false)`).
    fn try_admit(self: &Arc<Self>, stop: &CancellationToken) -> Result<Admitted, bool> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let evicted = |slot: &Arc<Slot>| slot.evicted.load(Ordering::SeqCst);
        let mut closing = open.values().filter(|s| evicted(s)).count();
        if open.len() - closing >= self.cap && closing < CLOSING_AT_ONCE {
            let idlest = open
                .values()
                .filter(|slot| slot.busy.load(Ordering::SeqCst) == 0 && !evicted(slot))
                .min_by_key(|slot| *slot.idle_since.lock().unwrap_or_else(|p| p.into_inner()));
            if let Some(slot) = idlest {
                tracing::debug!("listener at its cap: closing the connection idle longest");
                slot.evicted.store(true, Ordering::SeqCst);
                slot.close.cancel();
                closing += 1;
            }
        }
        if open.len() - closing >= self.cap || open.len() >= self.cap + CLOSING_AT_ONCE {
            return Err(closing > 0);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            busy: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: stop.child_token(),
            evicted: AtomicBool::new(false),
        });
        open.insert(id, slot.clone());
        Ok(Admitted {
            id,
            slot,
            connections: self.clone(),
        })
    }

    fn warn_all_busy(&self) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *warned = Some(Instant::now());
            tracing::warn!(
                max_connections = self.cap,
                "all listener connections are busy with requests; new connections wait (server.max_connections)"
            );
        }
    }
}

/// An accepted connection's place within the cap; gives it back when
/// dropped, however its task ends.
struct Admitted {
    id: u64,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        self.connections.closed.notify_waiters();
    }
}

/// Why a request's body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_timeout)")]
struct BodyTimeout(Duration);

/// A request body that fails once `limit` has passed since the headers
/// arrived, setting `cut` so the answer closes the connection.
struct DeadlineBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    cut: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.cut.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(BodyTimeout(self.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its connection counted as busy until hyper
/// has taken its last frame (or dropped it). Bytes still in hyper's write
/// buffer then no longer count: a client that reads slowly cannot pin a slot.
struct HeldBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` within `limits` until `stop` is cancelled;
/// then lets requests in progress finish and returns when every connection
/// has closed. Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let connections = Arc::new(Connections {
        cap: limits.max_connections,
        open: Mutex::new(HashMap::new()),
        closed: tokio::sync::Notify::new(),
        next_id: AtomicU64::new(0),
        warned: Mutex::new(None),
    });
    let tasks = TaskTracker::new();
    let mut accept_warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was
                // taken: wait a little rather than spin, and say so rarely.
                if accept_warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    accept_warned = Some(Instant::now());
                    tracing::warn!(error = %e, "the listener cannot accept a connection");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Counted from now; at the cap this closes the idlest connection,
        // or waits for one to end.
        let Some(admitted) = connections.admit(&stop).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stopping = stop.clone();
        tasks.spawn(async move {
            let slot = admitted.slot.clone();
            serve_connection(stream, remote, app, limits, slot, stopping).await;
            drop(admitted);
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// One connection: HTTP/1.1 with the header timer, each request's body
/// under its deadline, until the client closes it, a timer ends it, it is
/// evicted (closed at once) or herald stops (closed after the request in
/// progress).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    app: axum::Router,
    limits: Limits,
    slot: Arc<Slot>,
    stopping: CancellationToken,
) {
    let requests = slot.clone();
    // Cancelled by a handler to drop this connection at once (a live
    // stream whose client stopped reading).
    let hangup = CancellationToken::new();
    let hangup_handle = crate::surfaces::shared::state::Hangup(hangup.clone());
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let busy = Busy::new(requests.clone());
        let cut = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
                limit: limits.body_timeout,
                cut: cut.clone(),
            })
        });
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(remote));
        req.extensions_mut().insert(hangup_handle.clone());
        let app = app.clone();
        async move {
            let Ok(mut resp) = tower::ServiceExt::oneshot(app, req).await;
            if cut.load(Ordering::SeqCst) {
                // The rest of a cut-off body may still come: not on this connection.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            // The connection counts as busy until the answer is sent.
            Ok::<_, std::convert::Infallible>(resp.map(|inner| HeldBody { inner, _busy: busy }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    // With upgrades: the live stream's WebSocket takes the connection over
    // (its task then runs outside this one; `stream.max_subscribers` caps them).
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    let mut evicted: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = hangup.cancelled() => break,
            _ = slot.close.cancelled(), if !draining => {
                // herald stops, or a new connection needs this one's slot:
                // an idle connection closes now, a request in progress
                // (perhaps begun a moment ago) is finished first.
                conn.as_mut().graceful_shutdown();
                draining = true;
                if !stopping.is_cancelled() {
                    evicted = Some(Box::pin(tokio::time::sleep(EVICT_GRACE)));
                }
            }
            _ = async { evicted.as_mut().expect("guarded").await }, if evicted.is_some() => {
                if slot.busy.load(Ordering::SeqCst) == 0 {
                    // Still no request: headers trickling in. Close it.
                    break;
                }
                // A request began meanwhile (a live stream, perhaps): it
                // closes after that request, and counts as an open
                // connection again, not as one closing, so it cannot hold
                // up admission (which looks again every SLOT_POLL).
                evicted = None;
                slot.evicted.store(false, Ordering::SeqCst);
            }
        }
    }
}
