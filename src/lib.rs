//! herald: a templated event router. Reads events from a local SQLite queue
//! and delivers each, rendered by a webhook's templates, to every webhook
//! that subscribes to its type; logs every attempt.
//!
//! # Layout
//! In data-path order:
//! - [`config`]: `config/herald.toml` defaults, the admin's file, `HERALD_*` env → [`config::Config`].
//! - [`event`]: events, their checks, and event-type patterns (`ticket.*`).
//! - [`store`]: SQLite (queue, webhooks, deliveries, log); the only module with SQL.
//! - [`access`]: the admin password and API keys: who may use the listener.
//! - [`admin`]: queueing events and managing webhooks, shared by CLI and API.
//! - [`wake`]: lets `herald emit` wake a running server at once.
//! - [`router`]: the polling loop turning queued events into deliveries.
//! - [`webhook`]: a webhook's settings and their validation.
//! - [`render`]: templates with `<< >>` placeholders and format-aware escaping.
//! - [`auth`]: outgoing authentication, fetched tokens and their cache, secrets.
//! - [`sign`]: Standard Webhooks and plain HMAC signatures.
//! - [`retry`]: retry policies and the decision after a failed attempt.
//! - [`deliver`]: the HTTP client, the success rule, masking, the worker loop.
//! - [`health`]: pause after long outages, alerts, recovery notices.
//! - [`cleanup`]: the cron-scheduled retention job.
//! - [`live`]: settings changed in the web admin while herald runs.
//! - [`server`]: axum listener: ingest, REST API, `/healthz`.
//! - [`web`]: the web admin: login, sessions, pages, static assets.
//! - [`app`]: `herald serve`, wiring all of the above with one shutdown signal.
//! - [`cli`]: the other subcommands.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod app;
pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod event;
pub mod health;
pub mod live;
pub mod render;
pub mod retry;
pub mod router;
pub mod server;
pub mod sign;
pub mod store;
pub mod wake;
pub mod web;
pub mod webhook;
