//! A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries,
//! `initdb` in a temp directory, listening on 127.0.0.1 only, on a port the
//! OS had free; stopped (immediately) when dropped. As root, the server runs
//! as the `postgres` user (`initdb` refuses root). Plain std, so the
//! integration tests include this file too.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server; `url(db)` names a database on it.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Databases made so far in this process (their names).
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The directory of PostgreSQL's server binaries: Debian keeps them off PATH.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|b| b.join("initdb").exists())
        .unwrap_or_else(|| {
            let initdb = which("initdb").expect(
                "PostgreSQL's initdb not found: install Debian's postgresql package (.ci/run does)",
            );
            initdb.parent().unwrap().to_owned()
        })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

impl TempPostgres {
    /// Initialises and starts a server; panics with the server's own words
    /// when it cannot.
    pub fn start() -> TempPostgres {
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the server's directory");
        }
        let server = TempPostgres {
            dir,
            bin: bin_dir(),
            port: free_port(),
            as_postgres,
        };
        let data = server.data_dir();
        let out = server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "--no-sync",
                "-A",
                "trust",
                "-U",
                "herald",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        server.start_again();
        server.stop_with_this_process();
        server
    }

    /// A watcher that stops the server once this process is gone, even
    /// killed (a test timed out): no server outlives its test.
    fn stop_with_this_process(&self) {
        let stop = format!(
            "{} -D {} -m immediate stop",
            self.bin.join("pg_ctl").display(),
            self.data_dir().display()
        );
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1",
            pid = std::process::id()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's binaries (as `postgres` when root).
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }

    /// Starts the server (again, after [`TempPostgres::stop`]) on the same
    /// port and data; waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once (like a crash: no checkpoint, connections cut).
    pub fn stop(&self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// PostgreSQL's own rate of small write transactions on this server
    /// (pgbench's built-in "simple update" script: three statements and a
    /// commit; 8 clients for `seconds`), for benchmarks: transactions/s.
    pub fn pgbench(&self, seconds: u32) -> f64 {
        let port = self.port.to_string();
        let common = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "herald"];
        let init = self.run(
            "pgbench",
            &[&common[..], &["-i", "-q", "postgres"]].concat(),
        );
        assert!(init.status.success(), "pgbench -i: {}", text(&init));
        let t = seconds.to_string();
        let args = [
            &common[..],
            &["-n", "-N", "-c", "8", "-j", "2", "-T", &t, "postgres"],
        ]
        .concat();
        let out = self.run("pgbench", &args);
        assert!(out.status.success(), "pgbench: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("pgbench prints tps")
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database on this server, and its URL.
    pub fn new_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("herald_{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `db` (user `herald`, no password: trust).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://herald@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in database `db` with psql; panics on failure; returns
    /// its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "herald",
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether this process runs as root (the `id -u` of the test).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
