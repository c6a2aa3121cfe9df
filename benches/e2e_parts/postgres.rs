//! Throughput on PostgreSQL with one and two routers, beside SQLite with
//! one, in the same run and against the same sink ceiling: 1 webhook,
//! events queued by one plain SQL statement (the appliance's way).

use std::time::Instant;

use super::{Herald, Sink, cpu_secs, sample_data};

#[path = "../../src/store/postgres/test_server.rs"]
mod test_server;

/// Events per run.
const EVENTS: usize = 10_000;

/// Queues `n` events on PostgreSQL in one statement.
fn insert_events(pg: &test_server::TempPostgres, n: usize) {
    let data = sample_data().replace('\'', "''");
    pg.psql(
        "postgres",
        &format!(
            "INSERT INTO events (type, ticket_id, data)
             SELECT 'ticket.login', 'T-1', '{data}' FROM generate_series(1, {n})"
        ),
    );
}

/// Runs the scenario and prints its lines.
pub async fn routers(sink: &Sink, ceiling: f64) {
    // SQLite, one router (the baseline of this run).
    {
        let mut h = Herald::new("0.1");
        h.add_webhook(&sink.url("/sqlite"));
        h.serve();
        let before = sink.count();
        let start = Instant::now();
        h.insert_events(EVENTS);
        sink.wait_for(before + EVENTS as u64).await;
        let rate = EVENTS as f64 / start.elapsed().as_secs_f64();
        println!(
            "postgres scenario: SQLite, 1 router: {rate:>6.0} deliveries/s = {:.2} x sink ceiling",
            rate / ceiling
        );
    }
    {
        let pg = test_server::TempPostgres::start();
        let tps = pg.pgbench(5);
        println!(
            "postgres scenario: PostgreSQL's own ceiling here (pgbench simple-update, 8 clients): {tps:>6.0} write transactions/s = {:.2} x sink ceiling",
            tps / ceiling
        );
    }
    for routers in [1usize, 2] {
        let pg = test_server::TempPostgres::start();
        let url = pg.url("postgres");
        let mut hs: Vec<Herald> = (0..routers)
            .map(|_| {
                let mut h = Herald::new("0.1");
                h.database_url = Some(url.clone());
                h
            })
            .collect();
        hs[0].add_webhook(&sink.url("/postgres"));
        for h in &mut hs {
            h.serve();
        }
        let pids: Vec<String> = hs.iter().map(|h| h.pid().to_string()).collect();
        let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_secs(p)).collect();
        let before = sink.count();
        let start = Instant::now();
        insert_events(&pg, EVENTS);
        sink.wait_for(before + EVENTS as u64).await;
        let wall = start.elapsed().as_secs_f64();
        let rate = EVENTS as f64 / wall;
        let cores: Vec<String> = pids
            .iter()
            .zip(&cpu_before)
            .map(|(p, b)| format!("{:.2}", (cpu_secs(p) - b) / wall))
            .collect();
        let delivered = pg.psql(
            "postgres",
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        );
        println!(
            "postgres scenario: PostgreSQL, {routers} router(s): {rate:>6.0} deliveries/s = {:.2} x sink ceiling (target with 2 routers >= 0.3); herald cores per router: {}; delivered rows {delivered}",
            rate / ceiling,
            cores.join(", ")
        );
    }
}
