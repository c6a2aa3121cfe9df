//! systemd's service protocol, spoken only when systemd asks for it: with
//! `NOTIFY_SOCKET` set (`Type=notify`), herald says `READY=1` once the
//! database is open and the listener bound, `STOPPING=1` when it stops, and
//! with `WATCHDOG_USEC` (`WatchdogSec=`) sends `WATCHDOG=1` — but only while
//! the delivery loop's [`Heartbeat`] is recent, so a hung loop is restarted.
//! A datagram on a Unix socket; no crate needed.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pipeline::heartbeat::Heartbeat;

/// The socket systemd listens on.
pub struct Notifier {
    socket: UnixDatagram,
    address: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names, if it names one (a path, or an
    /// abstract socket written `@name`).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_str()?;
        let address = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok()?
        } else {
            std::os::unix::net::SocketAddr::from_pathname(name).ok()?
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, address })
    }

    /// Sends one state line (`READY=1`, `STOPPING=1`, `WATCHDOG=1`); a
    /// failure is logged, never fatal.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            // The watchdog says this every few seconds: not a line each time.
            if let Some(held) = crate::base::repeats::admit(&format!("notify: {e}")) {
                tracing::warn!(error = %e, state, "cannot tell systemd (NOTIFY_SOCKET){}", crate::base::repeats::summary(held));
            }
        }
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this
/// process when `WATCHDOG_PID` is set).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Whether a loop whose last beat is `age` old counts as alive, for a
/// watchdog of `interval`: within half of it. The delivery loop beats at
/// least once a second, so `WatchdogSec=` must be 4 s or more (the unit
/// sets 30 s).
pub fn alive(age: Duration, interval: Duration) -> bool {
    age < interval / 2
}

/// Sends `WATCHDOG=1` every half `interval` while `heartbeat` is alive,
/// until `shutdown`. A hung loop stops the pings; systemd then restarts
/// herald after `interval`.
pub async fn feed_watchdog(
    notifier: Arc<Notifier>,
    heartbeat: Arc<Heartbeat>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval / 2);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let age = heartbeat.age();
        if alive(age, interval) {
            notifier.notify("WATCHDOG=1");
            warned = false;
        } else if !warned {
            warned = true;
            tracing::error!(
                since_ms = age.as_millis() as u64,
                "the delivery loop has not turned for too long; the systemd watchdog is no longer fed (herald will be restarted)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<Notifier>, UnixDatagram, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            address: std::os::unix::net::SocketAddr::from_pathname(&path).unwrap(),
        };
        (Arc::new(notifier), listener, dir)
    }

    fn received(listener: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = listener.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    /// Fed while the loop beats; silent once it stops beating.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watchdog_is_fed_only_while_the_loop_beats() {
        let (notifier, listener, _dir) = pair();
        let heartbeat = Arc::new(Heartbeat::default());
        let stop = CancellationToken::new();
        let interval = Duration::from_millis(400);
        let beating = CancellationToken::new();
        let beater = {
            let (heartbeat, beating) = (heartbeat.clone(), beating.clone());
            tokio::spawn(async move {
                while !beating.is_cancelled() {
                    heartbeat.beat();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let feeder = tokio::spawn(feed_watchdog(notifier, heartbeat, interval, stop.clone()));
        tokio::time::sleep(Duration::from_millis(900)).await;
        let fed = received(&listener);
        assert!(
            fed.len() >= 2 && fed.iter().all(|m| m == "WATCHDOG=1"),
            "{fed:?}"
        );
        // The loop hangs: no more pings once its last beat is half an interval old.
        beating.cancel();
        beater.await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = received(&listener);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(received(&listener), Vec::<String>::new());
        stop.cancel();
        feeder.await.unwrap();
    }

    #[test]
    fn alive_means_a_beat_within_half_the_interval() {
        let i = Duration::from_secs(30);
        assert!(alive(Duration::from_secs(1), i));
        assert!(!alive(Duration::from_secs(15), i));
    }
}
