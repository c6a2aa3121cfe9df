//! `herald check-config`: the configuration as herald will use it.

use std::process::ExitCode;

use crate::base::config::Config;

/// Prints the validated configuration.
pub fn check_config(config: &Config) -> ExitCode {
    println!("configuration is valid");
    println!("  server.listen            = {}", config.listen);
    println!("  server.max_body_bytes    = {}", config.max_body_bytes);
    println!("  server.header_timeout    = {:?}", config.header_timeout);
    println!("  server.body_timeout      = {:?}", config.body_timeout);
    println!("  server.max_connections   = {}", config.max_connections);
    match &config.database_url {
        Some(url) => println!("  database.url             = {url}"),
        None => println!("  database.url             = (none: SQLite at database.path)"),
    }
    println!(
        "  database.path            = {}",
        config.database_path.display()
    );
    println!(
        "  database.durability      = {}",
        match config.durability {
            crate::base::config::Durability::Full => "full",
            crate::base::config::Durability::Normal => "normal",
        }
    );
    println!("  database.busy_timeout    = {:?}", config.busy_timeout);
    println!(
        "  database.min_free_mb     = {}",
        config.min_free_bytes / 1_000_000
    );
    println!("  router.read_interval     = {:?}", config.read_interval);
    println!("  router.batch_size        = {}", config.router_batch_size);
    println!(
        "  delivery.concurrency     = {}",
        config.delivery_concurrency
    );
    println!("  delivery.shutdown_grace  = {:?}", config.shutdown_grace);
    println!(
        "  delivery.max_logged_body_bytes = {}",
        config.max_logged_body_bytes
    );
    println!(
        "  cleanup.schedule         = {}",
        config.cleanup_schedule_text
    );
    println!(
        "  cleanup.retention_days   = {}",
        config.retention.as_secs() / 86_400
    );
    println!("  cleanup.batch_size       = {}", config.cleanup_batch_size);
    println!(
        "  stream.max_subscribers   = {}",
        config.stream_max_subscribers
    );
    println!("  stream.buffer            = {}", config.stream_buffer);
    println!(
        "  log.format               = {}",
        match config.log_format {
            crate::base::config::LogFormat::Text => "text",
            crate::base::config::LogFormat::Json => "json",
        }
    );
    println!("  delivery.max_retry_after = {:?}", config.max_retry_after);
    println!(
        "  delivery.pause_after     = {}",
        config
            .pause_after
            .map(|d| format!("{d:?}"))
            .unwrap_or_else(|| "never".into())
    );
    let list = |nets: &[ipnet::IpNet]| {
        let items: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        format!("[{}]", items.join(", "))
    };
    println!(
        "  delivery.deny_networks   = {}",
        list(&config.deny_networks)
    );
    println!(
        "  delivery.allow_networks  = {}",
        list(&config.allow_networks)
    );
    println!("  delivery.deny_private    = {}", config.deny_private);
    println!("  alerts.after             = {:?}", config.alert_after);
    match &config.smtp {
        None => println!("  alerts.smtp_host         = (e-mail alerts off)"),
        Some(s) => {
            println!(
                "  alerts.smtp_host         = {}:{} ({:?})",
                s.host, s.port, s.tls
            );
            println!(
                "  alerts.smtp_username     = {}",
                s.username.as_deref().unwrap_or("(none)")
            );
            println!(
                "  alerts.smtp_password     = {}",
                if s.password.expose().is_empty() {
                    "(none)"
                } else {
                    "***"
                }
            );
            println!("  alerts.smtp_from         = {}", s.from);
            println!("  alerts.smtp_to           = [{}]", s.to.join(", "));
        }
    }
    println!("  alerts.interval          = {:?}", config.alert_interval);
    ExitCode::SUCCESS
}
