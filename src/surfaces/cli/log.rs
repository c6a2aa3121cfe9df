//! `herald log` (the event log), `herald deliveries` (deliveries and their
//! states) and `herald retry` (send finished deliveries again).

use std::process::ExitCode;

use crate::base::config::Config;
use crate::store::Store;
use crate::surfaces::shared::ops;
use clap::Args;

use crate::store::LogFilter;

/// Arguments of `herald log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this webhook.
    #[arg(long)]
    pub webhook: Option<i64>,
    /// Only this event uuid.
    #[arg(long, value_name = "UUID")]
    pub event: Option<String>,
    /// Only failed attempts and invalid events.
    #[arg(long)]
    pub failed: bool,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `herald deliveries`.
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Only this webhook.
    #[arg(long)]
    pub webhook: Option<i64>,
    /// Only this state: pending, delivered or failed.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this event uuid.
    #[arg(long, value_name = "UUID")]
    pub event: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `herald retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// One delivery (ids are in `herald deliveries` and `herald log`).
    #[arg(long, value_name = "ID")]
    pub delivery: Option<i64>,
    /// Deliveries of this webhook.
    #[arg(long, value_name = "ID")]
    pub webhook: Option<i64>,
    /// Only deliveries that failed for good (else delivered ones too).
    #[arg(long)]
    pub failed: bool,
    /// Events created at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Events created before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Then wait until the running herald has sent them all (a count on a
    /// terminal); exit status 1 when some failed for good.
    #[arg(long)]
    pub wait: bool,
}

/// `herald log`: the event log, newest first.
pub fn log(config: &Config, args: LogArgs) -> anyhow::Result<ExitCode> {
    let LogArgs {
        webhook,
        event,
        failed,
        limit,
        json,
    } = args;
    let store = Store::open_existing_configured(config)?;
    let entries = store.log_entries(&LogFilter {
        webhook_id: webhook,
        event_uuid: event,
        failed,
        before_id: None,
        limit,
        ..LogFilter::default()
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no log entries");
    }
    for e in entries {
        println!(
            "{}  {:<9} {:>4} {:>6}  {:<20} {:<28} {}  {}",
            e.at,
            e.outcome,
            e.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            e.duration_ms
                .map(|d| format!("{d}ms"))
                .unwrap_or_else(|| "-".into()),
            e.webhook_name.as_deref().unwrap_or("-"),
            e.event_type.as_deref().unwrap_or("-"),
            e.event_uuid.as_deref().unwrap_or("-"),
            e.error.as_deref().unwrap_or(""),
        );
        if let Some(d) = e.detail {
            println!("    > {} {}", d.request_method, d.request_url);
            for l in d.request_headers.lines() {
                println!("    > {l}");
            }
            if !d.request_body.is_empty() {
                println!("    > {}", d.request_body.replace('\n', "\n    > "));
            }
            for l in d.response_headers.unwrap_or_default().lines() {
                println!("    < {l}");
            }
            if let Some(b) = d.response_body.filter(|b| !b.is_empty()) {
                println!("    < {}", b.replace('\n', "\n    < "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald deliveries`: deliveries with their state.
pub fn deliveries(config: &Config, args: DeliveriesArgs) -> anyhow::Result<ExitCode> {
    let DeliveriesArgs {
        webhook,
        state,
        event,
        limit,
        json,
    } = args;
    if let Some(st) = &state
        && !["pending", "delivered", "failed"].contains(&st.as_str())
    {
        return Err(crate::spec::field::FieldError::new(
            "state",
            format!("--state {st:?} is not one of pending, delivered, failed (retrying, sending and paused are pending)"),
        )
        .into());
    }
    let store = Store::open_existing_configured(config)?;
    let rows = store.deliveries(&crate::store::DeliveryFilter {
        webhook_id: webhook,
        state,
        event_uuid: event,
        limit,
        ..Default::default()
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no deliveries");
    }
    for d in rows {
        println!(
            "{:>6}  {:<9} {:>3}×  {:<20} {:<28} {}  {}{}",
            d.id,
            d.status,
            d.attempts,
            d.webhook_name,
            d.event_type,
            d.event_uuid,
            d.last_error.as_deref().unwrap_or(""),
            d.next_attempt_at
                .map(|t| format!(" (next try {t})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald retry`: queues finished deliveries again.
pub fn retry(config: &Config, args: RetryArgs) -> anyhow::Result<ExitCode> {
    let RetryArgs {
        delivery,
        webhook,
        failed,
        from,
        to,
        wait,
    } = args;
    let store = Store::open_existing_configured(config)?;
    let ids = ops::replay(
        &store,
        &crate::store::Replay {
            delivery_id: delivery,
            webhook_id: webhook,
            failed_only: failed,
            from,
            to,
        },
    )?;
    println!("queued {} deliveries again", ids.len());
    if !wait || ids.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for(&store, &ids)
}

/// Follows the deliveries `ids` until none is pending: a bar on a
/// terminal, the outcome at the end.
fn wait_for(store: &Store, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(ids.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} sent {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut hinted = false;
    let (delivered, failed) = loop {
        let (pending, delivered, failed) = store.delivery_states(ids)?;
        bar.set_position((delivered + failed) as u64);
        bar.set_message(format!("({delivered} delivered, {failed} failed)"));
        if pending == 0 {
            break (delivered, failed);
        }
        if !hinted
            && delivered + failed == 0
            && started.elapsed() > std::time::Duration::from_secs(10)
        {
            hinted = true;
            bar.suspend(|| eprintln!("nothing sent in 10 s: is `herald serve` running (and the webhook not paused or disabled)? Ctrl-C stops waiting; the deliveries stay queued"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    bar.finish_and_clear();
    println!("sent: {delivered} delivered, {failed} failed");
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
