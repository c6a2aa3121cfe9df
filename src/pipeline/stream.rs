//! The live stream's hub: the router publishes every event it routes, in
//! queue order, on one bounded broadcast channel; each subscriber (a
//! WebSocket or SSE client of `GET /api/v1/stream`) reads it through a
//! [`Feed`] that first replays stored events after its `since` position,
//! then goes live without a gap, and keeps only what its subscription
//! selects.
//!
//! Memory stays bounded whatever the subscribers do: the channel holds at
//! most `stream.buffer` events for all of them; a subscriber that falls that
//! far behind is [`Ended::TooSlow`] and told where to resume.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use crate::base::event::Event;
use crate::base::subscription::Subscription;
use crate::store::Store;

/// Stored events read per replay page.
const REPLAY_PAGE: usize = 256;

/// One routed event as subscribers receive it; its message (and its SSE
/// chunk) is written once and shared, however many subscribers send it.
/// Held as the WebSocket's and the body's own byte types, so sending it is
/// a reference count, not a copy.
#[derive(Debug)]
pub struct Published {
    /// The event, its queue id the stream position.
    pub event: Arc<Event>,
    message: OnceLock<Utf8Bytes>,
    sse: OnceLock<Bytes>,
}

impl Published {
    /// Wraps a routed event.
    pub fn new(event: Arc<Event>) -> Published {
        Published {
            event,
            message: OnceLock::new(),
            sse: OnceLock::new(),
        }
    }

    /// The message: `{"id", "uuid", "type", "created_at", "ticket_id", "data"}`.
    pub fn message(&self) -> &Utf8Bytes {
        self.message.get_or_init(|| {
            let e = &self.event;
            Utf8Bytes::from(
                serde_json::json!({
                    "id": e.id,
                    "uuid": e.uuid,
                    "type": e.kind,
                    "created_at": e.created_at,
                    "ticket_id": e.ticket_id,
                    "data": e.data,
                })
                .to_string(),
            )
        })
    }

    /// The message as one Server-Sent Event: `id:` the position.
    pub fn sse_chunk(&self) -> &Bytes {
        self.sse.get_or_init(|| {
            Bytes::from(format!(
                "id: {}\ndata: {}\n\n",
                self.event.id,
                self.message().as_str()
            ))
        })
    }
}

/// An open subscriber, as the web admin lists it.
#[derive(Debug, serde::Serialize)]
pub struct SubscriberInfo {
    /// Its number in this process.
    pub id: u64,
    /// The API key's name (`web admin` for a session).
    pub key_name: String,
    /// `websocket` or `sse`.
    pub protocol: &'static str,
    /// When it connected.
    pub connected_at: String,
    /// What it receives now.
    pub subscription: Mutex<Subscription>,
    /// Events sent to it.
    pub sent: AtomicU64,
}

/// Why the stream refuses a subscriber.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `stream.max_subscribers` are open.
    #[error("{0} live-stream subscribers are open (stream.max_subscribers); try again later")]
    Full(usize),
    /// SSE subscribers hold half the listener's connections already.
    #[error(
        "{0} SSE subscribers are open, half of server.max_connections; try again later, or use the WebSocket"
    )]
    SseFull(usize),
}

/// The hub every subscriber joins; cheap to share.
pub struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
    buffer: usize,
    max_subscribers: usize,
    /// SSE subscribers keep a listener connection busy: at most this many.
    max_sse: usize,
    open: Mutex<HashMap<u64, Arc<SubscriberInfo>>>,
    next_id: AtomicU64,
    /// The queue position of the last event published: where a subscriber
    /// without `since` starts.
    last: AtomicI64,
}

impl Hub {
    /// A hub whose subscribers may fall `buffer` events behind, with at
    /// most `max_subscribers` open at once, `max_sse` of them SSE.
    pub fn new(buffer: usize, max_subscribers: usize, max_sse: usize) -> Hub {
        let buffer = buffer.max(1);
        Hub {
            tx: broadcast::Sender::new(buffer),
            buffer,
            max_subscribers,
            max_sse,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            last: AtomicI64::new(0),
        }
    }

    /// Publishes routed events, in queue order; nothing when no one listens.
    pub fn publish(&self, events: &[Arc<Event>]) {
        if self.tx.receiver_count() > 0 {
            for e in events {
                let _ = self.tx.send(Arc::new(Published::new(e.clone())));
            }
        }
        // A subscriber without `since` starts from here, and reads the
        // store after it first: an event sent just before it subscribed is
        // committed, so the read finds it.
        if let Some(e) = events.last() {
            self.last.fetch_max(e.id, Ordering::SeqCst);
        }
    }

