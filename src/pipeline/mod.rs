//! The running pipeline: the [`router`] turns queued events into deliveries,
//! the [`deliver`]er sends them, the [`health`] monitor pauses and alerts,
//! [`cleanup`] keeps the log within retention, [`wake`] lets another
//! process nudge the router, and the [`stream`] hub hands every routed
//! event to live-stream subscribers; the delivery loop's [`heartbeat`]
//! tells systemd's watchdog it is alive.

pub mod cleanup;
pub mod deliver;
pub mod health;
pub mod heartbeat;
pub mod router;
pub mod stream;
pub mod wake;
