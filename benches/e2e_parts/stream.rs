//! The live stream's fan-out: 100 WebSocket subscribers (one of which
//! stops reading) while events arrive through the API at 1,000/s and one
//! webhook delivers each, in the same run: event → subscriber latency,
//! event → webhook latency, herald's CPU and memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Herald, Sink, cpu_secs, percentile, rss_kib};

/// Subscribers in all, the last of which never reads.
const SUBSCRIBERS: usize = 100;
/// Events per second through the API, and for how long.
const RATE: u64 = 1000;
const FOR: Duration = Duration::from_secs(5);

/// The `uuid` of a stream message, found without parsing the whole JSON.
fn uuid_of(text: &str) -> Option<&str> {
    let at = text.find("\"uuid\":\"")? + 8;
    text.get(at..at + 36)
}

/// Runs the scenario and prints its line.
pub async fn fan_out(sink: &Sink) {
    let mut h = Herald::new("10");
    h.add_webhook(&sink.url("/stream-fan-out"));
    h.serve();
    let out = h
        .cmd()
        .args([
            "admin",
            "api-key",
            "create",
            "--name",
            "dashboards",
            "--scope",
            "read",
        ])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = format!(
        "ws://{}/api/v1/stream?api_key={key}",
        h.api("").trim_start_matches("http://")
    );
    let received: Arc<Mutex<Vec<HashMap<String, Instant>>>> = Arc::default();
    let n = (RATE * FOR.as_secs()) as usize;
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS - 1 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut got = HashMap::with_capacity(n);
            let deadline = Instant::now() + FOR + Duration::from_secs(30);
            while got.len() < n && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        if let Some(id) = uuid_of(&t) {
                            got.insert(id.to_owned(), Instant::now());
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            received.lock().unwrap().push(got);
        }));
    }
    // The one that stops reading: a small receive buffer, never read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(
            h.api("")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    let (stalled, _) = tokio_tungstenite::client_async(&url, tcp).await.unwrap();
    let pid = h.pid().to_string();
    let rss_before = rss_kib(h.pid());
    sink.state
        .record
        .store(true, std::sync::atomic::Ordering::Relaxed);
    sink.state.arrivals.lock().unwrap().clear();
    let client = h.api_client();
    let post_url = h.api("/api/v1/events");
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let data = super::sample_data();
    let cpu_before = cpu_secs(&pid);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut posts = Vec::new();
    for _ in 0..n {
        tick.tick().await;
        let id = uuid::Uuid::new_v4().to_string();
        let (client, post_url, sent) = (client.clone(), post_url.clone(), sent.clone());
        let body = format!(
            r#"{{"type": "ticket.login", "uuid": "{id}", "ticket_id": "T-1", "data": {data}}}"#
        );
        posts.push(tokio::spawn(async move {
            sent.lock().unwrap().insert(id, Instant::now());
            client.post(&post_url).body(body).send().await.unwrap();
        }));
    }
    for p in posts {
        p.await.unwrap();
    }
    for r in readers {
        r.await.unwrap();
    }
    let busy = start.elapsed().as_secs_f64();
    let herald_cores = (cpu_secs(&pid) - cpu_before) / busy;
    let rss_after = rss_kib(h.pid());
    let sent = sent.lock().unwrap().clone();
    let mut stream_lat = Vec::new();
    let mut complete = 0;
    for got in received.lock().unwrap().iter() {
        if got.len() == n {
            complete += 1;
        }
        for (id, at) in got {
            if let Some(s) = sent.get(id) {
                stream_lat.push(at.saturating_duration_since(*s));
            }
        }
    }
    stream_lat.sort();
    let arrivals = sink.state.arrivals.lock().unwrap().clone();
    let mut hook_lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, s)| arrivals.get(id).map(|a| a.saturating_duration_since(*s)))
        .collect();
    hook_lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "stream fan-out: {} subscribers ({} stalled) at {RATE} events/s for {}s: {complete} of {} readers got all {n} events; event -> subscriber p50 {:.2} ms, p99 {:.2} ms ({} messages); event -> webhook in the same run p50 {:.2} ms, p99 {:.2} ms ({} delivered); herald {:.2} cores; RSS {} -> {} KiB",
        SUBSCRIBERS,
        1,
        FOR.as_secs(),
        SUBSCRIBERS - 1,
        ms(percentile(&stream_lat, 0.5)),
        ms(percentile(&stream_lat, 0.99)),
        stream_lat.len(),
        ms(percentile(&hook_lat, 0.5)),
        ms(percentile(&hook_lat, 0.99)),
        hook_lat.len(),
        herald_cores,
        rss_before,
        rss_after,
    );
    drop(stalled);
    sink.state
        .record
        .store(false, std::sync::atomic::Ordering::Relaxed);
    sink.state.arrivals.lock().unwrap().clear();
}
