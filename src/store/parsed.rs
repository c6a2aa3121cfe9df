//! Events the router has already parsed, kept for the claims that send
//! them, so an event's JSON is parsed once between the queue and the
//! rendered request (and never on the writer thread).
//!
//! Bounded: when full, newly routed events are not kept and their claims
//! parse them again (a backlog; the oldest events, which are sent first,
//! stay). An entry is dropped when its last delivery has been claimed, or
//! when it has waited [`STALE`] (its webhook is paused, or was deleted).
//! A row edited after routing is sent as it was routed while it is kept
//! here; an edit that makes it unreadable is found by a claim after that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::base::event::Event;

/// Most events kept (about 2–4 KiB each for the appliance's events).
const CAPACITY: usize = 1024;
/// Largest event data (JSON text) kept; larger events are parsed at their
/// claim, so the cache stays small whatever producers insert.
pub(super) const MAX_DATA_BYTES: usize = 64 * 1024;
/// An entry older than this is dropped (looked for at most once a second).
const STALE: Duration = Duration::from_secs(10);

/// Entries by event id, at most [`CAPACITY`], each dropped once it has
/// waited [`STALE`]: the shape both caches here share.
struct Shelf<V> {
    by_id: HashMap<i64, (V, Instant)>,
    pruned: Option<Instant>,
}

impl<V> Default for Shelf<V> {
    fn default() -> Self {
        Shelf {
            by_id: HashMap::new(),
            pruned: None,
        }
    }
}

impl<V> Shelf<V> {
    /// Puts `value` under `id` if there is room (after dropping stale
    /// entries, looked for at most once a second, full or not: when a
    /// backlog keeps a shelf full, pruning on every call cost more than
    /// parsing again).
    fn put(&mut self, id: i64, value: V) {
        let now = Instant::now();
        if self
            .pruned
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            self.pruned = Some(now);
            self.by_id
                .retain(|_, (_, at)| now.duration_since(*at) < STALE);
        }
        if self.by_id.len() < CAPACITY {
            self.by_id.insert(id, (value, now));
        }
    }
}

/// A routed event and the claims still to come: one per delivery the
/// router created.
struct Routed {
    event: Arc<Event>,
    claims_left: usize,
}

/// The cache. Shared by every clone of a [`super::Store`].
#[derive(Default)]
pub(super) struct ParsedEvents {
    entries: Mutex<Shelf<Routed>>,
}

impl ParsedEvents {
    /// Keeps `event` for its `deliveries` claims, if there is room.
    pub(super) fn keep(&self, event: Arc<Event>, deliveries: usize) {
        if deliveries == 0 {
            return;
        }
        let id = event.id;
        self.lock().put(
            id,
            Routed {
                event,
                claims_left: deliveries,
            },
        );
    }

    /// The parsed event `id`, if kept; counts one claim of it.
    pub(super) fn take(&self, id: i64) -> Option<Arc<Event>> {
        let mut entries = self.lock();
        let (entry, _) = entries.by_id.get_mut(&id)?;
        entry.claims_left -= 1;
        let event = entry.event.clone();
        if entry.claims_left == 0 {
            entries.by_id.remove(&id);
        }
        Some(event)
    }

    /// How many events are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shelf<Routed>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Events the API has just queued, with their data parsed, for the router
/// (so an API event is not parsed again between its request and its
/// routing). Keyed by queue id; an entry is used only while the row still
/// holds the very text it was given (a row edited meanwhile is parsed from
/// the row). Bounded like [`ParsedEvents`]: when full, events are parsed
/// by the router as any other.
#[derive(Default)]
pub(super) struct Ingested {
    entries: Mutex<Shelf<(String, Map<String, Value>)>>,
}

impl Ingested {
    /// Keeps the parsed `data` of queued event `id`, stored as `text`.
    pub(super) fn keep(&self, id: i64, text: String, data: Map<String, Value>) {
        if text.len() <= MAX_DATA_BYTES {
            self.lock().put(id, (text, data));
        }
    }

    /// The parsed data of queued event `id`, if kept and `text` is still
    /// what it was stored as; forgets it either way.
    pub(super) fn take(&self, id: i64, text: &str) -> Option<Map<String, Value>> {
        let ((kept, data), _) = self.lock().by_id.remove(&id)?;
        (kept == text).then_some(data)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shelf<(String, Map<String, Value>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> Arc<Event> {
        Arc::new(Event {
            id,
            uuid: format!("u{id}"),
            kind: "ticket.login".into(),
            created_at: "2026-12-04T00:00:00Z".into(),
            ticket_id: None,
            data: Default::default(),
        })
    }

    #[test]
    fn an_event_is_kept_for_each_of_its_claims_then_dropped() {
        let p = ParsedEvents::default();
        p.keep(event(1), 2);
        assert_eq!(p.take(1).unwrap().uuid, "u1");
        assert_eq!(p.take(1).unwrap().uuid, "u1");
        assert!(p.take(1).is_none());
        assert_eq!(p.len(), 0);
        p.keep(event(2), 0);
        assert!(p.take(2).is_none());
    }

    #[test]
    fn a_full_cache_keeps_what_it_has() {
        let p = ParsedEvents::default();
        for id in 0..CAPACITY as i64 + 10 {
            p.keep(event(id), 1);
        }
        assert_eq!(p.len(), CAPACITY);
        assert!(p.take(0).is_some(), "the oldest stays");
        assert!(
            p.take(CAPACITY as i64 + 5).is_none(),
            "the newest was not kept"
        );
    }

    #[test]
    fn an_ingested_event_is_handed_over_once_and_only_as_stored() {
        let i = Ingested::default();
        let mut data = Map::new();
        data.insert("a".into(), 1.into());
        i.keep(1, r#"{"a":1}"#.into(), data.clone());
        assert_eq!(i.take(1, r#"{"a":1}"#), Some(data.clone()));
        assert_eq!(i.take(1, r#"{"a":1}"#), None, "handed over once");
        i.keep(2, r#"{"a":1}"#.into(), data);
        assert_eq!(
            i.take(2, r#"{"a":2}"#),
            None,
            "the row was edited: parse it"
        );
    }
}
