//! What every layer may use: the [`config`], [`event`]s and their checks,
//! [`secret`] values that never print, and the [`live`] settings channel.

pub mod config;
pub mod event;
pub mod live;
pub mod secret;
