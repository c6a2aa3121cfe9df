//! `herald admin …`: the admin password and API keys.

use std::process::ExitCode;

use anyhow::Context;

use crate::base::config::Config;
use crate::store::Store;
use crate::surfaces::shared::ops;
use clap::Subcommand;

/// `herald admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the admin password, read from standard input (one line), e.g.
    /// `read -rs P && printf '%s' "$P" | herald admin set-password`.
    /// Removes the generated initial-admin-password file.
    SetPassword,
    /// API keys for the REST API (`Authorization: Bearer hk_…`).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

/// `herald admin api-key …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key; it is printed once (only its digest is kept).
    Create {
        /// What uses it, e.g. "monitoring".
        #[arg(long)]
        name: String,
        /// `read` (GET only, the live stream included), `admin`
        /// (everything), `stream` (only the live stream, within --events and
        /// --match) or `ingest` (only POST /api/v1/events).
        #[arg(long, default_value = "read")]
        scope: String,
        /// A stream key's event patterns, comma-separated (`ticket.*`,
        /// `system.backup.*`); default `*`.
        #[arg(long)]
        events: Option<String>,
        /// A stream key's match filter FIELD=VALUE on an event field or dot
        /// path (`backend_group=fidelio`, `backend_data.pms.room=214`);
        /// repeat for more (all must hold). Always applied to its streams.
        #[arg(long = "match", value_name = "FIELD=VALUE")]
        matches: Vec<String>,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it is refused from now on.
    Revoke {
        /// Key id (from `list`).
        id: i64,
    },
}

/// `herald admin …`.
pub fn run(config: &Config, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::SetPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            let store = Store::open_configured(config)?;
            ops::set_password(&store, password, None)?;
            ops::remove_initial_password(&config.database_path)?;
            println!("admin password set");
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create {
            name,
            scope,
            events,
            matches,
        }) => {
            let scope: crate::engines::access::Scope = scope
                .parse()
                .map_err(|m: String| ops::Error::BadRequest(m))?;
            let limits = if events.is_some() || !matches.is_empty() {
                Some(
                    crate::base::subscription::Subscription::parse(
                        events.as_deref().unwrap_or(""),
                        &matches,
                    )
                    .map_err(ops::Error::BadRequest)?,
                )
            } else {
                None
            };
            let store = Store::open_configured(config)?;
            let (k, key) = ops::create_api_key(&store, &name, scope, limits)?;
            eprintln!(
                "created API key {} ({}, {}); it is shown only now:",
                k.id,
                k.name,
                k.scope.as_str()
            );
            println!("{key}");
        }
        AdminCommand::ApiKey(ApiKeyCommand::List { json }) => {
            let store = Store::open_existing_configured(config)?;
            let keys = store.api_keys()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no API keys; make one with `herald admin api-key create`");
            } else {
                for k in keys {
                    println!(
                        "{:>4}  {:<6} {:<14} {:<24} created {}{}{}",
                        k.id,
                        k.scope.as_str(),
                        k.hint,
                        k.name,
                        k.created_at,
                        k.limits
                            .map(|l| format!(", limited to {}", l.describe()))
                            .unwrap_or_default(),
                        k.revoked_at
                            .map(|r| format!(", REVOKED {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Revoke { id }) => {
            let store = Store::open_existing_configured(config)?;
            ops::revoke_api_key(&store, id)?;
            println!("revoked API key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
