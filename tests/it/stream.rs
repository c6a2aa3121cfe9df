//! The live stream, `GET /api/v1/stream`, through the real binary: real
//! WebSocket clients (tokio-tungstenite) and a real SSE reader over
//! loopback.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method as M;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::utils::{Herald, PATIENCE, Server, bearer_client, send_with};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Makes a key with `args` after `--scope`; returns it.
fn key(h: &Herald, args: &[&str]) -> String {
    let mut all = vec!["admin", "api-key", "create", "--name", "kiosk", "--scope"];
    all.extend_from_slice(args);
    h.ok(&all).trim().to_owned()
}

/// A stream key limited to `ticket.*` of backend group `fidelio`.
fn fidelio_kiosk(h: &Herald) -> String {
    key(
        h,
        &[
            "stream",
            "--events",
            "ticket.*",
            "--match",
            "backend_group=fidelio",
        ],
    )
}

/// Queues an event through the API (admin key); returns its uuid.
async fn post(s: &Server, kind: &str, ticket: Option<&str>, data: Value) -> String {
    let body = json!({"type": kind, "ticket_id": ticket, "data": data}).to_string();
    let (st, answer) = s.send(M::POST, s.url("/api/v1/events"), Some(&body)).await;
    assert_eq!(st, 202, "{answer}");
    answer["uuid"].as_str().unwrap().to_owned()
}

/// Opens a WebSocket to the stream with `query` (the key in `api_key`).
async fn ws(s: &Server, query: &str) -> Ws {
    let url = format!("ws://{}/api/v1/stream?{query}", s.addr);
    let (ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next message of `ws` that is not a ping or pong: JSON text, or the
/// close frame as `{"close": code, "reason": text}`, or `null` at the end.
async fn next_ws<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // One deadline for the whole wait: pings (every 15 s) do not extend it.
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((0, String::new()));
                    return json!({"close": code, "reason": reason});
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Value::Null,
            }
        }
    };
    tokio::time::timeout(PATIENCE, next)
        .await
        .expect("a WebSocket message in time")
}

/// A Server-Sent Events reader over a real HTTP response.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// One SSE block: its `id:` and `data:` (parsed), or a comment.
#[derive(Debug)]
enum SseItem {
    Event { id: i64, data: Value },
    Comment(String),
    End,
}

impl Sse {
    async fn open(s: &Server, key: &str, query: &str, last_event_id: Option<i64>) -> Sse {
        let resp = Self::request(s, key, query, last_event_id).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn request(
        s: &Server,
        key: &str,
        query: &str,
        last_event_id: Option<i64>,
    ) -> reqwest::Response {
        let mut req = bearer_client(key)
            .get(s.url(&format!("/api/v1/stream?{query}")))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        req.send().await.unwrap()
    }

    /// The next block (pings skipped).
    async fn next(&mut self) -> SseItem {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                let mut comment = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    } else if let Some(v) = line.strip_prefix(": ") {
                        comment = Some(v.to_owned());
                    }
                }
                match (id, data, comment) {
                    (Some(id), Some(data), _) => return SseItem::Event { id, data },
                    (_, _, Some(c)) if c == "ping" => continue,
                    (_, _, Some(c)) => return SseItem::Comment(c),
                    _ => panic!("unexpected SSE block {block:?}"),
                }
            }
            let chunk = tokio::time::timeout(PATIENCE, self.resp.chunk())
                .await
                .expect("SSE data in time");
            match chunk {
                Ok(Some(c)) => self.buf.push_str(std::str::from_utf8(&c).unwrap()),
                _ => return SseItem::End,
            }
        }
    }

    /// The next event's data (and id), failing on anything else.
    async fn event(&mut self) -> (i64, Value) {
        match self.next().await {
            SseItem::Event { id, data } => (id, data),
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// Events received until (and with) the one whose ticket is `marker`.
async fn ws_until(ws: &mut Ws, marker: &str) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let m = next_ws(ws).await;
        assert!(m["uuid"].is_string(), "expected an event, got {m}");
        let done = m["ticket_id"] == marker;
        got.push(m);
        if done {
            return got;
        }
    }
}

async fn sse_until(sse: &mut Sse, marker: &str) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let (id, m) = sse.event().await;
        assert_eq!(m["id"], id, "the SSE id is the stream position");
        let done = m["ticket_id"] == marker;
        got.push(m);
        if done {
            return got;
        }
    }
}

