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
    /// Deliveries not yet finished.
    pub(in crate::store) fn pending_deliveries(&self) -> Result<i64, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// When the oldest pending delivery was made (`None`: none pending).
    /// Read per webhook through its pending index, not by scanning every
    /// delivery.
    pub(in crate::store) fn oldest_pending_delivery_at(&self) -> Result<Option<String>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Puts finished deliveries back in the queue, due now, for a new round
    /// of tries: each resend is a new attempt in the log with the same event
    /// uuid. Deliveries still pending are left as they are. Returns how many.
    pub(in crate::store) fn replay(&self, which: &Replay) -> Result<Vec<i64>, Error> {
        let _ = (which);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// How the deliveries `ids` stand now: `(pending, delivered, failed)`
    /// (for `herald retry --wait`, which follows what it queued).
    pub(in crate::store) fn delivery_states(&self, ids: &[i64]) -> Result<(usize, usize, usize), Error> {
        let _ = (ids);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Deliveries, newest first, for listings (`herald deliveries`, the API).
    pub(in crate::store) fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, Error> {
        let _ = (f);
        Err(Error::Task("postgres: not written yet".into()))
    }
}
