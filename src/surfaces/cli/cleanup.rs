//! `herald cleanup --now`: the retention job, once.

use std::process::ExitCode;

use anyhow::Context;

use crate::base::config::Config;
use crate::store::Store;
use anyhow::bail;
use clap::Args;

/// Arguments of `herald cleanup`.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Run it once, now (required: the schedule runs inside `herald serve`).
    #[arg(long)]
    pub now: bool,
}

/// `herald cleanup --now`: deletes what is past retention.
pub fn cleanup(config: &Config, args: CleanupArgs) -> anyhow::Result<ExitCode> {
    let CleanupArgs { now } = args;
    if !now {
        bail!(
            "the cleanup schedule runs inside `herald serve`; use `herald cleanup --now` to run it once"
        );
    }
    let store = Store::open_configured(config)?;
    // The retention saved in the web admin wins, as in `serve`.
    let config = config
        .with_ui(&store.ui_settings()?)
        .context("the settings saved in the web admin are invalid; save them again")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop = tokio_util::sync::CancellationToken::new();
    // Millions of rows take a while: a running count on a terminal, nothing
    // in a script or a log.
    let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = rt.block_on(crate::pipeline::cleanup::run_once(
        &store,
        config.retention,
        config.cleanup_batch_size,
        &stop,
        &|r| {
            spinner.set_message(format!(
                "deleting: {} log entries, {} events so far",
                r.log_entries, r.events
            ))
        },
    ));
    spinner.finish_and_clear();
    let report = report?;
    println!(
        "deleted {} log entries and {} events older than {} days",
        report.log_entries,
        report.events,
        config.retention.as_secs() / 86_400
    );
    Ok(ExitCode::SUCCESS)
}