fn tickets(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["ticket_id"].as_str().unwrap_or("-"))
        .collect()
}

/// A key limited to `ticket.*` and one backend group receives only those
/// events, in queue order, over both protocols; a read key's subscriber
/// filters by a dot path into `backend_data` sent as a JSON string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_key_receives_only_its_events_in_order() {
    let h = Herald::new();
    let s = h.serve();
    let kiosk = fidelio_kiosk(&h);
    let reader = key(&h, &["read"]);
    let mut socket = ws(&s, &format!("api_key={kiosk}")).await;
    let mut sse = Sse::open(&s, &kiosk, "", None).await;
    let mut room = Sse::open(&s, &reader, "match=backend_data.pms.room%3D214", None).await;
    let fidelio = |room: u32| json!({"backend_group": "fidelio", "backend_data": format!("{{\"pms\":{{\"room\":{room}}}}}")});
    let mut expected = Vec::new();
    for (kind, ticket, data) in [
        ("ticket.login", "T-1", fidelio(214)),
        ("system.start", "S-1", json!({"backend_group": "fidelio"})),
        ("ticket.logout", "T-2", json!({"backend_group": "opera"})),
        ("system.backup.done", "S-2", json!({})),
        ("ticket.logout.timeout", "T-3", fidelio(215)),
        ("ticket.logged_in", "T-4", fidelio(214)),
        ("ticket.revoked", "END", fidelio(214)),
    ] {
        let uuid = post(&s, kind, Some(ticket), data).await;
        expected.push((ticket, uuid));
    }
    let over_ws = ws_until(&mut socket, "END").await;
    let over_sse = sse_until(&mut sse, "END").await;
    assert_eq!(tickets(&over_ws), ["T-1", "T-3", "T-4", "END"]);
    assert_eq!(over_ws, over_sse, "both protocols carry the same messages");
    let ids: Vec<i64> = over_ws.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "positions grow: {ids:?}"
    );
    let first = &over_ws[0];
    assert_eq!(first["type"], "ticket.login");
    assert_eq!(first["uuid"], expected[0].1);
    assert!(first["created_at"].is_string());
    assert_eq!(first["data"]["backend_group"], "fidelio");
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "uuid", "type", "created_at", "ticket_id", "data"]
    );
    assert_eq!(
        tickets(&sse_until(&mut room, "END").await),
        ["T-1", "T-4", "END"]
    );
}

