//! Waking a running `herald serve` from another process (`herald emit`):
//! a Unix datagram socket beside the database. Best effort by design: if no
//! server listens, the event simply waits for the next read of the queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The wake socket's path for a database file.
pub fn socket_path(database: &Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(".wake");
    PathBuf::from(p)
}

/// Sends one wake-up; errors (no server) are ignored.
pub fn send(database: &Path) {
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(b"w", socket_path(database));
    }
}

/// Listens on the wake socket and notifies `wake` per datagram.
pub fn listen(
    database: &Path,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let path = socket_path(database);
    // A stale socket from a killed process; the instance lock makes this safe.
    let _ = std::fs::remove_file(&path);
    let sock = tokio::net::UnixDatagram::bind(&path)?;
    tokio::spawn(async move {
        let mut buf = [0u8; 16];
        loop {
            tokio::select! {
                r = sock.recv(&mut buf) => if r.is_ok() { wake.notify_one() },
                _ = shutdown.cancelled() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}
