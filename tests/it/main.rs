//! Integration tests: the real `herald` binary, real SQLite files in temp
//! dirs, real HTTP receivers on 127.0.0.1.

mod access;
mod api;
mod auth;
mod browser;
mod cli;
mod crash;
mod delivery;
mod faults;
mod guide;
mod listener;
mod mail;
mod operations;
mod outages;
mod security;
mod ssrf;
mod stream;
mod templates;
mod utils;
mod web;

/// This suite runs herald on SQLite (`tests/pg` runs tests on PostgreSQL).
mod backend {
    pub const POSTGRES: bool = false;
}

#[path = "../../src/store/postgres/test_server.rs"]
mod pg_server;