/// What lies outside a key's limits is refused at connect, naming it; bad
/// parameters are 400; a request that is neither WebSocket nor SSE is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_outside_the_keys_limits_is_refused_naming_it() {
    let h = Herald::new();
    let s = h.serve();
    let kiosk = fidelio_kiosk(&h);
    for (query, status, words) in [
        ("events=ticket.*,system.*", 403, "system.*"),
        ("events=*", 403, "*"),
        ("match=backend_group%3Dopera", 403, "backend_group=opera"),
        ("since=-1", 400, "since"),
        ("events=not%20a%20type", 400, "not a type"),
        ("match=nofilter", 400, "FIELD=VALUE"),
        ("limit=3", 400, "limit"),
    ] {
        let resp = Sse::request(&s, &kiosk, query, None).await;
        assert_eq!(resp.status().as_u16(), status, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(words),
            "{query}: {body}"
        );
    }
    // Within the limits: allowed (and the key's own filter still applies).
    let ok = Sse::request(
        &s,
        &kiosk,
        "events=ticket.login&match=ticket_id%3DT-1",
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    // The WebSocket handshake is refused the same way.
    let url = format!(
        "ws://{}/api/v1/stream?api_key={kiosk}&events=system.*",
        s.addr
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Neither an upgrade nor Accept: text/event-stream.
    let (st, body) = send_with(
        &bearer_client(&kiosk),
        M::GET,
        s.url("/api/v1/stream"),
        None,
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("text/event-stream")
    );
    // No key, or an unknown one.
    let (st, _) = send_with(
        &reqwest::Client::new(),
        M::GET,
        s.url("/api/v1/stream"),
        None,
    )
    .await;
    assert_eq!(st, 401);
    let url = format!("ws://{}/api/v1/stream?api_key=hk_nonsense", s.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

/// An `ingest` key may post events and nothing else; a `stream` key may
/// open streams and nothing else; `api_key=` counts only on the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_stream_keys_may_do_only_their_one_thing() {
    let h = Herald::new();
    let s = h.serve();
    let ingest = bearer_client(&key(&h, &["ingest"]));
    let body = json!({"type": "ticket.login", "ticket_id": "T-1"}).to_string();
    let (st, answer) = send_with(&ingest, M::POST, s.url("/api/v1/events"), Some(&body)).await;
    assert_eq!(st, 202, "{answer}");
    let kiosk_key = key(&h, &["stream", "--events", "ticket.*"]);
    let kiosk = bearer_client(&kiosk_key);
    for (client, scope, method, path) in [
        (&ingest, "ingest", M::GET, "/api/v1/webhooks"),
        (&ingest, "ingest", M::GET, "/api/v1/log"),
        (&ingest, "ingest", M::POST, "/api/v1/webhooks"),
        (&ingest, "ingest", M::GET, "/api/v1/stream"),
        (&ingest, "ingest", M::POST, "/api/v1/api-keys"),
        (&kiosk, "stream", M::POST, "/api/v1/events"),
        (&kiosk, "stream", M::GET, "/api/v1/webhooks"),
        (&kiosk, "stream", M::GET, "/api/v1/api-keys"),
    ] {
        let (st, answer) = send_with(client, method.clone(), s.url(path), Some("{}")).await;
        assert_eq!(st, 403, "{scope} {method} {path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains(&format!("scope {scope}")),
            "{answer}"
        );
    }
    // A key in the query string is not taken anywhere but the stream.
    let (st, _) = send_with(
        &reqwest::Client::new(),
        M::GET,
        s.url(&format!("/api/v1/webhooks?api_key={}", s.key)),
        None,
    )
    .await;
    assert_eq!(st, 401);
    // Limits are for stream keys only, and checked.
    let (st, answer) = s
        .send(
            M::POST,
            s.url("/api/v1/api-keys"),
            Some(r#"{"name": "x", "scope": "read", "events": ["ticket.*"]}"#),
        )
        .await;
    assert_eq!(st, 400, "{answer}");
    let (st, answer) = s
        .send(
            M::POST,
            s.url("/api/v1/api-keys"),
            Some(r#"{"name": "x", "scope": "stream", "events": ["ticket.*"], "match": {"backend_group": "fidelio"}}"#),
        )
        .await;
    assert_eq!(st, 201, "{answer}");
    assert_eq!(answer["api_key"]["limits"]["events"], json!(["ticket.*"]));
    assert_eq!(
        answer["api_key"]["limits"]["match"],
        json!({"backend_group": "fidelio"})
    );
    let out = h.cli(&[
        "admin", "api-key", "create", "--name", "x", "--scope", "stream", "--match", "oops",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIELD=VALUE"));
}

/// A reconnecting subscriber resumes after the last position it saw
/// (SSE's Last-Event-ID, or since=) and misses nothing, then goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_subscriber_misses_nothing() {
    let h = Herald::new();
    let s = h.serve();
    let reader = key(&h, &["read"]);
    let mut sse = Sse::open(&s, &reader, "events=ticket.*", None).await;
    post(&s, "ticket.login", Some("A"), json!({})).await;
    post(&s, "ticket.login", Some("B"), json!({})).await;
    let got = sse_until(&mut sse, "B").await;
    let last = got.last().unwrap()["id"].as_i64().unwrap();
    drop(sse);
    // Meanwhile, while nobody listens:
    for t in ["C", "D", "E"] {
        post(&s, "ticket.logout", Some(t), json!({})).await;
        post(&s, "system.start", Some("not-me"), json!({})).await;
    }
    h.wait_sql("SELECT count(*) FROM events WHERE state = 'routed'", 8);
    let mut sse = Sse::open(&s, &reader, "events=ticket.*", Some(last)).await;
    let mut socket = ws(
        &s,
        &format!("api_key={reader}&events=ticket.*&since={last}"),
    )
    .await;
    post(&s, "ticket.login", Some("LIVE"), json!({})).await;
    assert_eq!(
        tickets(&sse_until(&mut sse, "LIVE").await),
        ["C", "D", "E", "LIVE"]
    );
    assert_eq!(
        tickets(&ws_until(&mut socket, "LIVE").await),
        ["C", "D", "E", "LIVE"]
    );
    // since=0: everything still stored, in order.
    let mut all = Sse::open(&s, &reader, "since=0&events=ticket.*", None).await;
    assert_eq!(
        tickets(&sse_until(&mut all, "LIVE").await),
        ["A", "B", "C", "D", "E", "LIVE"]
    );
}

/// A WebSocket subscriber changes what it receives with a subscribe
/// message, within its key's limits; outside them it is told why and keeps
/// the old subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_subscriber_changes_its_subscription() {
    let h = Herald::new();
    let s = h.serve();
    let kiosk = key(&h, &["stream", "--events", "ticket.*"]);
    let mut socket = ws(&s, &format!("api_key={kiosk}&events=ticket.login")).await;
    let refused = json!({"subscribe": {"events": ["system.*"]}}).to_string();
    socket.send(Message::text(refused)).await.unwrap();
    let reply = next_ws(&mut socket).await;
    assert!(
        reply["error"].as_str().unwrap().contains("system.*"),
        "{reply}"
    );
    let change = json!({"subscribe": {"events": ["ticket.logout"], "match": {"ticket_id": "T-2"}}});
    socket
        .send(Message::text(change.to_string()))
        .await
        .unwrap();
    let reply = next_ws(&mut socket).await;
    assert_eq!(
        reply["subscribed"]["events"],
        json!(["ticket.logout"]),
        "{reply}"
    );
    assert_eq!(reply["subscribed"]["match"], json!({"ticket_id": "T-2"}));
    post(&s, "ticket.login", Some("T-2"), json!({})).await;
    post(&s, "ticket.logout", Some("T-1"), json!({})).await;
    post(&s, "ticket.logout", Some("T-2"), json!({})).await;
    let m = next_ws(&mut socket).await;
    assert_eq!(
        (m["type"].as_str(), m["ticket_id"].as_str()),
        (Some("ticket.logout"), Some("T-2"))
    );
    socket.send(Message::text("not json")).await.unwrap();
    assert!(next_ws(&mut socket).await["error"].is_string());
}

/// Revoking a key (from another process, the CLI) closes its open streams
/// with a reason; the server's refresh reads keys every 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_closes_its_streams() {
    let h = Herald::new();
    let s = h.serve();
    let kiosk = key(&h, &["stream"]);
    let id = h.sql_count("SELECT max(id) FROM api_keys");
    let mut socket = ws(&s, &format!("api_key={kiosk}")).await;
    let mut sse = Sse::open(&s, &kiosk, "", None).await;
    let revoked_at = std::time::Instant::now();
    h.ok(&["admin", "api-key", "revoke", &id.to_string()]);
    let close = next_ws(&mut socket).await;
    assert_eq!(close["close"], u16::from(CloseCode::Policy), "{close}");
    assert!(close["reason"].as_str().unwrap().contains("revoked"));
    match sse.next().await {
        SseItem::Comment(c) => assert!(c.contains("revoked"), "{c}"),
        other => panic!("expected the reason, got {other:?}"),
    }
    assert!(matches!(sse.next().await, SseItem::End));
    // Not a timing test: a bound on hanging, far above the 0.5 s refresh.
    assert!(revoked_at.elapsed() < Duration::from_secs(10));
}

/// A subscriber that stops reading is dropped once it falls
/// `stream.buffer` events behind (told why when it reads again, or cut
/// off); the others receive every event meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_and_the_others_keep_receiving() {
    let mut h = Herald::new();
    h.set_env("HERALD_STREAM_BUFFER", "16");
    let s = h.serve();
    let reader = key(&h, &["read"]);
    // A WebSocket client with a small receive buffer that reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(s.addr).await.unwrap();
    let url = format!("ws://{}/api/v1/stream?api_key={reader}", s.addr);
    let (mut stalled, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    // An SSE client that reads nothing either.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut raw = socket.connect(s.addr).await.unwrap();
    raw.write_all(
        format!("GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer {reader}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut reading = ws(&s, &format!("api_key={reader}")).await;
    // 12 MB in all: more than the socket buffers between herald and a
    // client hold (the kernel's send buffer grows to 4 MiB here).
    let padding = "x".repeat(60_000);
    let total = 200;
    let poster = {
        let client = s.client();
        let url = s.url("/api/v1/events");
        tokio::spawn(async move {
            for i in 0..total {
                let body = json!({"type": "ticket.login", "ticket_id": format!("T-{i}"), "data": {"padding": padding}});
                let r = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 202);
            }
        })
    };
    for i in 0..total {
        let m = next_ws(&mut reading).await;
        assert_eq!(
            m["ticket_id"],
            format!("T-{i}"),
            "the reading subscriber missed one"
        );
    }
    poster.await.unwrap();
    // The stalled WebSocket, reading now: some events, then the reason
    // (or the connection cut while it was stuck) — never all of them.
    let mut received = 0;
    let mut last_id = 0;
    let end = loop {
        let m = next_ws(&mut stalled).await;
        if m["uuid"].is_string() {
            assert_eq!(
                m["ticket_id"],
                format!("T-{received}"),
                "in order, none skipped"
            );
            received += 1;
            last_id = m["id"].as_i64().unwrap();
            continue;
        }
        break m;
    };
    assert!(
        received < total,
        "a stalled subscriber received all {total} events"
    );
    eprintln!("the stalled WebSocket received {received} events, then {end}");
    // Told where to resume: at most the last event it received (nothing is
    // lost); the events of the write that was stuck — up to a batch of 64 —
    // may have arrived after all and come again.
    let mut since = last_id;
    if !end.is_null() {
        assert_eq!(end["close"], u16::from(CloseCode::Again), "{end}");
        let reason = end["reason"].as_str().unwrap();
        since = reason.rsplit("since=").next().unwrap().parse().unwrap();
        assert!(since <= last_id && since >= last_id - 64, "{end}");
    }
    let mut resumed = ws(&s, &format!("api_key={reader}&since={since}")).await;
    let first = received - (last_id - since) as usize;
    for i in first..total {
        let m = next_ws(&mut resumed).await;
        assert_eq!(
            m["ticket_id"],
            format!("T-{i}"),
            "resumed in order, nothing missed"
        );
    }
    // The stalled SSE connection is closed by herald.
    let mut sink = vec![0u8; 1 << 16];
    let mut read = 0usize;
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match raw.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "herald kept the stalled SSE connection open"
    );
    assert!(
        read < total * 60_000,
        "the stalled SSE client got everything ({read} bytes)"
    );
    let log = s.log();
    assert!(log.matches("too slow").count() >= 2, "{log}");
}

/// At `stream.max_subscribers`, one more is answered 503; a place frees
/// when a subscriber leaves. Open subscribers are listed in General
/// settings with their key's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_cap_holds_and_subscribers_are_listed() {
    let mut h = Herald::new();
    h.set_env("HERALD_STREAM_MAX_SUBSCRIBERS", "2");
    let s = h.serve();
    let kiosk = key(&h, &["stream", "--events", "ticket.*"]);
    let first = ws(&s, &format!("api_key={kiosk}")).await;
    let _second = Sse::open(&s, &kiosk, "", None).await;
    let third = Sse::request(&s, &kiosk, "", None).await;
    assert_eq!(third.status(), 503);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("stream.max_subscribers"),
        "{body}"
    );
    let web = crate::web::WebSession::login(&s, &crate::web::initial_password(&h)).await;
    let (st, page) = web.get("/settings").await;
    assert_eq!(st, 200);
    let listing = &page[page
        .find("id=\"stream-subscribers\"")
        .expect("the subscribers table")..];
    for words in ["kiosk", "websocket", "sse", "ticket.*"] {
        assert!(listing.contains(words), "{words} not in {listing}");
    }
    // A stream key made in the web admin, with its limits; a bad filter is refused.
    let made = web
        .post(
            "/settings/api-keys",
            &[
                ("name", "screen"),
                ("scope", "stream"),
                ("events", "system.*"),
                ("match", "backend_group=x"),
            ],
            true,
        )
        .await;
    assert_eq!(made.status(), 200);
    let page = made.text().await.unwrap();
    assert!(
        page.contains("<code>system.*</code>") && page.contains("<code>backend_group=x</code>"),
        "{page}"
    );
    let bad = web
        .post(
            "/settings/api-keys",
            &[
                ("name", "bad"),
                ("scope", "stream"),
                ("events", ""),
                ("match", "no-equals"),
            ],
            true,
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("FIELD=VALUE"));
    let listed: Value =
        serde_json::from_str(&h.ok(&["admin", "api-key", "list", "--json"])).unwrap();
    let screen = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "screen")
        .unwrap();
    assert_eq!(
        screen["limits"],
        json!({"events": ["system.*"], "match": {"backend_group": "x"}})
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["name"] != "bad")
    );
    drop(first);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let again = Sse::request(&s, &kiosk, "", None).await;
        if again.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// herald stopping closes WebSocket subscribers with "going away" and ends
