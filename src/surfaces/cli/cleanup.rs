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
    let report = rt.block_on(crate::pipeline::cleanup::run_once(
        &store,
        config.retention,
        config.cleanup_batch_size,
        &stop,
    ))?;
    println!(
        "deleted {} log entries and {} events older than {} days",
        report.log_entries,
        report.events,
        config.retention.as_secs() / 86_400
    );
    Ok(ExitCode::SUCCESS)
}
