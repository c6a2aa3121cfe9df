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
    /// Claims due deliveries for up to `free` requests, visiting webhooks
    /// that are enabled and not paused, starting at the `start`-th (so no
    /// webhook is always served last). Each webhook gets at most its
    /// `max_in_flight` minus `in_flight[id]` requests; an ordered webhook
    /// only its oldest pending delivery, and only when nothing of it is in
    /// flight; a batching webhook one request per full batch, or per batch
    /// whose oldest event has waited `max_wait`.
    ///
    /// A read, not a write: claims are kept in memory (see [`super::claims`])
    /// until [`Store::finish_attempt`] settles them, so no request waits for
    /// a commit before it is sent.
    pub(in crate::store) async fn claim_due(&self, free: usize, in_flight: &HashMap<i64, usize>, start: usize) -> Result<ClaimPass, Error> {
        let _ = (free, in_flight, start);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Releases every claim written to the table: run once at start. Claims
    /// live in memory (see [`super::claims`]); rows claimed in the table
    /// come from a version of herald that wrote claims and stopped with
    /// requests in flight. Each such attempt is logged as interrupted and
    /// does not count against the retry policy.
    pub(in crate::store) fn release_claims(&self) -> Result<usize, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Logs the attempts of `delivery_ids` as interrupted (a stop cut them
    /// short past its grace period) and counts them; they stay pending,
    /// their tries unchanged, and are sent again after the next start.
    pub(in crate::store) fn interrupt(&self, delivery_ids: Vec<i64>) -> Result<(), Error> {
        let _ = (delivery_ids);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Records attempts and settles their deliveries, in one write: per
    /// request (one inner list; a batch's events may be at different tries
    /// of their retry policy, so each has its own outcome) the log entries,
    /// the deliveries' new state and the webhook's health. Returns whether a
    /// health changed in a way the monitor must look at (a failure streak
    /// began, or an alerted streak ended). The claims are released once the
    /// write has committed.
    pub(in crate::store) async fn finish_attempts(&self, requests: Arc<Vec<Settled>>) -> Result<bool, Error> {
        let _ = (requests);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Forgets the claims of a request that will not be settled: its
    /// deliveries are gone (the webhook was deleted while it was sent).
    pub(in crate::store) fn release_unsettled(&self, webhook_id: i64, delivery_ids: &[i64]) {
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub(in crate::store) fn fail_unreadable(&self, bad: &Unreadable) -> Result<(), Error> {
        let _ = (bad);
        Err(Error::Task("postgres: not written yet".into()))
    }
}
