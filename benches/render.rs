//! Render throughput, one core: the appliance's example JSON body and an XML
//! body, rendered for the sample ticket.login event. Prints renders/s and the
//! ratio to the target (300,000/s), with a same-run baseline: serde_json
//! serialising the same event (the cost of touching the data at all).
//!
//! `cargo bench --bench render`; `RENDER_COUNT=N [RENDER_ONLY=XML]` renders
//! N times instead of timing (for callgrind: instructions per render are
//! repeatable where times on a shared machine are not).

use std::hint::black_box;
use std::time::{Duration, Instant};

use herald::engines::render::{CompiledRequest, samples};
use herald::spec::request::BodyFormat;
use herald::spec::webhook::WebhookSpec;

const TARGET_PER_SEC: f64 = 300_000.0;
const RUN_FOR: Duration = Duration::from_secs(3);

const XML_BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<event id="<<event.uuid>>" type="<<event.type>>">
  <created><<event.created_at>></created>
  <ticket><<event.ticket_id>></ticket>
  <room><<backend_data.pms.room>></room>
  <guest><<backend_data.pms.name>></guest>
  <volume used="<<volume_used>>" limit="<<volume_limit>>"/>
  <description><<description>></description>
</event>
"#;

/// Runs `f` repeatedly for `RUN_FOR`; returns calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    // Warm up.
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN_FOR {
        for _ in 0..1000 {
            f();
        }
        n += 1000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let event = std::sync::Arc::new(samples::sample_event("ticket.login"));
    let count: Option<u64> = std::env::var("RENDER_COUNT")
        .ok()
        .map(|n| n.parse().expect("RENDER_COUNT is a number"));
    // Not needed when counting renders (callgrind).
    let baseline = match count {
        Some(_) => 0.0,
        None => {
            let b = rate(|| {
                black_box(serde_json::to_string(black_box(&event.data)).unwrap());
            });
            println!("baseline: serde_json::to_string(event data)  {b:>12.0}/s");
            b
        }
    };
    for (name, body, format) in [
        (
            "iacbox example (JSON)",
            include_str!("../templates/presets/iacbox-example.json.tmpl"),
            BodyFormat::Json,
        ),
        ("XML body", XML_BODY, BodyFormat::Xml),
    ] {
        let spec = WebhookSpec {
            body_template: body.into(),
            body_format: format,
            ..WebhookSpec::example("http://127.0.0.1:9/hook")
        };
        let compiled = CompiledRequest::compile(&spec, Some(1)).expect("template compiles");
        if let Some(n) = count {
            // Fixed count (for callgrind): instructions per render, not time.
            let only = std::env::var("RENDER_ONLY").unwrap_or_default();
            if name.starts_with(only.as_str()) {
                for _ in 0..n {
                    black_box(compiled.render_shared(black_box(&event), None).unwrap());
                }
                println!("rendered {name} {n} times");
            }
            continue;
        }
        let per_sec = rate(|| {
            black_box(compiled.render_shared(black_box(&event), None).unwrap());
        });
        println!(
            "render {name:<22} {per_sec:>12.0}/s  = {:.2} x target (300,000/s), {:.2} x baseline",
            per_sec / TARGET_PER_SEC,
            per_sec / baseline
        );
    }
}
