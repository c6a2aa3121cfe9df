//! The SQLite backend: one database file, one `herald serve` at a time.
//!
//! Writes go through one writer thread that commits whatever has queued up
//! in one transaction (group commit, [`super::writer`]); reads run on a pool
//! of read-only connections ([`super::readers`]) and never wait behind
//! writes. Opens the database in WAL mode with a busy timeout, keeps the
//! file at mode 0600, and migrates the schema on open. Calls block: async
//! code runs them through [`super::Store::run`]. The operations themselves
//! are in the sibling modules (`impl Sqlite` per table).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::claims::Claims;
use super::error::Error;
use super::fault::{Condition, Watch};
use super::parsed::{Ingested, ParsedEvents};
use super::readers::{self, Readers};
use super::writer::Writer;
use super::{Durability, Options, create_parent_dir};

/// Schema versions, applied in order; `PRAGMA user_version` is the index of
/// the last one applied. Never edit a released migration: add one.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_auth_signing.sql"),
    include_str!("migrations/003_outages.sql"),
    include_str!("migrations/004_access.sql"),
    include_str!("migrations/005_sessions.sql"),
    include_str!("migrations/006_checks_without_in.sql"),
    include_str!("migrations/007_one_index_fewer.sql"),
    include_str!("migrations/008_webhook_description.sql"),
    include_str!("migrations/009_stream_keys.sql"),
    include_str!("migrations/010_event_source.sql"),
    include_str!("migrations/011_events_check_without_in.sql"),
];

/// Read-only connections kept for reads running at once.
const READERS: usize = 4;

/// A cheap, cloneable handle on a SQLite database: writes go through the
/// one writer (group commit), reads through a pool of read-only
/// connections.
#[derive(Clone)]
pub(super) struct Sqlite {
    writer: Writer,
    readers: Arc<Readers>,
    /// Events parsed by the router, for the claims that send them.
    pub(super) parsed: Arc<ParsedEvents>,
    /// Deliveries this process has claimed (in memory, see [`super::claims`]).
    pub(super) claims: Arc<Claims>,
    /// Events the API has just queued, parsed, for the router.
    pub(super) ingested: Arc<Ingested>,
    path: Arc<PathBuf>,
    /// Whether the database can be written, and free space.
    pub(super) watch: Arc<Watch>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}