    /// Registers a subscriber and starts its feed after position `since`
    /// (`None`: from now on). The caller checked the subscription against
    /// its key.
    pub fn join(
        self: &Arc<Self>,
        store: Store,
        key_name: &str,
        protocol: &'static str,
        subscription: Subscription,
        since: Option<i64>,
    ) -> Result<Feed, JoinError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.max_subscribers {
            return Err(JoinError::Full(self.max_subscribers));
        }
        if protocol == "sse"
            && open.values().filter(|s| s.protocol == "sse").count() >= self.max_sse
        {
            return Err(JoinError::SseFull(self.max_sse));
        }
        let now = self.last.load(Ordering::SeqCst);
        // Subscribed before the replay reads: whatever is routed meanwhile
        // is in the channel, and read twice at most (dropped by position).
        let rx = self.tx.subscribe();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(SubscriberInfo {
            id,
            key_name: key_name.to_owned(),
            protocol,
            connected_at: crate::base::event::now_rfc3339(),
            subscription: Mutex::new(subscription),
            sent: AtomicU64::new(0),
        });
        open.insert(id, info.clone());
        Ok(Feed {
            hub: self.clone(),
            info,
            rx,
            store,
            position: since.unwrap_or(now),
            // Also without `since`: events published between reading `now`
            // and subscribing are in the store, not the channel.
            replaying: true,
            replayed: VecDeque::new(),
        })
    }

    /// The open subscribers, oldest first.
    pub fn subscribers(&self) -> Vec<Arc<SubscriberInfo>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = open.values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// How many events a subscriber may fall behind.
    pub fn buffer(&self) -> usize {
        self.buffer
    }
}

/// How a feed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The subscriber fell more than `stream.buffer` events behind; it may
    /// resume after `position`, the last event it was given.
    TooSlow { position: i64 },
    /// The replay could not be read.
    Storage(String),
}

impl Ended {
    /// The reason, for a close frame or an SSE comment.
    pub fn reason(&self, buffer: usize) -> String {
        match self {
            Ended::TooSlow { position } => format!(
                "too slow: fell more than {buffer} events behind; resume with since={position}"
            ),
            Ended::Storage(e) => format!("cannot read stored events: {e}"),
        }
    }
}

/// One subscriber's events: the stored ones after its `since`, then the
/// live ones, each once, in queue order, those its subscription selects.
/// Dropping it removes the subscriber.
pub struct Feed {
    hub: Arc<Hub>,
    info: Arc<SubscriberInfo>,
    rx: broadcast::Receiver<Arc<Published>>,
    store: Store,
    /// The last queue position given out (or passed over).
    position: i64,
    replaying: bool,
    replayed: VecDeque<Arc<Published>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.hub
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.info.id);
    }
}

impl Feed {
    /// The subscriber as listed.
    pub fn info(&self) -> &Arc<SubscriberInfo> {
        &self.info
    }

    /// The position of the last event given out.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// Replaces what the subscriber receives (from the next event on).
    pub fn resubscribe(&self, subscription: Subscription) {
        *self
            .info
            .subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = subscription;
    }

    /// Whether the subscriber has fallen so far behind that the channel
    /// is about to pass it by (checked while a send to it is stuck).
    pub fn behind(&self) -> bool {
        self.rx.len() >= self.hub.buffer
    }

    fn selects(&self, event: &Event) -> bool {
        self.info
            .subscription
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .selects(event)
    }

    /// The next event for this subscriber.
    pub async fn next(&mut self) -> Result<Arc<Published>, Ended> {
        loop {
            if let Some(p) = self.try_next()? {
                return Ok(p);
            }
            if self.replaying {
                self.replay_page().await?;
                continue;
            }
            match self.rx.recv().await {
                Ok(p) => {
                    if let Some(p) = self.offer(p) {
                        return Ok(p);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(self.too_slow()),
                // The hub lives as long as the feeds that hold it.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// The next event if one is ready now (none while the replay needs
    /// another page): what a write can take along with the one before.
    pub fn try_next(&mut self) -> Result<Option<Arc<Published>>, Ended> {
        loop {
            let p = match self.replayed.pop_front() {
                Some(p) => p,
                None if self.replaying => return Ok(None),
                None => match self.rx.try_recv() {
                    Ok(p) => p,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => return Err(self.too_slow()),
                    Err(_) => return Ok(None),
                },
            };
            if let Some(p) = self.offer(p) {
                return Ok(Some(p));
            }
        }
    }

    /// Gives `p` out if the subscriber has not had it and selects it;
    /// otherwise passes over it (the position moves past it).
    fn offer(&mut self, p: Arc<Published>) -> Option<Arc<Published>> {
        if p.event.id <= self.position {
            return None; // replayed already
        }
        if !self.selects(&p.event) {
            self.position = p.event.id;
            return None;
        }
        self.position = p.event.id;
        self.info.sent.fetch_add(1, Ordering::Relaxed);
        Some(p)
    }

    fn too_slow(&self) -> Ended {
        Ended::TooSlow {
            position: self.position,
        }
    }

    /// Reads the next page of stored events; a short page ends the replay.
    async fn replay_page(&mut self) -> Result<(), Ended> {
        let after = self.position;
        let page = self
            .store
            .run(move |s| s.routed_events_after(after, REPLAY_PAGE))
            .await
            .map_err(|e| Ended::Storage(e.to_string()))?;
        if page.read < REPLAY_PAGE {
            self.replaying = false;
        }
        // A page of rows that no longer parse is passed over, not the end.
        if page.events.is_empty()
            && let Some(last) = page.last
        {
            self.position = self.position.max(last);
        }
        // Filtered as they are given out: a subscription changed meanwhile
        // applies, and the position only passes what was passed over.
        self.replayed.extend(
            page.events
                .into_iter()
                .map(|e| Arc::new(Published::new(Arc::new(e)))),
        );
        Ok(())
    }
}
