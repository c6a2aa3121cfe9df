//! Storage: the event queue, webhooks, deliveries and the event log.
//!
//! [`Store`] is herald's one handle on it, with two backends behind the
//! same operations: SQLite ([`sqlite`], embedded, one router per file; the
//! default) and PostgreSQL ([`postgres`], `database.url`, any number of
//! routers on one database). The only module that knows SQL.
//! Calls block: async code runs them through [`Store::run`].

mod access;
mod backend;
mod claim_pass;
#[cfg(test)]
mod claim_tests;
mod claims;
mod deliveries;
mod error;
mod events;
mod fault;
mod health;
mod hourly;
mod log;
mod parsed;
mod postgres;
mod readers;
#[cfg(test)]
mod routing_tests;
mod sessions;
mod sqlite;
#[cfg(test)]
mod sqlite_tests;
mod webhooks;
mod writer;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use error::{is_duplicate, not_found};

pub use backend::Store;

pub use access::{ApiKey, LiveKey};
pub use deliveries::{
    ClaimPass, Claimed, DeliveryFilter, DeliveryJob, DeliveryRow, INTERRUPTED, Item, Outcome,
    Replay, Settled, Unreadable,
};
pub use error::{DbError, Error, Fault};
pub use events::{
    BySource, QueuedEvent, RouteStats, RoutedPage, Source, StoredEvent, WebhookRoute,
};
pub use fault::Condition;
pub use health::{
    EVENT_FAILING, EVENT_PAUSED, EVENT_RECOVERED, EVENT_STORAGE_LOW, EVENT_STORAGE_OK, Notice,
};
pub use hourly::{BEYOND_MS, DURATION_BUCKETS_MS, HourlyLog};
pub use log::{AttemptDetail, HeaderStats, LogEntry, LogFilter, NewLogEntry};
pub use sessions::Session;
pub use webhooks::ms_to_rfc3339;

/// How long a statement waits for another writer (CLI, appliance) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How the database is opened: from `[database]` of the config, or the
/// defaults ([`Options::default`]) for tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether each commit is synced to disk (see [`Durability`]).
    pub durability: Durability,
    /// How long a write waits for another process's write lock.
    pub busy_timeout: Duration,
    /// Free bytes below which new events are refused (0: never).
    pub min_free_bytes: u64,
    /// PostgreSQL: how long a delivery claim holds unless its router
    /// renews it (the longest a dead router's deliveries wait).
    pub lease: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Full,
            busy_timeout: BUSY_TIMEOUT,
            min_free_bytes: 0,
            lease: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// The options `[database]` of `config` asks for.
    pub fn from_config(config: &crate::base::config::Config) -> Options {
        Options {
            durability: config.durability,
            busy_timeout: config.busy_timeout,
            min_free_bytes: config.min_free_bytes,
            lease: config.lease,
        }
    }
}

pub use crate::base::config::Durability;

/// Creates the database file's directory (mode 0700) if it does not exist.
pub fn create_parent_dir(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, the time unit of scheduling columns.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
