//! Test fixtures: the real `herald` binary on a temp database and port, and
//! a real HTTP receiver on 127.0.0.1 whose answers can be changed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

/// Longest a test waits for something that should happen promptly. A bound
/// on hanging, not a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A herald data directory with its environment; runs CLI commands and servers.
/// In the PostgreSQL suite (`tests/pg`), also a PostgreSQL server of its
/// own, named by `HERALD_DATABASE_URL`.
pub struct Herald {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub postgres: Option<crate::pg_server::TempPostgres>,
}

/// Whether this suite runs herald on PostgreSQL (`tests/pg`) or SQLite.
pub fn on_postgres() -> bool {
    crate::backend::POSTGRES
}

impl Herald {
    /// A fresh temp dir with a database path and a listener on port 0.
    pub fn new() -> Herald {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        let postgres = on_postgres().then(crate::pg_server::TempPostgres::start);
        let mut h = Herald {
            env: vec![
                ("HERALD_DATABASE_PATH".into(), db.display().to_string()),
                ("HERALD_SERVER_LISTEN".into(), "127.0.0.1:0".into()),
                ("HERALD_ROUTER_READ_INTERVAL".into(), "0.2".into()),
                ("HERALD_DELIVERY_SHUTDOWN_GRACE".into(), "5".into()),
                // Receivers are on loopback, which the SSRF guard refuses
                // by default; the guard's own tests remove this.
                (
                    "HERALD_DELIVERY_ALLOW_NETWORKS".into(),
                    "127.0.0.0/8,::1/128".into(),
                ),
            ],
            dir,
            postgres,
        };
        if let Some(pg) = &h.postgres {
            let url = pg.url("postgres");
            h.set_env("HERALD_DATABASE_URL", &url);
            // Tests of leases take over quickly.
            h.set_env("HERALD_DATABASE_LEASE", "3");
        }
        h
    }

