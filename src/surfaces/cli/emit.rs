//! `herald emit`: queue an event from the command line.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::base::config::Config;
use crate::store::Store;
use crate::surfaces::shared::ops;
use anyhow::bail;
use clap::Args;

use super::input::read_text;
use crate::base::event::NewEvent;

/// Arguments of `herald emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Event type, e.g. ticket.login.
    #[arg(value_name = "TYPE")]
    pub kind: Option<String>,
    /// Ticket id.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Event data as a JSON object.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Event data from a JSON file.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// Event uuid (default: generated).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Event time, RFC 3339 (default: now).
    #[arg(long)]
    pub created_at: Option<String>,
}

/// `herald emit`: validates, queues, wakes a running server.
pub fn run(config: &Config, args: EmitArgs) -> anyhow::Result<ExitCode> {
    let event = match args.kind {
        Some(kind) => {
            let data = match (args.data, args.data_file) {
                (Some(d), _) => Some(serde_json::from_str(&d).context("--data is not valid JSON")?),
                (None, Some(f)) => Some(
                    serde_json::from_str(&read_text(&f)?)
                        .with_context(|| format!("{} is not valid JSON", f.display()))?,
                ),
                (None, None) => None,
            };
            NewEvent {
                kind,
                uuid: args.uuid,
                created_at: args.created_at,
                ticket_id: args.ticket,
                data,
            }
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!(
                    "give an event TYPE, or pipe an event as JSON to stdin (see herald emit --help)"
                );
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            let mut e: NewEvent =
                serde_json::from_str(&text).context("stdin is not an event as JSON")?;
            // Flags given next to stdin win.
            if args.ticket.is_some() {
                e.ticket_id = args.ticket;
            }
            if args.uuid.is_some() {
                e.uuid = args.uuid;
            }
            if args.created_at.is_some() {
                e.created_at = args.created_at;
            }
            e
        }
    };
    let store = Store::open_configured(config)?;
    let queued = ops::queue_event(&store, event)?;
    crate::pipeline::wake::send(&config.database_path);
    println!("{}", queued.uuid);
    Ok(ExitCode::SUCCESS)
}
