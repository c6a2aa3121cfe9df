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
    /// The admin password's hash, if one was set.
    pub(in crate::store) fn admin_password_hash(&self) -> Result<Option<String>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Stores the admin password's hash. With `only_if_unset`, keeps one
    /// already there and returns false (two starts racing for the first
    /// password: the first wins).
    pub(in crate::store) fn set_admin_password_hash(&self, hash: &str, only_if_unset: bool) -> Result<bool, Error> {
        let _ = (hash, only_if_unset);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Stores a new API key by its digest, with a stream key's `limits`.
    pub(in crate::store) fn insert_api_key(&self, name: &str, hint: &str, digest: &str, scope: Scope, limits: Option<&Subscription>) -> Result<ApiKey, Error> {
        let _ = (name, hint, digest, scope, limits);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// All API keys, revoked ones included, by id.
    pub(in crate::store) fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// API key `id` as listed.
    pub(in crate::store) fn api_key(&self, id: i64) -> Result<ApiKey, Error> {
        let _ = (id);
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Every live (not revoked) key, for the listener's in-memory view of
    /// the keys. A key whose scope text is unknown (edited by hand) is left
    /// out: refused.
    pub(in crate::store) fn live_api_keys(&self) -> Result<Vec<LiveKey>, Error> {
        Err(Error::Task("postgres: not written yet".into()))
    }

    /// Revokes key `id` (idempotent). [`Error::NotFound`] when there is none.
    pub(in crate::store) fn revoke_api_key(&self, id: i64) -> Result<ApiKey, Error> {
        let _ = (id);
        Err(Error::Task("postgres: not written yet".into()))
    }
}