/// Creates the file with mode 0600 if it does not exist, and tightens an
/// existing one; creates the parent directory with mode 0700.
fn prepare_file(path: &Path) -> std::io::Result<()> {
    create_parent_dir(path)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

impl Sqlite {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub(super) fn open_with(path: &Path, options: &Options) -> Result<Sqlite, Error> {
        let open_err = |message: String| Error::Open {
            path: path.to_owned(),
            message,
        };
        prepare_file(path).map_err(|e| open_err(e.to_string()))?;
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(options.busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: the WAL is synced at every commit (one per batch of the
        // writer), so an acknowledged write survives a power cut. NORMAL
        // syncs only at checkpoints: a crash of the process loses nothing,
        // a power cut may lose the last commits.
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoints (one per write of a group commit) keep the pages they
        // change in a sub-journal; past 64 KiB SQLite spills it to a temp
        // file, which was 88 % of the writer's pwrite calls in the e2e bench
        // (strace: 17,703 of 20,000 in 2 s). In memory it costs at most the
        // pages one group changes.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        readers::plan_once(&conn)?;
        migrate(&mut conn)?;
        Ok(Sqlite {
            writer: Writer::start(conn, path, options.busy_timeout)?,
            readers: Arc::new(Readers::new(path, READERS)),
            parsed: Arc::default(),
            claims: Arc::default(),
            ingested: Arc::default(),
            path: Arc::new(path.to_owned()),
            watch: Arc::new(Watch::new(
                path,
                options.min_free_bytes,
                options.busy_timeout,
            )),
        })
    }

    /// Refuses a database file that does not exist (read-only commands:
    /// a wrong path must not create an empty database and report "nothing
    /// found").
    pub(super) fn must_exist(path: &Path) -> Result<(), Error> {
        if !path.exists() {
            return Err(Error::Open {
                path: path.to_owned(),
                message: "no such file; herald has not used this database.path yet \
                          (check --config, HERALD_CONFIG or HERALD_DATABASE_PATH)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The database file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the write `f` through the writer; returns once it is committed
    /// (with whatever else was queued), blocking the calling thread.
    pub(super) fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.watch.after_write(self.writer.write(f))
    }

    /// [`Sqlite::write`] for async callers: awaits the commit without
    /// holding a thread (an event to acknowledge).
    pub(super) async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.watch
            .after_write(self.writer.write_async(f, false).await)
    }

    /// [`Sqlite::write_async`] for writes no one waits on (settled
    /// attempts): the write may wait a moment for others to share its
    /// commit.
    pub(super) async fn write_lingering<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.watch
            .after_write(self.writer.write_async(f, true).await)
    }

    /// What keeps the database from being written now (a full disk, a
    /// read-only file, another process's lock, free space below
    /// `database.min_free_mb`), if anything: for `/healthz` and the web
    /// admin's banner.
    pub(super) fn condition(&self) -> Option<Condition> {
        self.watch.condition()
    }

    /// Runs the read `f` on a read-only connection, on the calling thread.
    pub(super) fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
        self.readers.read(f)
    }

    /// Schema version after migration.
    pub(super) fn schema_version(&self) -> Result<i64, Error> {
        self.read(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }
}

/// Applies the migrations the database has not seen, each in its own
/// transaction. Foreign keys are off meanwhile (a pragma that only takes
/// effect outside a transaction): a migration that rebuilds a table others
/// reference (011: events) must not cascade its DROP into them. Every
/// reference is checked before they are on again.
fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(Error::TooNew {
            found: current,
            supported,
        });
    }
    if current == supported {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let applied = (|| -> Result<(), Error> {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            let broken: i64 =
                tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })?;
            if broken > 0 {
                return Err(Error::Corrupt(format!(
                    "migration {} would leave {broken} broken references; nothing was changed",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", "ON")?;
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogFilter, Store};

    /// A database at schema version `n`, as an older herald left it.
    fn at_version(path: &Path, n: usize) -> Connection {
        let mut c = Connection::open(path).unwrap();
        for (i, sql) in MIGRATIONS[..n].iter().enumerate() {
            let tx = c.transaction().unwrap();
            tx.execute_batch(sql).unwrap();
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
            tx.commit().unwrap();
        }
        c
    }

    #[test]
    fn open_creates_private_file_and_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/herald.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        drop(store);
        // Reopening is a no-op migration.
        assert!(Store::open(&path).is_ok());
    }

    #[test]
    fn stale_webhook_update_is_a_conflict_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        let spec = crate::spec::webhook::WebhookSpec::example("http://127.0.0.1:9/");
        let w = store.insert_webhook(&spec).unwrap();
        let mut first = spec.clone();
        first.name = "first".into();
        let after_first = store.update_webhook(w.id, &w.updated_at, &first).unwrap();
        assert_ne!(after_first.updated_at, w.updated_at);
        let mut second = spec.clone();
        second.name = "second".into();
        // Based on the version before the first change: refused.
        assert!(matches!(
            store.update_webhook(w.id, &w.updated_at, &second),
            Err(Error::Conflict(_))
        ));
        assert_eq!(store.webhook(w.id).unwrap().spec.name, "first");
        assert!(matches!(
            store.update_webhook(999, "x", &second),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_version_2_database_with_data_migrates_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = at_version(&path, 2);
            c.execute_batch(
                "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
                 VALUES ('old', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
                 INSERT INTO events (type) VALUES ('system.start');
                 INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 VALUES (1, 1, 0, 't', 't');
                 INSERT INTO log (at, outcome, event_uuid, webhook_id, error) VALUES ('t', 'failed', 'u', 1, 'HTTP 500');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let w = store.webhook(1).unwrap();
        assert_eq!(w.spec.retry, crate::spec::retry::RetryPolicy::default());
        assert_eq!(w.spec.max_in_flight, 4);
        assert!(w.health.paused_at.is_none());
        let log = store
            .log_entries(&LogFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].error.as_deref(), Some("HTTP 500"));
        assert!(log[0].retry_at.is_none() && !log[0].test);
        assert_eq!(store.pending_deliveries().unwrap(), 1);
    }

    /// Version 6 rebuilds log and deliveries (CHECKs without IN): rows,
    /// ids and AUTOINCREMENT counters survive, and the CHECKs still refuse.
    #[test]
    fn the_version_6_rebuild_keeps_rows_and_counters_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = at_version(&path, 5);
            c.execute_batch(
                "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
                 VALUES ('old', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
                 INSERT INTO events (type) VALUES ('system.start'), ('system.start');
                 INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 VALUES (1, 1, 0, 't', 't'), (2, 1, 0, 't', 't');
                 DELETE FROM deliveries WHERE id = 2;
                 INSERT INTO log (at, outcome, event_uuid, webhook_id, error) VALUES ('t', 'failed', 'u', 1, 'HTTP 500'), ('t', 'alert', 'v', 1, NULL);
                 DELETE FROM log WHERE id = 2;",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(store.pending_deliveries().unwrap(), 1);
        drop(store);
        let c = Connection::open(&path).unwrap();
        let seq = |t: &str| -> i64 {
            c.query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [t],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(seq("log"), 2, "a deleted log id would be given out again");
        assert_eq!(seq("deliveries"), 2);
        assert_eq!(
            c.query_row(
                "SELECT count(*) FROM sqlite_sequence WHERE name LIKE '%_v6'",
                [],
                |r| r.get::<_, i64>(0)
            )
            .unwrap(),
            0
        );
        assert!(
            c.execute("UPDATE deliveries SET state = 'lost'", [])
                .is_err()
        );
        assert!(c.execute("UPDATE log SET outcome = 'lost'", []).is_err());
        let indexes: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('log', 'deliveries') AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // Eight rebuilt by 006, one dropped by 007.
        assert_eq!(indexes, 7);
        let gone: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries_pending_event'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }

    /// Version 9 rebuilds api_keys (two scopes more, a stream key's
    /// limits): keys, ids and the AUTOINCREMENT counter survive, and the
    /// CHECK still refuses an unknown scope.
    #[test]
    fn the_version_9_rebuild_keeps_keys_and_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = at_version(&path, 8);
            c.execute_batch(
                "INSERT INTO api_keys (name, hint, digest, scope, created_at) VALUES
                   ('a', 'hk_a…', 'd1', 'admin', 't'), ('b', 'hk_b…', 'd2', 'read', 't'), ('c', 'hk_c…', 'd3', 'read', 't');
                 DELETE FROM api_keys WHERE id = 3;",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let keys = store.api_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].id, keys[0].scope),
            (1, crate::engines::access::Scope::Admin)
        );
        assert_eq!(
            (keys[1].id, keys[1].scope),
            (2, crate::engines::access::Scope::Read)
        );
        assert!(keys.iter().all(|k| k.limits.is_none()));
        let limits = crate::base::subscription::Subscription::parse(
            "ticket.*",
            &["backend_group=fidelio".into()],
        )
        .unwrap();
        let made = store
            .insert_api_key(
                "kiosk",
                "hk_k…",
                "d4",
                crate::engines::access::Scope::Stream,
                Some(&limits),
            )
            .unwrap();
        assert_eq!(made.id, 4, "a deleted key's id is not given out again");
        assert_eq!(made.limits.as_ref(), Some(&limits));
        let live = store.live_api_keys().unwrap();
        assert_eq!(
            live.iter().find(|k| k.id == 4).unwrap().limits.as_ref(),
            Some(&limits)
        );
        drop(store);
        let c = Connection::open(&path).unwrap();
        assert!(
            c.execute("UPDATE api_keys SET scope = 'root' WHERE id = 1", [])
                .is_err()
        );
    }

    /// Version 11 rebuilds events (the CHECK without IN) while deliveries
    /// reference it: no delivery is lost to a cascade, ids and the counter
    /// survive, and the CHECK still refuses.
    #[test]
    fn the_version_11_rebuild_keeps_events_and_their_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = at_version(&path, 10);
            c.execute_batch(
                "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
                 VALUES ('w', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
                 INSERT INTO events (type, source) VALUES ('system.start', 'api'), ('system.start', NULL), ('system.start', 'cli');
                 DELETE FROM events WHERE id = 3;
                 INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 VALUES (1, 1, 0, 't', 't'), (2, 1, 0, 't', 't');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(
            store.pending_deliveries().unwrap(),
            2,
            "no delivery lost to a cascade"
        );
        drop(store);
        let c = Connection::open(&path).unwrap();
        let sources: Vec<Option<String>> = c
            .prepare("SELECT source FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(sources, vec![Some("api".to_owned()), None]);
        let seq: i64 = c
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(seq, 3, "a deleted event id would be given out again");
        assert!(c.execute("UPDATE events SET state = 'lost'", []).is_err());
        let foreign_keys: i64 = Connection::open(&path)
            .map(|c| {
                c.pragma_update(None, "foreign_keys", "ON").unwrap();
                c.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap()
            })
            .unwrap();
        assert_eq!(foreign_keys, 0);
        // The store turned foreign keys on again after migrating.
        let store = Sqlite::open_with(&path, &Options::default()).unwrap();
        store
            .write(|c| Ok(c.pragma_query_value(None, "foreign_keys", |r| r.get::<_, i64>(0))?))
            .map(|on| assert_eq!(on, 1))
            .unwrap();
    }

    /// A migration that would leave a broken reference is refused whole:
    /// the version stays, and the error says so.
    #[test]
    fn a_migration_leaving_broken_references_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = at_version(&path, 10);
            // Written with foreign keys off: a delivery of an event that is
            // not there.
            c.execute_batch(
                "PRAGMA foreign_keys = OFF;
                 INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
                 VALUES ('w', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
                 INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 VALUES (99, 1, 0, 't', 't');",
            )
            .unwrap();
        }
        match Store::open(&path) {
            Err(Error::Corrupt(m)) => assert!(m.contains("broken references"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let c = Connection::open(&path).unwrap();
        let version: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 10);
        assert_eq!(
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events_v11'",
                [],
                |r| r.get::<_, i64>(0)
            )
            .unwrap(),
            0,
            "the rebuild was rolled back"
        );
    }

    #[test]
    fn open_existing_does_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(matches!(
            Store::open_existing(&path),
            Err(Error::Open { .. })
        ));
        assert!(!path.exists());
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(Error::TooNew { found: 99, .. })
        ));
    }
}