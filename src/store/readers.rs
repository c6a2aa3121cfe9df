//! Read-only connections for everything that only reads (API, web pages,
//! the log, claims' look-ups): in WAL mode they read the last committed
//! state while the writer writes, so reads never wait behind writes.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::error::Error;

/// How long a read waits for a writer of another process (CLI, appliance)
/// that holds a lock SQLite readers must respect (e.g. a checkpoint).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A small pool of read-only connections, opened on demand.
pub(super) struct Readers {
    path: PathBuf,
    max: usize,
    idle: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    free: Vec<Connection>,
    open: usize,
}

impl Readers {
    /// A pool of at most `max` connections on the database at `path`.
    pub(super) fn new(path: &Path, max: usize) -> Readers {
        Readers {
            path: path.to_owned(),
            max: max.max(1),
            idle: Mutex::new(Pool {
                free: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs `f` on a free read-only connection, waiting for one when all
    /// are in use.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self.take()?;
        let result = f(&mut conn);
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        pool.free.push(conn);
        drop(pool);
        self.returned.notify_one();
        result
    }

    fn take(&self) -> Result<Connection, Error> {
        let mut pool = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = pool.free.pop() {
                return Ok(conn);
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return self.open().inspect_err(|_| {
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                });
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open(&self) -> Result<Connection, Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        plan_once(&conn)?;
        Ok(conn)
    }
}

/// Keeps each cached statement's query plan: without this, SQLite (built
/// with STAT4) prepares a statement again whenever a bound `LIMIT ?` value
/// changes, which was a quarter of the delivery path's instructions.
pub(super) fn plan_once(conn: &Connection) -> Result<(), Error> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}
