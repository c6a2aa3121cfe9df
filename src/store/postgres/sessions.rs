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
    /// Stores a new session that ends at `expires_at` (ms) unless used.
    pub(in crate::store) fn insert_session(&self, digest: &str, csrf: &str, now: i64, expires_at: i64) -> Result<(), Error> {
        let _ = (digest, csrf, now, expires_at);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// The live session with this digest, its expiry pushed to
    /// `min(now + idle, created_at + max_age)`; `None` when it is unknown or
    /// over.
    pub(in crate::store) fn touch_session(&self, digest: &str, now: i64, idle_ms: i64, max_age_ms: i64) -> Result<Option<Session>, Error> {
        let _ = (digest, now, idle_ms, max_age_ms);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// The live session with this digest, read without extending it: for
    /// when the database cannot be written, so the admin can still read
    /// the pages (and the banner saying why).
    pub(in crate::store) fn live_session(&self, digest: &str, now: i64) -> Result<Option<Session>, Error> {
        let _ = (digest, now);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Is the session with this digest still live (without extending it)?
    pub(in crate::store) fn session_alive(&self, digest: &str, now: i64) -> Result<bool, Error> {
        let _ = (digest, now);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Ends one session (log out).
    pub(in crate::store) fn delete_session(&self, digest: &str) -> Result<(), Error> {
        let _ = (digest);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Ends every session but `keep` (after a password change).
    pub(in crate::store) fn delete_other_sessions(&self, keep: Option<&str>) -> Result<usize, Error> {
        let _ = (keep);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// The settings saved in the web admin, `(key, value as typed)`.
    pub(in crate::store) fn ui_settings(&self) -> Result<Vec<(String, String)>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Replaces the web-saved settings with `values` in one transaction:
    /// keys not in `values` go back to the config file's value.
    pub(in crate::store) fn replace_ui_settings(&self, values: &[(String, String)]) -> Result<(), Error> {
        let _ = values;
        Err(Error::Task("postgres: not written yet".into()))
    }
}
