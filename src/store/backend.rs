//! [`Store`]: herald's one handle on its database, whichever backend holds
//! it. Every operation is the same on both; this module only chooses.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::postgres::Postgres;
use super::sqlite::Sqlite;
use super::{
    ApiKey, ClaimPass, Condition, DeliveryFilter, DeliveryRow, Error, HeaderStats, HourlyLog,
    LiveKey, LogEntry, LogFilter, NewLogEntry, Notice, Options, QueuedEvent, Replay, RouteStats,
    RoutedPage, Session, Settled, Source, StoredEvent, Unreadable, WebhookRoute,
};
use crate::base::config::Config;
use crate::base::event::ValidEvent;
use crate::base::subscription::Subscription;
use crate::engines::access::Scope;
use crate::spec::webhook::{Webhook, WebhookSpec};

/// A cheap, cloneable handle on the database: SQLite (embedded, the
/// default) or PostgreSQL (`database.url`, shared by several routers).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// Runs the same call on whichever backend `$store` has.
macro_rules! both {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) and migrates the SQLite database at
    /// `path`, with the default [`Options`].
    pub fn open(path: &Path) -> Result<Store, Error> {
        Store::open_with(path, &Options::default())
    }

    /// Opens (creating if needed) and migrates the SQLite database at `path`.
    pub fn open_with(path: &Path, options: &Options) -> Result<Store, Error> {
        Ok(Store {
            backend: Backend::Sqlite(Sqlite::open_with(path, options)?),
        })
    }

    /// Opens a SQLite database that must already exist (read-only
    /// commands: a wrong path must not create an empty database and report
    /// "nothing found").
    pub fn open_existing(path: &Path) -> Result<Store, Error> {
        Sqlite::must_exist(path)?;
        Store::open(path)
    }

    /// Opens the database `config` names: PostgreSQL at `database.url` when
    /// it is set (migrated under an advisory lock), else SQLite at
    /// `database.path`.
    pub fn open_configured(config: &Config) -> Result<Store, Error> {
        match &config.database_url {
            Some(url) => Ok(Store {
                backend: Backend::Postgres(Postgres::open_with(
                    url,
                    &Options::from_config(config),
                )?),
            }),
            None => Store::open_with(&config.database_path, &Options::from_config(config)),
        }
    }

    /// Opens a database that must exist, as [`Store::open_existing`]: with
    /// PostgreSQL, the server must answer (its schema is created if it is
    /// not there yet).
    pub fn open_existing_configured(config: &Config) -> Result<Store, Error> {
        if config.database_url.is_none() {
            Sqlite::must_exist(&config.database_path)?;
        }
        Store::open_configured(config)
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether several routers may share this database (PostgreSQL): no
    /// instance lock, wake-ups through the database.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Where the database is, for logs: the SQLite file, or the PostgreSQL
    /// URL with its password masked.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().display().to_string(),
            Backend::Postgres(p) => p.describe(),
        }
    }

    /// What keeps the database from being written now (a full disk, a
    /// read-only file, another process's lock, free space below
    /// `database.min_free_mb`, a PostgreSQL server that does not answer),
    /// if anything: for `/healthz` and the web admin's banner.
    pub fn condition(&self) -> Option<Condition> {
        both!(self, b => b.condition())
    }

    /// Fires when another process queued events or made deliveries due
    /// (PostgreSQL `NOTIFY`); `None` on SQLite, where wake-ups come through
    /// the local socket.
    pub fn notifications(&self) -> Option<Arc<tokio::sync::Notify>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p.notifications()),
        }
    }

    /// The SQLite backend, for tests that write around the operations.
    #[cfg(test)]
    pub(super) fn sqlite(&self) -> &Sqlite {
        match &self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    /// Takes the run of scheduled job `name` (the cleanup) due at `at_ms`:
    /// on PostgreSQL only one of the routers asking for the same time gets
    /// true; on SQLite (one router) always true.
    pub fn claim_scheduled_run(&self, name: &str, at_ms: i64) -> Result<bool, Error> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(p) => p.claim_scheduled_run(name, at_ms),
        }
    }

    /// Runs a blocking store call off the async workers.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Schema version after migration.
    pub fn schema_version(&self) -> Result<i64, Error> {
        both!(self, b => b.schema_version())
    }

    /// The admin password's hash, if one was set.
    pub fn admin_password_hash(&self) -> Result<Option<String>, Error> {
        both!(self, b => b.admin_password_hash())
    }

    /// Stores the admin password's hash. With `only_if_unset`, keeps one
    /// already there and returns false (two starts racing for the first
    /// password: the first wins).
    pub fn set_admin_password_hash(&self, hash: &str, only_if_unset: bool) -> Result<bool, Error> {
        both!(self, b => b.set_admin_password_hash(hash, only_if_unset))
    }

    /// Stores a new API key by its digest, with a stream key's `limits`.
    pub fn insert_api_key(
        &self,
        name: &str,
        hint: &str,
        digest: &str,
        scope: Scope,
        limits: Option<&Subscription>,
    ) -> Result<ApiKey, Error> {
        both!(self, b => b.insert_api_key(name, hint, digest, scope, limits))
    }

    /// All API keys, revoked ones included, by id.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        both!(self, b => b.api_keys())
    }

    /// API key `id` as listed.
    pub fn api_key(&self, id: i64) -> Result<ApiKey, Error> {
        both!(self, b => b.api_key(id))
    }

    /// Every live (not revoked) key, for the listener's in-memory view of
    /// the keys. A key whose scope text is unknown (edited by hand) is left
    /// out: refused.
    pub fn live_api_keys(&self) -> Result<Vec<LiveKey>, Error> {
        both!(self, b => b.live_api_keys())
    }

    /// Revokes key `id` (idempotent). [`Error::NotFound`] when there is none.
    pub fn revoke_api_key(&self, id: i64) -> Result<ApiKey, Error> {
        both!(self, b => b.revoke_api_key(id))
    }

    /// Claims due deliveries for up to `free` requests, visiting webhooks
    /// that are enabled and not paused, starting at the `start`-th (so no
    /// webhook is always served last). Each webhook gets at most its
    /// `max_in_flight` minus `in_flight[id]` requests; an ordered webhook
    /// only its oldest pending delivery, and only when nothing of it is in
    /// flight; a batching webhook one request per full batch, or per batch
    /// whose oldest event has waited `max_wait`.
    ///
    /// A read, not a write: claims are kept in memory (see [`super::claims`])
    /// until [`Store::finish_attempt`] settles them, so no request waits for
    /// a commit before it is sent.
    pub async fn claim_due(
        &self,
        free: usize,
        in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<ClaimPass, Error> {
        both!(self, b => b.claim_due(free, in_flight, start).await)
    }

    /// Releases every claim written to the table: run once at start. Claims
    /// live in memory (see [`super::claims`]); rows claimed in the table
    /// come from a version of herald that wrote claims and stopped with
    /// requests in flight. Each such attempt is logged as interrupted and
    /// does not count against the retry policy.
    pub fn release_claims(&self) -> Result<usize, Error> {
        both!(self, b => b.release_claims())
    }

    /// Logs the attempts of `delivery_ids` as interrupted (a stop cut them
    /// short past its grace period) and counts them; they stay pending,
    /// their tries unchanged, and are sent again after the next start.
    pub fn interrupt(&self, delivery_ids: Vec<i64>) -> Result<(), Error> {
        both!(self, b => b.interrupt(delivery_ids))
    }

    /// Records attempts and settles their deliveries, in one write: per
    /// request (one inner list; a batch's events may be at different tries
    /// of their retry policy, so each has its own outcome) the log entries,
    /// the deliveries' new state and the webhook's health. Returns whether a
    /// health changed in a way the monitor must look at (a failure streak
    /// began, or an alerted streak ended). The claims are released once the
    /// write has committed.
    pub async fn finish_attempts(&self, requests: Arc<Vec<Settled>>) -> Result<bool, Error> {
        both!(self, b => b.finish_attempts(requests).await)
    }

    /// Forgets the claims of a request that will not be settled: its
    /// deliveries are gone (the webhook was deleted while it was sent).
    pub fn release_unsettled(&self, webhook_id: i64, delivery_ids: &[i64]) {
        both!(self, b => b.release_unsettled(webhook_id, delivery_ids))
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub fn fail_unreadable(&self, bad: &Unreadable) -> Result<(), Error> {
        both!(self, b => b.fail_unreadable(bad))
    }

    /// Deliveries not yet finished.
    pub fn pending_deliveries(&self) -> Result<i64, Error> {
        both!(self, b => b.pending_deliveries())
    }

    /// When the oldest pending delivery was made (`None`: none pending).
    /// Read per webhook through its pending index, not by scanning every
    /// delivery.
    pub fn oldest_pending_delivery_at(&self) -> Result<Option<String>, Error> {
        both!(self, b => b.oldest_pending_delivery_at())
    }

    /// Puts finished deliveries back in the queue, due now, for a new round
    /// of tries: each resend is a new attempt in the log with the same event
    /// uuid. Deliveries still pending are left as they are. Returns how many.
    pub fn replay(&self, which: &Replay) -> Result<Vec<i64>, Error> {
        both!(self, b => b.replay(which))
    }

    /// How the deliveries `ids` stand now: `(pending, delivered, failed)`
    /// (for `herald retry --wait`, which follows what it queued).
    pub fn delivery_states(&self, ids: &[i64]) -> Result<(usize, usize, usize), Error> {
        both!(self, b => b.delivery_states(ids))
    }

    /// Deliveries, newest first, for listings (`herald deliveries`, the API).
    pub fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, Error> {
        both!(self, b => b.deliveries(f))
    }

    /// Appends a checked event to the queue. A uuid already queued is refused
    /// with [`Error::Duplicate`].
    /// Refused with [`Error::Storage`] while free space is below the
    /// watermark: the space left is kept for deliveries and their log.
    pub fn insert_event(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        both!(self, b => b.insert_event(e, source))
    }

    /// [`Store::insert_event`] for async callers (the API): awaits the
    /// commit without holding a thread.
    pub async fn insert_event_async(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        both!(self, b => b.insert_event_async(e, source).await)
    }

    /// The stored event with this uuid, while the cleanup has not removed it.
    pub fn event_by_uuid(&self, uuid: &str) -> Result<Option<StoredEvent>, Error> {
        both!(self, b => b.event_by_uuid(uuid))
    }

    /// Number of events waiting to be routed.
    pub fn queue_depth(&self) -> Result<i64, Error> {
        both!(self, b => b.queue_depth())
    }

    /// Routes up to `limit` queued events: for each, `decide` returns the
    /// webhooks to deliver to with the event's parsed data (given the data
    /// parsed when the API queued it, if known), or why the event is
    /// invalid. Each event is routed exactly once, also beside other
    /// routers on the same database.
    pub fn route_batch(
        &self,
        limit: usize,
        decide: impl FnMut(
            &QueuedEvent,
            Option<Map<String, Value>>,
            &[WebhookRoute],
        ) -> Result<(Vec<i64>, Map<String, Value>), String>,
    ) -> Result<RouteStats, Error> {
        both!(self, b => b.route_batch(limit, decide))
    }

    /// Up to `limit` routed rows after queue position `after`, in queue
    /// order: a live-stream subscriber's replay (`since`). Rows whose data
    /// no longer parses (edited by hand since) are left out of `events`
    /// but counted in `read` and `last`, so a reader passes over them.
    pub fn routed_events_after(&self, after: i64, limit: usize) -> Result<RoutedPage, Error> {
        both!(self, b => b.routed_events_after(after, limit))
    }

    /// Deletes up to `limit` events that were routed or found invalid before
    /// `cutoff` and have no delivery still pending. Returns how many.
    pub fn delete_finished_events_before(
        &self,
        cutoff: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        both!(self, b => b.delete_finished_events_before(cutoff, limit))
    }

    /// One look by the health monitor at `now_ms`: pauses webhooks whose
    /// failed attempts span `pause_after` (if set), raises an alert for
    /// each webhook failing for at least `first_alert` and not alerted
    /// within `alert_every`, and announces the recovery of an alerted
    /// webhook once. Returns what it announced.
    pub fn health_tick(
        &self,
        now_ms: i64,
        pause_after: Option<std::time::Duration>,
        first_alert: std::time::Duration,
        alert_every: std::time::Duration,
    ) -> Result<Vec<Notice>, Error> {
        both!(self, b => b.health_tick(now_ms, pause_after, first_alert, alert_every))
    }

    /// Pauses webhook `id` by hand: nothing is sent until it is resumed;
    /// new events for it are kept.
    pub fn pause_webhook(&self, id: i64, reason: &str) -> Result<(), Error> {
        both!(self, b => b.pause_webhook(id, reason))
    }

    /// Resumes paused webhook `id` ([`Error::Conflict`] if it is not
    /// paused): clears the pause and the failure streak (so
    /// the pause window starts over) and makes its whole backlog due now,
    /// for a new round of tries. An alert raised before stays on record: the
    /// first success announces the recovery. Returns how many deliveries
    /// were waiting.
    pub fn resume_webhook(&self, id: i64) -> Result<usize, Error> {
        both!(self, b => b.resume_webhook(id))
    }

    /// One look by the health monitor at free space: queues
    /// `herald.storage.low` (to webhooks subscribed to it) when free space
    /// fell below `database.min_free_mb`, and `herald.storage.ok` once it
    /// is back; returns the message of what it raised. The alert is
    /// written while space is low, not yet gone: that is what the
    /// watermark keeps.
    pub fn storage_tick(&self) -> Result<Option<String>, Error> {
        both!(self, b => b.storage_tick())
    }

    /// Log entries since `since` (RFC 3339, UTC) by webhook and hour, test
    /// sends left out. One range read through the log's time index
    /// (grouped by hour first, so the planner does not prefer the webhook
    /// index and read the whole log; a test checks the plan).
    pub fn hourly_log(&self, since: &str) -> Result<Vec<HourlyLog>, Error> {
        both!(self, b => b.hourly_log(since))
    }

    /// Logs one attempt that settles no delivery (a test send).
    pub fn insert_log_entry(&self, e: &NewLogEntry) -> Result<(), Error> {
        both!(self, b => b.insert_log_entry(e))
    }

    /// Reads the log, newest first.
    pub fn log_entries(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        both!(self, b => b.log_entries(f))
    }

    /// The newest log entry's id (0 for an empty log): the event log page's
    /// live updates watch it.
    pub fn last_log_id(&self) -> Result<i64, Error> {
        both!(self, b => b.last_log_id())
    }

    /// Log entry `id`.
    pub fn log_entry(&self, id: i64) -> Result<LogEntry, Error> {
        both!(self, b => b.log_entry(id))
    }

    /// The figures of the web admin's header: queue depth (events not yet
    /// routed plus deliveries not finished), attempts delivered and failed
    /// since `since` (RFC 3339), webhooks failing and paused.
    pub fn header_stats(&self) -> Result<HeaderStats, Error> {
        both!(self, b => b.header_stats())
    }

    /// Deletes up to `limit` log entries older than `cutoff`. Returns how many.
    pub fn delete_log_before(&self, cutoff: &str, limit: usize) -> Result<usize, Error> {
        both!(self, b => b.delete_log_before(cutoff, limit))
    }

    /// Stores a new session that ends at `expires_at` (ms) unless used.
    pub fn insert_session(
        &self,
        digest: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        both!(self, b => b.insert_session(digest, csrf, now, expires_at))
    }

    /// The live session with this digest, its expiry pushed to
    /// `min(now + idle, created_at + max_age)`; `None` when it is unknown or
    /// over.
    pub fn touch_session(
        &self,
        digest: &str,
        now: i64,
        idle_ms: i64,
        max_age_ms: i64,
    ) -> Result<Option<Session>, Error> {
        both!(self, b => b.touch_session(digest, now, idle_ms, max_age_ms))
    }

    /// The live session with this digest, read without extending it: for
    /// when the database cannot be written, so the admin can still read
    /// the pages (and the banner saying why).
    pub fn live_session(&self, digest: &str, now: i64) -> Result<Option<Session>, Error> {
        both!(self, b => b.live_session(digest, now))
    }

    /// Is the session with this digest still live (without extending it)?
    pub fn session_alive(&self, digest: &str, now: i64) -> Result<bool, Error> {
        both!(self, b => b.session_alive(digest, now))
    }

    /// Ends one session (log out).
    pub fn delete_session(&self, digest: &str) -> Result<(), Error> {
        both!(self, b => b.delete_session(digest))
    }

    /// Ends every session but `keep` (after a password change).
    pub fn delete_other_sessions(&self, keep: Option<&str>) -> Result<usize, Error> {
        both!(self, b => b.delete_other_sessions(keep))
    }

    /// The settings saved in the web admin, `(key, value as typed)`.
    pub fn ui_settings(&self) -> Result<Vec<(String, String)>, Error> {
        both!(self, b => b.ui_settings())
    }

    /// Replaces the web-saved settings with `values` in one transaction:
    /// keys not in `values` go back to the config file's value.
    pub fn replace_ui_settings(&self, values: &[(String, String)]) -> Result<(), Error> {
        both!(self, b => b.replace_ui_settings(values))
    }

    /// Stores a new, already checked webhook.
    pub fn insert_webhook(&self, spec: &WebhookSpec) -> Result<Webhook, Error> {
        both!(self, b => b.insert_webhook(spec))
    }

    /// Replaces every setting of webhook `id` with an already checked spec,
    /// if it is still at version `seen_updated_at` (else [`Error::Conflict`]:
    /// someone changed it meanwhile, and their change must not be lost).
    pub fn update_webhook(
        &self,
        id: i64,
        seen_updated_at: &str,
        spec: &WebhookSpec,
    ) -> Result<Webhook, Error> {
        both!(self, b => b.update_webhook(id, seen_updated_at, spec))
    }

    /// Enables or disables webhook `id` without touching its other settings.
    pub fn set_webhook_enabled(&self, id: i64, enabled: bool) -> Result<Webhook, Error> {
        both!(self, b => b.set_webhook_enabled(id, enabled))
    }

    /// Reads webhook `id`.
    pub fn webhook(&self, id: i64) -> Result<Webhook, Error> {
        both!(self, b => b.webhook(id))
    }

    /// All webhooks, by id.
    pub fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        both!(self, b => b.webhooks())
    }

    /// Deletes webhook `id` and its deliveries (its log entries stay until cleanup).
    pub fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        both!(self, b => b.delete_webhook(id))
    }
}