/// SSE bodies; it does not wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_streams() {
    let h = Herald::new();
    let s = h.serve();
    let reader = key(&h, &["read"]);
    let mut socket = ws(&s, &format!("api_key={reader}")).await;
    let mut sse = Sse::open(&s, &reader, "", None).await;
    let status = tokio::task::spawn_blocking(move || s.terminate());
    let close = next_ws(&mut socket).await;
    assert_eq!(close["close"], u16::from(CloseCode::Away), "{close}");
    match sse.next().await {
        SseItem::Comment(c) => assert!(c.contains("stopping"), "{c}"),
        SseItem::End => {}
        other => panic!("expected the end, got {other:?}"),
    }
    assert!(status.await.unwrap().success());
}

/// An idle subscriber is pinged every 15 s: a WebSocket ping frame, an SSE
/// comment, so proxies and clients can tell a quiet stream from a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribers_are_pinged() {
    let h = Herald::new();
    let s = h.serve();
    let reader = key(&h, &["read"]);
    let mut socket = ws(&s, &format!("api_key={reader}")).await;
    let mut sse = Sse::open(&s, &reader, "", None).await;
    let first = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .expect("a WebSocket ping within 30 s");
    assert!(
        matches!(first, Some(Ok(Message::Ping(_)))),
        "expected a ping first, got {first:?}"
    );
    let comment = tokio::time::timeout(PATIENCE, async {
        loop {
            let chunk = sse.resp.chunk().await.unwrap().expect("the stream ended");
            sse.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            if sse.buf.contains(": ping\n\n") {
                return;
            }
        }
    });
    comment.await.expect("an SSE ping comment within 30 s");
}

