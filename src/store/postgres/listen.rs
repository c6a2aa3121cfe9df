//! Wake-ups across routers: one connection of its own (not pooled) that
//! `LISTEN`s on `herald_events` (the insert trigger, any producer) and
//! `herald_deliveries` (deliveries made or put back by another router).
//! Each notification fires the store's [`Notify`]; a lost connection is
//! made again with backoff, and fires it once when back (what was sent
//! meanwhile is not replayed by PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// The longest wait between two attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens until the runtime stops.
pub(super) async fn run(config: tokio_postgres::Config, notify: Arc<Notify>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let lost = match listen_once(&config, &notify).await {
            Ok(()) => {
                // It was listening: try again soon.
                backoff = Duration::from_millis(200);
                "the server closed the connection".to_owned()
            }
            Err(e) => super::super::Error::from(e).to_string(),
        };
        tracing::warn!(error = %lost, "PostgreSQL wake-ups lost; connecting again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `LISTEN`, then forward notifications until it
/// ends. Fires `notify` once on connecting (anything queued while no
/// connection listened).
async fn listen_once(
    config: &tokio_postgres::Config,
    notify: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute("LISTEN herald_events; LISTEN herald_deliveries")
        .await?;
    notify.notify_one();
    while rx.recv().await.is_some() {
        notify.notify_one();
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
