//! The integration tests that touch the database, run again with herald on
//! PostgreSQL: each test's herald gets a PostgreSQL server of its own
//! (`initdb` + `pg_ctl` in a temp dir, 127.0.0.1, a free port), through
//! `HERALD_DATABASE_URL`. Plus what only several routers on one database
//! can show (`routers`). Tests that are about SQLite's file itself (a full
//! disk, its locks, its crash recovery) stay in `tests/it` alone.

#[path = "../it/access.rs"]
mod access;
#[path = "../it/api.rs"]
mod api;
#[path = "../it/cli.rs"]
mod cli;
#[path = "../it/delivery.rs"]
mod delivery;
#[path = "../it/guide.rs"]
mod guide;
#[path = "../it/outages.rs"]
mod outages;
mod routers;
#[path = "../it/stream.rs"]
mod stream;
#[path = "../it/utils.rs"]
// Shared with tests/it: some helpers serve only tests not run here.
#[allow(dead_code)]
mod utils;
#[path = "../it/web.rs"]
mod web;

/// This suite runs herald on PostgreSQL.
mod backend {
    pub const POSTGRES: bool = true;
}

#[path = "../../src/store/postgres/test_server.rs"]
mod pg_server;
