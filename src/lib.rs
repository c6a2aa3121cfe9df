//! herald: a templated event router. Reads events from a local SQLite queue
//! and delivers each, rendered by a webhook's templates, to every webhook
//! that subscribes to its type; logs every attempt.
//!
//! # Layout
//! The data path, one way: queue ([`store`]) → [`pipeline::router`] →
//! deliveries ([`store`]) → [`pipeline::deliver`] (rendered by
//! [`engines::render`], authenticated by [`engines::auth`], signed by
//! [`engines::sign`], sent by [`engines::http`]) → endpoint → event log
//! ([`store`]). Admins reach it through the [`surfaces`]; [`app`] wires it.
//!
//! The crate is in layers; each imports only from the layers below it, and
//! no two files import each other, directly or round about. `.ci/run` checks
//! both with `.ci/check-layers.py`, which reads this table (top layer first):
//!
//! ```text
//! wiring:   app
//! surfaces: surfaces surfaces::api surfaces::web surfaces::cli
//! shared:   surfaces::shared
//! pipeline: pipeline
//! store:    store
//! engines:  engines
//! spec:     spec
//! base:     base
//! ```
//!
//! - **base** — [`base::config`] (defaults, file, `HERALD_*` env →
//!   [`base::config::Config`]), [`base::event`] (events, their checks, type
//!   patterns, stored times), [`base::secret`] (values that never print),
//!   [`base::live`] (settings the web admin changes while herald runs).
//! - **spec** — what an admin configures, validated field by field with no
//!   engine, client or store: [`spec::webhook`], [`spec::auth`],
//!   [`spec::signing`], [`spec::retry`].
//! - **engines** — pure or self-contained machinery over the spec:
//!   [`engines::render`] (templates, escaping), [`engines::auth`] (credentials
//!   on the wire, the token flow), [`engines::sign`], [`engines::retry`]
//!   (the decision after a failure), [`engines::http`] (the one HTTP client,
//!   which the token flow and the deliverer both use), [`engines::mask`],
//!   [`engines::access`] (password and key hashing), [`engines::check`] (the
//!   whole save-time check).
//! - **store** — [`store`]: the only module that names a database crate;
//!   operations named for what herald does, errors in its own words.
//! - **pipeline** — [`pipeline::router`], [`pipeline::deliver`],
//!   [`pipeline::health`], [`pipeline::cleanup`], [`pipeline::wake`].
//! - **shared** — [`surfaces::shared`]: the operations every surface offers
//!   ([`surfaces::shared::ops`]), the listener's [`surfaces::shared::AppState`],
//!   the API's error shape, the session lookup, the login limiter. None of
//!   the surfaces owns it.
//! - **surfaces** — [`surfaces::api`] (REST, ingest, `/healthz`),
//!   [`surfaces::web`] (the web admin), [`surfaces::cli`] (every subcommand
//!   but `serve`).
//! - **wiring** — [`app`] (`herald serve`: everything above, one shutdown
//!   signal) and `main.rs` (parses the command line, calls in here).
#![forbid(unsafe_code)]

pub mod app;
pub mod base;
pub mod engines;
pub mod pipeline;
pub mod spec;
pub mod store;
pub mod surfaces;
