//! `herald serve`: opens the store, then runs the router, the deliverer, the
//! health monitor, the cleanup job and the HTTP listener until SIGTERM/SIGINT.

mod listener;
mod systemd;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::base::config::Config;
use crate::pipeline::deliver::{Deliverer, Settings};
use crate::store::Store;
use crate::surfaces::shared::AppState;

/// Why herald could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The e-mail alert settings cannot be used.
    #[error(transparent)]
    Mail(#[from] crate::engines::mail::Error),
    /// Another herald serves this database.
    #[error("another herald is already serving {0} (lock held on {0}.lock)")]
    AlreadyRunning(PathBuf),
    /// The listener cannot bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The first admin password could not be made.
    #[error("cannot set the first admin password: {0}")]
    Admin(crate::surfaces::shared::ops::Error),
    /// HTTPS cannot be set up.
    #[error(transparent)]
    Client(#[from] crate::engines::http::SetupError),
    /// Another I/O failure at start.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Takes the single-instance lock of a database: two routers on one queue
/// would each release the other's claims.
fn lock_instance(db: &std::path::Path) -> Result<File, Error> {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    let path = PathBuf::from(p);
    let file = File::create(&path).map_err(|source| Error::Io {
        what: format!("cannot create {}", path.display()),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::AlreadyRunning(db.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
            what: format!("cannot lock {}", path.display()),
            source,
        }),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Opens the configured database; a PostgreSQL server that does not answer
/// is waited for (tried again with backoff, each failure logged) until it
/// does or a termination signal comes (`None`). Any other failure ends
/// the start.
async fn open_waiting(config: &Config) -> Result<Option<Store>, Error> {
    let mut backoff = std::time::Duration::from_millis(500);
    let stop = termination();
    tokio::pin!(stop);
    loop {
        let attempt = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Store::open_configured(&config))
                .await
                .map_err(|e| Error::Store(crate::store::Error::Task(e.to_string())))?
        };
        match attempt {
            Ok(store) => return Ok(Some(store)),
            Err(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, retry_in = ?backoff, "the database does not answer yet; trying again");
                tokio::select! {
                    _ = &mut stop => return Ok(None),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Wakes each of `targets` whenever `notified` fires, until `shutdown`.
async fn forward_notifications(
    notified: Arc<Notify>,
    targets: [Arc<Notify>; 2],
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notified.notified() => targets.iter().for_each(|t| t.notify_one()),
        }
    }
}

/// Runs herald until a termination signal; returns when everything stopped.
pub async fn serve(config: Config) -> Result<(), Error> {
    // Before anything runs that counts: a backlog routed or delivered at
    // start is counted too.
    let metrics = install_metrics();
    // Lock first: a second herald must not migrate the schema under the first.
    crate::store::create_parent_dir(&config.database_path).map_err(|source| Error::Io {
        what: format!(
            "cannot create the directory of {}",
            config.database_path.display()
        ),
        source,
    })?;
    // SQLite: one router per file. PostgreSQL: any number share it.
    let _lock = match config.database_url {
        Some(_) => None,
        None => Some(lock_instance(&config.database_path)?),
    };
    let store = match open_waiting(&config).await? {
        Some(store) => store,
        None => return Ok(()),
    };
    match crate::surfaces::shared::ops::ensure_admin_password(&store, &config.database_path) {
        Ok(Some(path)) => tracing::warn!(
            file = %path.display(),
            "no admin password was set: generated one and wrote it to this file (readable only by herald's user); change it with `herald admin set-password`"
        ),
        Ok(None) => {}
        Err(e) => return Err(Error::Admin(e)),
    }
    store.release_claims()?;
    let pending = store.pending_deliveries()?;
    if pending > 0 {
        tracing::info!(
            pending,
            "deliveries waiting from before this start (those cut short by the last stop among them) will be sent again"
        );
    }
    let shutdown = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let routed = Arc::new(Notify::new());
    if let Some(notified) = store.notifications() {
        // PostgreSQL: another router, `herald emit` or a producer's SQL
        // queued events or made deliveries due.
        tokio::spawn(forward_notifications(
            notified,
            [wake.clone(), routed.clone()],
            shutdown.clone(),
        ));
    } else if let Err(e) =
        crate::pipeline::wake::listen(&config.database_path, wake.clone(), shutdown.clone())
    {
        // Not fatal: `herald emit` events are then routed on the next read.
        tracing::warn!(
            socket = %crate::pipeline::wake::socket_path(&config.database_path).display(),
            error = %e,
            "cannot bind the wake socket; events from `herald emit` wait for the next read_interval"
        );
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;

    // Settings saved in the web admin win over the config file; a saved
    // value this version refuses (e.g. a narrower range after an upgrade)
    // is ignored with a warning rather than keeping herald down.
    let saved = store.ui_settings()?;
    let effective = match config.with_ui(&saved) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "settings saved in the web admin are invalid; using the config file's until they are saved again");
            config.clone()
        }
    };
    let (live, live_rx) =
        tokio::sync::watch::channel(crate::base::live::Live::from_config(&effective));
    let live = Arc::new(live);
    let limits = listener::Limits::from_config(&config);
    // An SSE subscriber holds a listener connection for as long as it
    // streams: at most half of them, so ingest, the API and the web admin
    // always find one.
    let hub = Arc::new(crate::pipeline::stream::Hub::new(
        config.stream_buffer,
        config.stream_max_subscribers,
        limits.max_connections / 2,
    ));
    let router_task = tokio::spawn(crate::pipeline::router::run(
        store.clone(),
        live_rx.clone(),
        config.router_batch_size,
        wake.clone(),
        routed.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    let health_poke = Arc::new(Notify::new());
    let deliverer = Deliverer::new(
        store.clone(),
        Settings {
            concurrency: config.delivery_concurrency,
            shutdown_grace: config.shutdown_grace,
            max_logged_body_bytes: config.max_logged_body_bytes,
            max_retry_after: config.max_retry_after,
            networks: crate::engines::http::guard::NetworkGuard::from_config(&config),
        },
        shutdown.clone(),
        health_poke.clone(),
    )?;
    let heartbeat = Arc::new(crate::pipeline::heartbeat::Heartbeat::default());
    let deliver_task = tokio::spawn(deliverer.clone().run(
        routed.clone(),
        live_rx.clone(),
        heartbeat.clone(),
    ));
    let mailer = config
        .smtp
        .as_ref()
        .map(crate::engines::mail::Mailer::new)
        .transpose()?;
    let health_task = tokio::spawn(crate::pipeline::health::run(
        store.clone(),
        live_rx.clone(),
        health_poke,
        wake.clone(),
        mailer,
        shutdown.clone(),
    ));
    let cleanup_task = tokio::spawn(crate::pipeline::cleanup::run(
        store.clone(),
        live_rx,
        config.cleanup_batch_size,
        shutdown.clone(),
    ));
    let keys = Arc::new(crate::surfaces::shared::keys::KeyCache::new(store.clone()));
    keys.reload().await?;
    let keys_task = tokio::spawn(keys.clone().run(shutdown.clone()));
    // Histogram samples wait in the recorder until drained: every few
    // seconds, so memory stays flat when nobody scrapes.
    let upkeep_task = metrics.clone().map(|handle| {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        })
    });
    let state = AppState {
        metrics,
        keys,
        store: store.clone(),
        wake,
        deliver_wake: routed,
        deliverer,
        config: Arc::new(config.clone()),
        live,
        logins: Default::default(),
        shutdown: shutdown.clone(),
        hub,
    };
    crate::surfaces::web::compile_pages();
    let app = listener_routes(state);
    let http_task = tokio::spawn(listener::serve(listener, app, limits, shutdown.clone()));
    // Tests and scripts wait for this exact line.
    tracing::info!(listen = %local, database = %store.describe(), "herald ready");
    let notifier = systemd::Notifier::from_env().map(Arc::new);
    let mut watchdog_task = None;
    if let Some(n) = &notifier {
        n.notify("READY=1");
        if let Some(interval) = systemd::watchdog_interval() {
            watchdog_task = Some(tokio::spawn(systemd::feed_watchdog(
                n.clone(),
                heartbeat,
                interval,
                shutdown.clone(),
            )));
        }
    }

    termination().await;
    tracing::info!("stopping: no new work is taken");
    if let Some(n) = &notifier {
        n.notify("STOPPING=1");
    }
    shutdown.cancel();
    if let Some(t) = watchdog_task {
        let _ = t.await;
    }
    let _ = router_task.await;
    let _ = cleanup_task.await;
    let _ = health_task.await;
    let _ = keys_task.await;
    if let Some(t) = upkeep_task {
        let _ = t.await;
    }
    let _ = deliver_task.await;
    // The listener's open connections are not waited for past the grace.
    let _ = tokio::time::timeout(config.shutdown_grace, http_task).await;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the process's metrics recorder (counters and histograms of
/// [`crate::base::metrics`]); `None`, with a warning, when one is already
/// installed.
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let built = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(crate::base::metrics::DELIVERY_DURATION.into()),
            crate::base::metrics::DURATION_BUCKETS,
        )
        .and_then(|b| b.install_recorder());
    match built {
        Ok(handle) => {
            crate::base::metrics::describe();
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics are not recorded: GET /metrics answers 503");
            None
        }
    }
}

/// Every route of the listener, with the body limit applied: `/healthz`,
/// `/login` and `/static/` open; everything under `/api/` behind an API key
/// or a web admin session; every page behind a session.
pub fn listener_routes(state: AppState) -> axum::Router {
    let max_body_bytes = state.config.max_body_bytes;
    axum::Router::new()
        .merge(crate::surfaces::api::router(state.clone()))
        .merge(crate::surfaces::web::router(state.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