/// A write stuck on a client that reads nothing still ends when its key is
/// revoked (it does not wait for the subscriber to fall behind, which a
/// large buffer may put off for long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_is_still_closed_when_its_key_is_revoked() {
    let mut h = Herald::new();
    h.set_env("HERALD_STREAM_BUFFER", "100000");
    let s = h.serve();
    let kiosk = key(&h, &["stream"]);
    let id = h.sql_count("SELECT max(id) FROM api_keys");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(s.addr).await.unwrap();
    let url = format!("ws://{}/api/v1/stream?api_key={kiosk}", s.addr);
    let (_stalled, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let padding = "x".repeat(60_000);
    for i in 0..200 {
        post(
            &s,
            "ticket.login",
            Some(&format!("T-{i}")),
            json!({"padding": padding}),
        )
        .await;
    }
    h.wait_sql("SELECT count(*) FROM events WHERE state = 'routed'", 200);
    h.ok(&["admin", "api-key", "revoke", &id.to_string()]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !s.log().contains("reason=the API key was revoked") {
        assert!(
            std::time::Instant::now() < deadline,
            "still streaming to a revoked key:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SSE subscribers may hold at most half the listener's connections (each
/// keeps one busy); WebSocket subscribers and API calls still get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_subscribers_leave_the_listener_half_its_connections() {
    let mut h = Herald::new();
    h.set_env("HERALD_SERVER_MAX_CONNECTIONS", "8");
    let s = h.serve();
    let reader = key(&h, &["read"]);
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(Sse::open(&s, &reader, "", None).await);
    }
    let fifth = Sse::request(&s, &reader, "", None).await;
    assert_eq!(fifth.status(), 503);
    let body: Value = fifth.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("half of server.max_connections"),
        "{body}"
    );
    let mut socket = ws(&s, &format!("api_key={reader}")).await;
    let (st, _) = s.send(M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(st, 200);
    post(&s, "ticket.login", Some("T-1"), json!({})).await;
    assert_eq!(next_ws(&mut socket).await["ticket_id"], "T-1");
    // An oversized client message ends the WebSocket (subscribe messages are small).
    socket
        .send(Message::text("x".repeat(64 << 10)))
        .await
        .unwrap();
    let end = next_ws(&mut socket).await;
    assert!(end.is_null() || end["close"] == 1009, "{end}");
}
