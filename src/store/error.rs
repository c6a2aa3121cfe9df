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
    /// The PostgreSQL server cannot be reached (down, restarting, or the
    /// connection was lost); writes are tried again as it comes back.
    Unreachable,
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
    /// The PostgreSQL server cannot be used with `database.url` (a bad URL,
    /// or it refused the connection). `url` has its password masked.
    #[error("cannot use PostgreSQL database {url}: {message}")]
    Connect { url: String, message: String },
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
    /// Whether the database server could not be reached: a `herald serve`
    /// starting waits for it and tries again.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Storage {
                fault: Fault::Unreachable,
                ..
            }
        )
    }

    /// The storage fault an engine error stands for, if it is one: the
    /// conditions that pass by themselves or by an admin's hand, as opposed
    /// to a statement herald got wrong.
    pub(super) fn engine_fault(&self) -> Option<Fault> {
        use Fault;
        use rusqlite::ErrorCode;
        let (Error::Database(e) | Error::NotCommitted(e)) = self else {
            return None;
        };
        let f = match e.0.as_ref() {
            Engine::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => f,
            Engine::Sqlite(_) => return None,
            Engine::Postgres(e) => return postgres_fault(e),
        };
        match f.code {
            ErrorCode::DiskFull => Some(Fault::DiskFull),
            ErrorCode::ReadOnly => Some(Fault::ReadOnly),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Fault::Locked),
            _ => None,
        }
    }
}

/// The storage fault a PostgreSQL error stands for: a lost or refused
/// connection, a full disk or a read-only server.
fn postgres_fault(e: &tokio_postgres::Error) -> Option<Fault> {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            Some(Fault::DiskFull)
        }
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => Some(Fault::ReadOnly),
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Some(Fault::Locked),
        Some(c)
            if c.code().starts_with("08")
                || c.code().starts_with("57P")
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::CANNOT_CONNECT_NOW =>
        {
            Some(Fault::Unreachable)
        }
        Some(_) => None,
        // No SQLSTATE: the connection itself failed (closed, I/O, timeout),
        // or herald read a row wrongly (not the server's fault).
        None if e.is_closed() || connection_failed(e) => Some(Fault::Unreachable),
        None => None,
    }
}

/// Whether `e` (without a SQLSTATE) came from the connection: an I/O
/// error or a timeout somewhere in its sources.
fn connection_failed(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    // tokio-postgres words its own connect timeouts and lost connections.
    let text = e.to_string();
    text.contains("timeout") || text.contains("connection")
}

/// The database engine's own error, kept whole for its message but opaque
/// outside the store: no caller can match on an engine's error codes.
#[derive(Debug, Clone)]
pub struct DbError(Arc<Engine>);

/// Which engine an error came from.
#[derive(Debug)]
pub(super) enum Engine {
    Sqlite(rusqlite::Error),
    Postgres(tokio_postgres::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_ref() {
            Engine::Sqlite(e) => e.fmt(f),
            // tokio-postgres' Display says only "db error"; the server's
            // own message is in the source.
            Engine::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => match std::error::Error::source(e) {
                    Some(source) => write!(f, "{e}: {source}"),
                    None => e.fmt(f),
                },
            },
        }
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// Wraps an engine error.
    pub(super) fn new(e: rusqlite::Error) -> DbError {
        DbError(Arc::new(Engine::Sqlite(e)))
    }

    /// The engine's error itself, for a row mapper that must return one.
    pub(super) fn into_inner(self) -> rusqlite::Error {
        match Arc::try_unwrap(self.0) {
            Ok(Engine::Sqlite(e)) => e,
            Ok(other) => {
                rusqlite::Error::ToSqlConversionFailure(Box::new(DbError(Arc::new(other))))
            }
            Err(shared) => rusqlite::Error::ToSqlConversionFailure(Box::new(DbError(shared))),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(DbError(Arc::new(Engine::Sqlite(e))))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            let what = e
                .as_db_error()
                .and_then(|d| d.constraint())
                .unwrap_or("row")
                .to_owned();
            return Error::Duplicate(what);
        }
        let error = Error::Database(DbError(Arc::new(Engine::Postgres(e))));
        match error.engine_fault() {
            Some(fault) => Error::Storage {
                fault,
                message: format!("the PostgreSQL database cannot take this now: {error}"),
            },
            None => error,
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            // Every pooled connection busy for the wait timeout: the
            // server answers, herald is saturated; tried again like a lock.
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
                Error::Storage {
                    fault: Fault::Locked,
                    message: "every PostgreSQL connection of herald's pool stayed busy; try again"
                        .into(),
                }
            }
            other => Error::Storage {
                fault: Fault::Unreachable,
                message: format!("the PostgreSQL server cannot be reached: {other}"),
            },
        }
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
