//! Small charts of the last 24 hours, drawn on the server as SVG (no
//! JavaScript library; they work offline): per webhook, attempts delivered
//! and failed per hour with the hour's p95 duration as a line; above the
//! event log, every entry per hour.

use std::collections::HashMap;
use std::fmt::Write;

use crate::store::HourlyLog;

/// Hours shown.
const HOURS: i64 = 24;
/// Width of one hour's bar and the gap after it, px.
const BAR: i64 = 6;
const GAP: i64 = 1;
/// Height of the bars' area, px.
const HEIGHT: i64 = 36;

/// One hour of a chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hour {
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    /// Attempts delivered.
    pub delivered: i64,
    /// Attempts failed.
    pub failed: i64,
    /// Other log entries (invalid events, alerts).
    pub other: i64,
    /// p95 request duration, ms.
    pub p95_ms: Option<i64>,
}

/// The 24 hours up to `now` (oldest first), each `YYYY-MM-DDTHH`.
pub fn last_hours(now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    (0..HOURS)
        .rev()
        .map(|back| {
            (now - chrono::Duration::hours(back))
                .format("%Y-%m-%dT%H")
                .to_string()
        })
        .collect()
}

/// Where the 24 hours begin, as the log stores times.
pub fn since(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}:00:00.000Z", last_hours(now)[0])
}

/// Per webhook id, its 24 hours (every hour present, zero when quiet).
pub fn by_webhook(rows: &[HourlyLog], hours: &[String]) -> HashMap<i64, Vec<Hour>> {
    let mut out: HashMap<i64, Vec<Hour>> = HashMap::new();
    for r in rows {
        let Some(id) = r.webhook_id else { continue };
        add(out.entry(id).or_insert_with(|| empty(hours)), r, true);
    }
    out
}

/// Every entry of the log per hour (all webhooks together, no p95).
pub fn all(rows: &[HourlyLog], hours: &[String]) -> Vec<Hour> {
    let mut series = empty(hours);
    for r in rows {
        add(&mut series, r, false);
    }
    series
}

/// Adds a row's counts to its hour of `series` (with its p95 when `p95`:
/// one webhook's rows, one per hour); an hour outside the series is left out.
fn add(series: &mut [Hour], r: &HourlyLog, p95: bool) {
    if let Some(h) = series.iter_mut().find(|h| h.hour == r.hour) {
        h.delivered += r.delivered;
        h.failed += r.failed;
        h.other += r.other;
        if p95 {
            h.p95_ms = r.p95_ms();
        }
    }
}

fn empty(hours: &[String]) -> Vec<Hour> {
    hours
        .iter()
        .map(|h| Hour {
            hour: h.clone(),
            ..Hour::default()
        })
        .collect()
}

/// An SVG of stacked bars per hour (delivered green, failed red, other
/// grey) and, with `p95`, the hour's p95 duration as a line on its own
/// scale. Each bar has a `<title>` (a tooltip, read by screen readers).
pub fn svg(hours: &[Hour], p95: bool, label: &str) -> String {
    let width = hours.len() as i64 * (BAR + GAP);
    let top = hours
        .iter()
        .map(|h| h.delivered + h.failed + h.other)
        .max()
        .unwrap_or(0)
        .max(1);
    let (delivered, failed): (i64, i64) = hours
        .iter()
        .fold((0, 0), |(d, f), h| (d + h.delivered, f + h.failed));
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" preserveAspectRatio="none" role="img" aria-label="{label}: {delivered} delivered, {failed} failed in 24 hours">"#
    );
    let scale = |n: i64| (n * HEIGHT + top - 1) / top; // rounded up: 1 shows
    for (i, h) in hours.iter().enumerate() {
        let x = i as i64 * (BAR + GAP);
        let mut y = HEIGHT;
        let _ = write!(
            out,
            "<g><title>{} UTC: {} delivered, {} failed",
            h.hour.replace('T', " "),
            h.delivered,
            h.failed
        );
        if h.other > 0 {
            let _ = write!(out, ", {} other", h.other);
        }
        match h.p95_ms.filter(|_| p95) {
            Some(crate::store::BEYOND_MS) => out.push_str(", p95 > 30 s"),
            Some(ms) => {
                let _ = write!(out, ", p95 ≤ {ms} ms");
            }
            None => {}
        }
        out.push_str("</title>");
        let _ = write!(
            out,
            r##"<rect x="{x}" y="0" width="{BAR}" height="{HEIGHT}" fill="#000" fill-opacity="0.03"/>"##
        );
        for (n, colour) in [
            (h.delivered, "#2e7d32"),
            (h.failed, "#c62828"),
            (h.other, "#9e9e9e"),
        ] {
            if n == 0 {
                continue;
            }
            let hgt = scale(n).min(y);
            y -= hgt;
            let _ = write!(
                out,
                r#"<rect x="{x}" y="{y}" width="{BAR}" height="{hgt}" fill="{colour}"/>"#
            );
        }
        out.push_str("</g>");
    }
    if p95 {
        let slowest = hours
            .iter()
            .filter_map(|h| h.p95_ms)
            .max()
            .unwrap_or(0)
            .max(1);
        let points: Vec<String> = hours
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let ms = h.p95_ms?;
                let x = i as i64 * (BAR + GAP) + BAR / 2;
                let y = HEIGHT - 1 - (ms * (HEIGHT - 2) / slowest);
                Some(format!("{x},{y}"))
            })
            .collect();
        if points.len() > 1 {
            let _ = write!(
                out,
                r##"<polyline points="{}" fill="none" stroke="#1565c0" stroke-width="1"/>"##,
                points.join(" ")
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_and_every_hour_is_drawn() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let hours = last_hours(now);
        assert_eq!(hours.len(), 24);
        assert_eq!(
            (hours[0].as_str(), hours[23].as_str()),
            ("2026-12-06T11", "2026-12-07T10")
        );
        assert_eq!(since(now), "2026-12-06T11:00:00.000Z");
        let rows = vec![HourlyLog {
            webhook_id: Some(3),
            hour: "2026-12-07T10".into(),
            delivered: 8,
            failed: 2,
            other: 0,
            durations: vec![10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }];
        let per = by_webhook(&rows, &hours);
        let series = &per[&3];
        assert_eq!(series.len(), 24);
        assert_eq!(
            (series[23].delivered, series[23].failed, series[23].p95_ms),
            (8, 2, Some(5))
        );
        let drawn = svg(series, true, "webhook 3");
        assert!(drawn.starts_with("<svg") && drawn.ends_with("</svg>"));
        assert_eq!(drawn.matches("<title>").count(), 24);
        assert!(drawn.contains("8 delivered, 2 failed, p95 ≤ 5 ms"));
        assert!(drawn.contains(r#"aria-label="webhook 3: 8 delivered, 2 failed in 24 hours""#));
        // 8 of 10 is 29 px of 36 (rounded up, so one attempt shows); the
        // 2 failed fill the 7 px left.
        assert!(drawn.contains(r##"height="29" fill="#2e7d32""##), "{drawn}");
        assert!(
            drawn.contains(r##"y="0" width="6" height="7" fill="#c62828""##),
            "{drawn}"
        );
        assert_eq!(all(&rows, &hours)[23].delivered, 8);
    }
}