    /// Sets (or replaces) an environment variable for every command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Removes an environment variable from every command.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// The database file (`HERALD_DATABASE_PATH`).
    pub fn db(&self) -> PathBuf {
        self.env
            .iter()
            .find(|(k, _)| k == "HERALD_DATABASE_PATH")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| self.dir.path().join("herald.db"))
    }

    /// The `herald` binary with this herald's environment, not yet run.
    pub fn command(&self) -> Command {
        self.with_env(Command::new(env!("CARGO_BIN_EXE_herald")))
    }

    /// `c` in the data directory with this herald's environment.
    fn with_env(&self, mut c: Command) -> Command {
        c.current_dir(self.dir.path());
        c.env_remove("HERALD_CONFIG");
        c.env("HERALD_LOG", "info,herald=debug");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `herald ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    /// Runs `herald ARGS` with `stdin` piped in.
    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().expect("spawn herald");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `herald ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "herald {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `herald ARGS` with `stdin`, asserting success; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli_stdin(args, Some(stdin));
        assert!(
            out.status.success(),
            "herald {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Adds a webhook through the CLI; returns its id.
    pub fn add_webhook(&self, args: &[&str]) -> i64 {
        let mut all = vec!["webhook", "add"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        out.split_whitespace()
            .nth(2)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no id in {out:?}"))
    }

    /// Adds a webhook `name` posting to `url` for every event, with `extra`
    /// flags of `herald webhook add`; returns its id.
    pub fn add(&self, name: &str, url: &str, extra: &[&str]) -> i64 {
        let mut args = vec!["--name", name, "--url", url, "--events", "*"];
        args.extend_from_slice(extra);
        self.add_webhook(&args)
    }

    /// Makes an API key with `scope` (`read` or `admin`); returns the key.
    pub fn api_key(&self, scope: &str) -> String {
        self.ok(&[
            "admin", "api-key", "create", "--name", "tests", "--scope", scope,
        ])
        .trim()
        .to_owned()
    }

    /// Starts `herald serve` and waits until it is ready. Its `key` is an
    /// admin API key made for the test's API calls.
    pub fn serve(&self) -> Server {
        let mut c = self.command();
        c.arg("serve");
        self.start(c)
    }

    /// Starts `herald serve` with at most `n` open files (`ulimit -n`), as
    /// on an appliance with a small limit.
    pub fn serve_with_open_files(&self, n: u32) -> Server {
        let mut c = self.with_env(Command::new("sh"));
        c.args([
            "-c",
            &format!("ulimit -n {n} && exec \"$0\" serve"),
            env!("CARGO_BIN_EXE_herald"),
        ]);
        self.start(c)
    }

    /// Starts a prepared `herald serve` command and waits until it is ready.
    fn start(&self, mut c: Command) -> Server {
        let key = self.api_key("admin");
        c.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = c.spawn().expect("spawn herald serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("herald ready")
                    && let Some(tx) = tx.take()
                {
                    let addr = line
                        .split("listen=")
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .map(str::to_owned);
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(Some(a)) => a.parse().unwrap(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "herald serve did not become ready:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child: Some(child),
            addr,
            log,
            key,
        }
    }

    /// Runs one SQL statement on the database (as the appliance would).
    pub fn sql(&self, sql: &str) {
        if let Some(pg) = &self.postgres {
            pg.psql("postgres", sql);
            return;
        }
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch(sql).unwrap();
    }

    /// Reads one integer with a SQL query.
    pub fn sql_count(&self, sql: &str) -> i64 {
        if let Some(pg) = &self.postgres {
            let out = pg.psql("postgres", sql);
            // psql shows booleans as t/f; SQLite stores them as 1/0.
            return match out.lines().next().unwrap_or_default() {
                "t" => 1,
                "f" => 0,
                first => first
                    .parse()
                    .unwrap_or_else(|_| panic!("{sql}: not a number: {out:?}")),
            };
        }
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Reads the first column of every row of a SQL query, as text.
    pub fn sql_rows(&self, sql: &str) -> Vec<String> {
        if let Some(pg) = &self.postgres {
            let out = pg.psql("postgres", sql);
            return out
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect();
        }
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = c.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// SQL for the RFC 3339 time `days` days ago, in this backend's dialect.
    pub fn sql_days_ago(&self, days: i64) -> String {
        if self.postgres.is_some() {
            format!(
                "to_char((now() - interval '{days} days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            )
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{days} days')")
        }
    }

    /// SQL for the text at dotted `path` of JSON text `column`, in this
    /// backend's dialect.
    pub fn sql_json_text(&self, column: &str, path: &str) -> String {
        if self.postgres.is_some() {
            format!("({column}::jsonb #>> '{{{}}}')", path.replace('.', ","))
        } else {
            format!("json_extract({column}, '$.{path}')")
        }
    }

    /// Waits until a SQL count reaches at least `n`.
    pub fn wait_sql(&self, sql: &str, n: i64) {
        eventually(sql, || self.sql_count(sql) >= n);
    }

    /// The event log as JSON, through `herald log --json`.
    pub fn log(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["log", "--json", "--limit", "10000"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Waits until the log holds `n` entries matching `extra` filters.
    pub fn wait_log(&self, extra: &[&str], n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let log = self.log(extra);
            if log.len() >= n {
                return log;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "expected {n} log entries for {extra:?}, have {}: {log:#?}",
                    log.len()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A running `herald serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// Where its listener is.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// An admin API key for the tests' API calls.
    pub key: String,
}

impl Server {
    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An HTTP client sending this server's admin API key.
    pub fn client(&self) -> reqwest::Client {
        bearer_client(&self.key)
    }

    /// Sends an API request with the admin key; see [`send_with`].
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&str>,
    ) -> (u16, Value) {
        send_with(&self.client(), method, url, body).await
    }

    /// The text answer to a GET of `path` with the admin key.
    pub async fn get_text(&self, path: &str) -> String {
        get_text(&self.client(), self.url(path)).await
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("herald did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: std::time::Instant,
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    /// A request as an axum handler sees it.
    fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Received {
        Received {
            at: std::time::Instant::now(),
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    status: Mutex<u16>,
    delay: Mutex<Duration>,
    /// When set, requests without exactly this Authorization get 401.
    required_auth: Mutex<Option<String>>,
    /// Answer body; `{n}` is replaced by the number of this request (1, 2, …),
    /// so the receiver can also play an auth server issuing tok-1, tok-2, ….
    body: Mutex<String>,
    /// Extra response headers.
    headers: Mutex<Vec<(String, String)>>,
    /// The next this-many requests get this status instead.
    fail_next: Mutex<(usize, u16)>,
    /// Requests being answered now, and the most seen at once.
    in_flight: Mutex<(usize, usize)>,
}

/// A real HTTP receiver on 127.0.0.1:0 recording every request.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let n = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Received::new(&method, &uri, &headers, &body));
        requests.len()
    };
    {
        let mut f = state.in_flight.lock().unwrap();
        f.0 += 1;
        f.1 = f.1.max(f.0);
    }
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    state.in_flight.lock().unwrap().0 -= 1;
    let extra: Vec<(String, String)> = state.headers.lock().unwrap().clone();
    let mut out_headers = HeaderMap::new();
    for (k, v) in extra {
        out_headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let forced = {
        let mut f = state.fail_next.lock().unwrap();
        if f.0 > 0 {
            f.0 -= 1;
            Some(f.1)
        } else {
            None
        }
    };
    if let Some(status) = forced {
        return (
            StatusCode::from_u16(status).unwrap(),
            out_headers,
            "forced failure".to_owned(),
        );
    }
    let required = state.required_auth.lock().unwrap().clone();
    if let Some(required) = required
        && headers.get("authorization").map(|v| v.as_bytes()) != Some(required.as_bytes())
    {
        return (
            StatusCode::UNAUTHORIZED,
            out_headers,
            "who are you?".to_owned(),
        );
    }
    let status = *state.status.lock().unwrap();
    let body = state.body.lock().unwrap().replace("{n}", &n.to_string());
    (StatusCode::from_u16(status).unwrap(), out_headers, body)
}

impl Receiver {
    /// Starts a receiver answering 200 at once.
    pub async fn start() -> Receiver {
        Receiver::start_with_body("receiver says hi").await
    }

    /// Starts a receiver answering 200 with `body` (`{n}` = request number),
    /// e.g. an auth server: `{"auth_token": "tok-{n}"}`.
    pub async fn start_with_body(body: &str) -> Receiver {
        Receiver::start_on(0, body).await
    }

    /// Starts a receiver on 127.0.0.1:`port` (0: any), e.g. on the port of
    /// an endpoint that was down, so it comes back.
    pub async fn start_on(port: u16, body: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Receiver::start_listening(listener, body)
    }

    /// A receiver on `reserved`'s port, answering 200 with `body`.
    pub async fn start_reserved(reserved: ReservedPort, body: &str) -> Receiver {
        Receiver::start_listening(reserved.socket.listen(1024).unwrap(), body)
    }

    fn start_listening(listener: tokio::net::TcpListener, body: &str) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        *state.status.lock().unwrap() = 200;
        *state.body.lock().unwrap() = body.to_owned();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer with this status from now on.
    pub fn set_status(&self, status: u16) {
        *self.state.status.lock().unwrap() = status;
    }

    /// Answer 401 unless the Authorization header is exactly this.
    pub fn require_auth(&self, value: Option<&str>) {
        *self.state.required_auth.lock().unwrap() = value.map(str::to_owned);
    }

    /// Add this header to every answer from now on.
    pub fn set_header(&self, name: &str, value: &str) {
        self.state
            .headers
            .lock()
            .unwrap()
            .push((name.to_owned(), value.to_owned()));
    }

    /// Answer the next `n` requests with `status`, then as before.
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.state.fail_next.lock().unwrap() = (n, status);
    }

    /// The most requests it was answering at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.in_flight.lock().unwrap().1
    }

    /// Wait this long before answering, from now on.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("expected {n} requests, received {}: {got:#?}", got.len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A listener on 127.0.0.1:`port` that accepts connections and closes them
/// at once (the client sees a reset), until dropped.
pub struct Dropper {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Dropper {
    /// Starts dropping connections on `port`.
    pub async fn start(port: u16) -> Dropper {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        Dropper { task: Some(task) }
    }

    /// Stops it; the port is free when this returns.
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Dropper {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// A 127.0.0.1 port bound but not listening: connections to it are
/// refused, and no other socket (another test's, an outgoing connection's)
/// can take it before [`Receiver::start_reserved`] listens on it.
pub struct ReservedPort {
    socket: tokio::net::TcpSocket,
    /// The port.
    pub port: u16,
}

impl ReservedPort {
    /// Reserves a free port.
    pub fn new() -> ReservedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        ReservedPort { socket, port }
    }
}

/// A 127.0.0.1 port with nothing listening on it.
pub fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Path of a file in the repository.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Writes `content` to `name` in the fixture dir; returns its path as text.
pub fn write_file(h: &Herald, name: &str, content: &str) -> String {
    let p = h.dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// Checks a signature with the independent verifier (tests/verify_signature.py,
/// built on the reference `standardwebhooks` library and Python's hmac).
/// Returns Ok on a valid signature, Err with the verifier's reason otherwise.
pub fn verify_signature(input: &Value) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(repo_file("tests/verify_signature.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        _ => panic!(
            "verifier could not run: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Polls `check` until it holds; fails the test after [`PATIENCE`].
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited in vain for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text answer to a GET of `url` with `client`, whatever its status.
pub async fn get_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// An HTTP client sending `Authorization: Bearer {key}` on every request.
pub fn bearer_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Sends an API request with `client`; returns the status and the JSON
/// answer (or the text as a JSON string, or null when empty).
pub async fn send_with(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}
