//! TODO

#![allow(unused_imports)]
use super::Postgres;
use crate::store::*;
use std::collections::HashMap;
use std::sync::Arc;
use serde_json::{Map, Value};
use crate::base::event::ValidEvent;
use crate::base::subscription::Subscription;
use crate::engines::access::Scope;
use crate::spec::webhook::{Webhook, WebhookSpec};

impl Postgres {
    /// Appends a checked event to the queue. A uuid already queued is refused
    /// with [`Error::Duplicate`].
    /// Refused with [`Error::Storage`] while free space is below the
    /// watermark: the space left is kept for deliveries and their log.
    pub(in crate::store) fn insert_event(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        let _ = (e, source);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// [`Store::insert_event`] for async callers (the API): awaits the
    /// commit without holding a thread.
    pub(in crate::store) async fn insert_event_async(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        let _ = (e, source);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// The stored event with this uuid, while the cleanup has not removed it.
    pub(in crate::store) fn event_by_uuid(&self, uuid: &str) -> Result<Option<StoredEvent>, Error> {
        let _ = (uuid);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Number of events waiting to be routed.
    pub(in crate::store) fn queue_depth(&self) -> Result<i64, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Routes up to `limit` queued events: for each, `decide` returns the
    /// webhooks to deliver to with the event's parsed data (given the data
    /// parsed when the API queued it, if the row still holds what it was
    /// given), or why the event is invalid. The rows are read and decided on a read connection, off
    /// the writer; one write then creates the deliveries and marks the
    /// events, each only if it is still queued, so an event is routed
    /// exactly once even beside another router (a second `herald serve`).
    /// Routed events are kept parsed for the claims that send them.
    pub(in crate::store) fn route_batch(&self,
        limit: usize,
        mut decide: impl FnMut(
            &QueuedEvent,
            Option<Map<String, Value>>,
            &[WebhookRoute],
        ) -> Result<(Vec<i64>, Map<String, Value>), String>) -> Result<RouteStats, Error> {
        let _ = (limit, &mut decide);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Up to `limit` routed rows after queue position `after`, in queue
    /// order: a live-stream subscriber's replay (`since`). Rows whose data
    /// no longer parses (edited by hand since) are left out of `events`
    /// but counted in `read` and `last`, so a reader passes over them.
    pub(in crate::store) fn routed_events_after(&self, after: i64, limit: usize) -> Result<RoutedPage, Error> {
        let _ = (after, limit);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Deletes up to `limit` events that were routed or found invalid before
    /// `cutoff` and have no delivery still pending. Returns how many.
    pub(in crate::store) fn delete_finished_events_before(&self, cutoff: &str, limit: usize) -> Result<usize, Error> {
        let _ = (cutoff, limit);
        Err(Error::Task("postgres: not written yet".into()))
    }
}
