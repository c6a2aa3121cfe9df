//! The state every listener handler may use: cheap handles, built once at
//! start by [`crate::app`] and shared by the REST API and the web pages.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::store::Store;

/// What every handler may use: cheap handles, built once at start.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Wakes the router after an ingest.
    pub wake: Arc<Notify>,
    /// Wakes the deliverer after a replay or resume.
    pub deliver_wake: Arc<Notify>,
    /// Sends test events.
    pub deliverer: crate::pipeline::deliver::Deliverer,
    /// The configuration as loaded (file and environment over the
    /// defaults), without the web admin's saved settings.
    pub config: Arc<crate::base::config::Config>,
    /// The settings the running loops read; the settings page replaces them.
    pub live: Arc<tokio::sync::watch::Sender<crate::base::live::Live>>,
    /// The live API keys, in memory.
    pub keys: Arc<super::keys::KeyCache>,
    /// Failed password guesses per client address or known device.
    pub logins: Arc<super::limiter::LoginLimiter>,
    /// Cancelled at shutdown: long-lived answers (the event log's live
    /// stream) end then instead of holding the shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The live stream's hub (`GET /api/v1/stream`).
    pub hub: Arc<crate::pipeline::stream::Hub>,
    /// What `GET /metrics` renders; `None` when no recorder could be
    /// installed (one per process).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Put by the listener on every request: cancelling it drops the request's
/// connection at once, without waiting for the client. A streamed answer
/// uses it for a client that stopped reading, whose connection would
/// otherwise stay open with a full send buffer.
#[derive(Debug, Clone)]
pub struct Hangup(pub tokio_util::sync::CancellationToken);
