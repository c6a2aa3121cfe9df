//! The store's one error type: what a caller may match on (not found, a
//! conflict, a duplicate, …) and the database engine's own errors kept
//! opaque.

use std::path::PathBuf;
use std::sync::Arc;

/// Why the database cannot take writes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The file system holding the database is full.
    DiskFull,
    /// Free space is below `database.min_free_mb`: new events are refused,
    /// everything else still runs.
    LowSpace,
    /// The database file or its file system cannot be written.
    ReadOnly,
    /// Another process held the write lock past the busy timeout.
    Locked,
}

impl Fault {
    /// Whether it is about space (HTTP 507), not a wait (503).
    pub fn is_space(self) -> bool {
        matches!(self, Fault::DiskFull | Fault::LowSpace)
    }
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The row changed since it was read.
    #[error("{0} was changed by someone else meanwhile")]
    Conflict(String),
    /// The database file or its directory cannot be opened or created.
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The database was written by a newer herald.
    #[error(
        "database schema version {found} is newer than this herald supports ({supported}); upgrade herald"
    )]
    TooNew { found: i64, supported: i64 },
    /// A row with this key already exists (an event uuid queued twice).
    #[error("{0} already exists")]
    Duplicate(String),
    /// The database refused a statement or could not run it.
    #[error("database error: {0}")]
    Database(DbError),
    /// Stored data cannot be read back (e.g. a webhook row edited by hand).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A blocking task panicked or was cancelled, or the writer stopped.
    #[error("database task failed: {0}")]
    Task(String),
    /// The write ran, but the transaction holding it (and the other writes
    /// committed with it) could not be committed: none of it was kept.
    #[error("database error: the write was not committed: {0}")]
    NotCommitted(DbError),
    /// The database cannot take writes now (disk full, read-only, locked by
    /// another process, or free space below the watermark); nothing of the
    /// write was kept. `message` says so in plain words.
    #[error("{message}")]
    Storage {
        /// What is wrong.
        fault: Fault,
        /// What is wrong, naming the database file.
        message: String,
    },
}

impl Error {
    /// The storage fault an engine error stands for, if it is one: the
    /// conditions that pass by themselves or by an admin's hand, as opposed
    /// to a statement herald got wrong.
    pub(super) fn engine_fault(&self) -> Option<Fault> {
        use Fault;
        use rusqlite::ErrorCode;
        let (Error::Database(e) | Error::NotCommitted(e)) = self else {
            return None;
        };
        let rusqlite::Error::SqliteFailure(f, _) = e.0.as_ref() else {
            return None;
        };
        match f.code {
            ErrorCode::DiskFull => Some(Fault::DiskFull),
            ErrorCode::ReadOnly => Some(Fault::ReadOnly),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Fault::Locked),
            _ => None,
        }
    }
}

/// The database engine's own error, kept whole for its message but opaque
/// outside the store: no caller can match on an engine's error codes.
#[derive(Debug, Clone)]
pub struct DbError(Arc<rusqlite::Error>);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// Wraps an engine error.
    pub(super) fn new(e: rusqlite::Error) -> DbError {
        DbError(Arc::new(e))
    }

    /// The engine's error itself, for a row mapper that must return one.
    pub(super) fn into_inner(self) -> rusqlite::Error {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| {
            rusqlite::Error::ToSqlConversionFailure(Box::new(DbError(shared)))
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(DbError(Arc::new(e)))
    }
}

/// Is `e` a constraint violation (on the events table: its unique uuid)?
pub(super) fn is_duplicate(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Maps "no row" to [`Error::NotFound`] naming `what`.
pub(super) fn not_found(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let what = what.into();
    move |e| match e {
        rusqlite::Error::QueryReturnedNoRows => Error::NotFound(what),
        e => e.into(),
    }
}
