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
pub(super) const MIGRATIONS: &[&str] = &[
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

    /// Opens with the default [`Options`] (tests).
    #[cfg(test)]
    pub(super) fn open(path: &Path) -> Result<Sqlite, Error> {
        Sqlite::open_with(path, &Options::default())
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
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
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
