//! What every layer may use: the [`config`], [`event`]s and their checks,
//! [`secret`] values that never print, the [`live`] settings channel, and
//! [`repeats`], which keeps a repeated log line from flooding the log, and the
//! checked e-mail alert settings ([`smtp`]), and what a live-stream
//! subscriber receives ([`subscription`]), and the names of herald's
//! Prometheus [`metrics`].

pub mod config;
pub mod event;
pub mod live;
pub mod metrics;
pub mod repeats;
pub mod secret;
pub mod smtp;
pub mod subscription;
