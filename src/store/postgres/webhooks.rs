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
    /// Stores a new, already checked webhook.
    pub(in crate::store) fn insert_webhook(&self, spec: &WebhookSpec) -> Result<Webhook, Error> {
        let _ = (spec);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Replaces every setting of webhook `id` with an already checked spec,
    /// if it is still at version `seen_updated_at` (else [`Error::Conflict`]:
    /// someone changed it meanwhile, and their change must not be lost).
    pub(in crate::store) fn update_webhook(&self, id: i64, seen_updated_at: &str, spec: &WebhookSpec) -> Result<Webhook, Error> {
        let _ = (id, seen_updated_at, spec);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Enables or disables webhook `id` without touching its other settings.
    pub(in crate::store) fn set_webhook_enabled(&self, id: i64, enabled: bool) -> Result<Webhook, Error> {
        let _ = (id, enabled);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Reads webhook `id`.
    pub(in crate::store) fn webhook(&self, id: i64) -> Result<Webhook, Error> {
        let _ = (id);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// All webhooks, by id.
    pub(in crate::store) fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Deletes webhook `id` and its deliveries (its log entries stay until cleanup).
    pub(in crate::store) fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        let _ = (id);
        Err(Error::Task("postgres: not written yet".into()))
    }
}
