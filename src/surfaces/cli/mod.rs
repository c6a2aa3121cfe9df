//! The command line: `herald serve`, `emit`, `webhook …`, `render`, `test`,
//! `retry`, `deliveries`, `log`, `admin …`, `cleanup`, `check-config`.
//! Parsing is clap's; each command is a short function over the library.

//!
//! One file per command group: [`emit`], [`webhook`], [`render`] (and
//! `test`), [`log`] (and `deliveries`, `retry`), [`admin`], [`cleanup`],
//! [`config`] (`check-config`); [`input`] reads files and JSON flags for
//! them. `serve` is [`crate::app`].

pub mod admin;
pub mod cleanup;
pub mod config;
pub mod emit;
pub mod input;
pub mod log;
pub mod render;
pub mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::base::config::Config;

/// herald — templated event router: delivers the appliance's events to
/// webhooks, rendered from templates, and logs every attempt.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file laid over the built-in defaults (see config/herald.toml).
    /// Without it herald runs on defaults: database under ./data/, listener
    /// on 127.0.0.1:8470.
    #[arg(long, short, global = true, env = "HERALD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Environment: HERALD_<SECTION>_<KEY> overrides any config key (e.g. HERALD_ROUTER_READ_INTERVAL=1);
HERALD_LOG sets the log filter (e.g. debug, herald=trace).

Templates: placeholders <<event.uuid>>, <<event.type>>, <<event.created_at>>, <<event.ticket_id>>,
every data field by name (<<volume_used>>), dot paths (<<backend_data.pms.room>>); missing = empty.
Blocks: <% if … %>…<% endif %>, comments: <# … #>.";

/// herald's subcommands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router, the deliverer, the health monitor, the cleanup job and
    /// the HTTP listener: event ingest, REST API, the live event stream
    /// (GET /api/v1/stream, WebSocket or SSE) and the web admin at
    /// http://<server.listen>/ (first password in <database dir>/initial-admin-password).
    /// On SQLite (database.path) one serve per file; with database.url
    /// (HERALD_DATABASE_URL=postgres://…) any number of serves share one
    /// PostgreSQL database, and a server that does not answer yet is waited for.
    Serve,
    /// Queue an event. Without TYPE, reads a whole event as JSON from stdin
    /// ({"type": …, "ticket_id": …, "data": {…}}). Exits 2 when the event
    /// is refused, 75 when the database cannot take it now (disk full,
    /// below database.min_free_mb, locked, read-only, a PostgreSQL server
    /// that does not answer): try again later.
    Emit(emit::EmitArgs),
    /// Manage webhooks.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Print the exact request a webhook would send for an event, without sending it.
    Render(render::RenderArgs),
    /// Show the event log, newest first.
    Log(log::LogArgs),
    /// Send a sample event of a type to a webhook now, through the whole
    /// path (render, authentication, signing), and print the result. Works
    /// on disabled and paused webhooks; logged as a test. Exit status 1 when
    /// the endpoint did not accept it.
    Test(render::TestArgs),
    /// Send finished deliveries again (each resend is a new attempt in the
    /// log with the same event uuid): one delivery, a webhook's deliveries,
    /// and/or those of events in a time range. A running herald picks them
    /// up within a second.
    Retry(log::RetryArgs),
    /// List deliveries (one per event and webhook), newest first, with
    /// their status: pending, sending, retrying, paused, delivered, failed.
    Deliveries(log::DeliveriesArgs),
    /// The admin password and API keys.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Run the cleanup job (log and event retention).
    Cleanup(cleanup::CleanupArgs),
    /// Validate the configuration and print it as herald will use it.
    CheckConfig,
}

/// Loads the configuration for this invocation.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    // Only HERALD_* variables matter; others may not even be UTF-8.
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        if !k.as_encoded_bytes().starts_with(b"HERALD_") {
            continue;
        }
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => vars.push((k, v)),
            (k, _) => bail!("environment variable {k:?} is not valid UTF-8"),
        }
    }
    Ok(Config::load(cli.config.as_deref(), vars)?)
}

/// Runs a non-`serve` command. Errors a user must fix exit with 2, a
/// database that cannot be written now with 75, others 1 (see `main.rs`).
pub fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => unreachable!("serve is run by main"),
        Command::CheckConfig => Ok(config::check_config(&config)),
        Command::Emit(args) => emit::run(&config, args),
        Command::Webhook(cmd) => webhook::run(&config, cmd),
        Command::Render(args) => render::render(&config, args),
        Command::Log(args) => log::log(&config, args),
        Command::Test(args) => render::test(&config, args),
        Command::Retry(args) => log::retry(&config, args),
        Command::Deliveries(args) => log::deliveries(&config, args),
        Command::Admin(cmd) => admin::run(&config, cmd),
        Command::Cleanup(args) => cleanup::cleanup(&config, args),
    }
}
