//! The `herald` binary: parses the command line, sets up logging, and hands
//! over to the library.

use std::process::ExitCode;

use clap::Parser;
use herald::surfaces::cli::{Cli, Command};

/// Output to a closed pipe (`herald log | head`) ends herald quietly, as a
/// SIGPIPE ends other Unix tools (status 141), instead of with a panic
/// message from `println!`.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// glibc gives threads that allocate heaps of their own (up to 8 per core)
/// and keeps freed memory in each; herald parses events on whichever
/// thread of the blocking pool runs the router, so a 1,000,000-event backlog
/// grew to 110 MiB (84/92/101 MiB at 25/50/75 %). Two heaps: 33 MiB, flat
/// (`cargo bench --bench e2e -- backlog`, BENCHMARKS.md). A
/// `MALLOC_ARENA_MAX` set by the user wins.
fn fewer_malloc_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator, and runs first in main,
        // before any other thread exists. (The library forbids unsafe code;
        // this is the binary's one exception.)
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Writes a line to stderr; a stderr that cannot be written (a full disk,
/// a closed pipe) loses the line instead of panicking.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Logs to stderr, filtered by `HERALD_LOG`, as text or as one JSON object
/// per line (`log.format`, for log shippers).
fn start_logging(format: herald::base::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk, a closed
        // pipe) is dropped. By default the subscriber reports that with
        // `eprintln!`, which panics when stderr fails: the request being
        // logged died with its connection unanswered.
        .log_internal_errors(false);
    match format {
        herald::base::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        herald::base::config::LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn main() -> ExitCode {
    fewer_malloc_heaps();
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let config = match herald::surfaces::cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("herald: invalid configuration: {e:#}"));
            return ExitCode::from(2);
        }
    };
    start_logging(config.log_format);
    let result = match cli.command {
        Command::Serve => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(herald::app::serve(config))
                    .map_err(anyhow::Error::from)
            })
            .map(|()| ExitCode::SUCCESS),
        _ => herald::surfaces::cli::run(cli, config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say(format_args!("herald: {e:#}"));
            // Refused input (a bad event or webhook setting) is the user's to fix.
            let user_error = e
                .downcast_ref::<herald::surfaces::shared::ops::Error>()
                .is_some_and(|a| !matches!(a, herald::surfaces::shared::ops::Error::Store(_)))
                || e.downcast_ref::<herald::base::event::Error>().is_some()
                || e.downcast_ref::<herald::engines::render::Error>().is_some()
                || e.downcast_ref::<herald::spec::field::FieldError>()
                    .is_some();
            // The database cannot take writes for now (disk full, locked,
            // read-only): EX_TEMPFAIL, so a producer's script knows to retry.
            let storage = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<herald::store::Error>(),
                    Some(herald::store::Error::Storage { .. })
                ) || matches!(
                    c.downcast_ref::<herald::surfaces::shared::ops::Error>(),
                    Some(herald::surfaces::shared::ops::Error::Store(
                        herald::store::Error::Storage { .. }
                    ))
                )
            });
            ExitCode::from(if storage {
                75
            } else if user_error {
                2
            } else {
                1
            })
        }
    }
}
