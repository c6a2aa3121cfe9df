//! Tests of the SQLite backend's opening and migrations: each version
//! from an older herald's database, the file's mode, a newer schema refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rusqlite::Connection;

use super::sqlite::{MIGRATIONS, Sqlite};
use super::{Error, LogFilter, Options, Store};
/// A database at schema version `n`, as an older herald left it.
fn at_version(path: &Path, n: usize) -> Connection {
    let mut c = Connection::open(path).unwrap();
    for (i, sql) in MIGRATIONS[..n].iter().enumerate() {
        let tx = c.transaction().unwrap();
        tx.execute_batch(sql).unwrap();
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .unwrap();
        tx.commit().unwrap();
    }
    c
}

#[test]
fn open_creates_private_file_and_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/herald.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    drop(store);
    // Reopening is a no-op migration.
    assert!(Store::open(&path).is_ok());
}

#[test]
fn stale_webhook_update_is_a_conflict_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("h.db")).unwrap();
    let spec = crate::spec::webhook::WebhookSpec::example("http://127.0.0.1:9/");
    let w = store.insert_webhook(&spec).unwrap();
    let mut first = spec.clone();
    first.name = "first".into();
    let after_first = store.update_webhook(w.id, &w.updated_at, &first).unwrap();
    assert_ne!(after_first.updated_at, w.updated_at);
    let mut second = spec.clone();
    second.name = "second".into();
    // Based on the version before the first change: refused.
    assert!(matches!(
        store.update_webhook(w.id, &w.updated_at, &second),
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.webhook(w.id).unwrap().spec.name, "first");
    assert!(matches!(
        store.update_webhook(999, "x", &second),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_version_2_database_with_data_migrates_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = at_version(&path, 2);
        c.execute_batch(
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('old', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
             INSERT INTO events (type) VALUES ('system.start');
             INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
             VALUES (1, 1, 0, 't', 't');
             INSERT INTO log (at, outcome, event_uuid, webhook_id, error) VALUES ('t', 'failed', 'u', 1, 'HTTP 500');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let w = store.webhook(1).unwrap();
    assert_eq!(w.spec.retry, crate::spec::retry::RetryPolicy::default());
    assert_eq!(w.spec.max_in_flight, 4);
    assert!(w.health.paused_at.is_none());
    let log = store
        .log_entries(&LogFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].error.as_deref(), Some("HTTP 500"));
    assert!(log[0].retry_at.is_none() && !log[0].test);
    assert_eq!(store.pending_deliveries().unwrap(), 1);
}

/// Version 6 rebuilds log and deliveries (CHECKs without IN): rows,
/// ids and AUTOINCREMENT counters survive, and the CHECKs still refuse.
#[test]
fn the_version_6_rebuild_keeps_rows_and_counters_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = at_version(&path, 5);
        c.execute_batch(
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('old', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
             INSERT INTO events (type) VALUES ('system.start'), ('system.start');
             INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
             VALUES (1, 1, 0, 't', 't'), (2, 1, 0, 't', 't');
             DELETE FROM deliveries WHERE id = 2;
             INSERT INTO log (at, outcome, event_uuid, webhook_id, error) VALUES ('t', 'failed', 'u', 1, 'HTTP 500'), ('t', 'alert', 'v', 1, NULL);
             DELETE FROM log WHERE id = 2;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(store.pending_deliveries().unwrap(), 1);
    drop(store);
    let c = Connection::open(&path).unwrap();
    let seq = |t: &str| -> i64 {
        c.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [t],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(seq("log"), 2, "a deleted log id would be given out again");
    assert_eq!(seq("deliveries"), 2);
    assert_eq!(
        c.query_row(
            "SELECT count(*) FROM sqlite_sequence WHERE name LIKE '%_v6'",
            [],
            |r| r.get::<_, i64>(0)
        )
        .unwrap(),
        0
    );
    assert!(
        c.execute("UPDATE deliveries SET state = 'lost'", [])
            .is_err()
    );
    assert!(c.execute("UPDATE log SET outcome = 'lost'", []).is_err());
    let indexes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('log', 'deliveries') AND sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Eight rebuilt by 006, one dropped by 007.
    assert_eq!(indexes, 7);
    let gone: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries_pending_event'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0);
}

/// Version 9 rebuilds api_keys (two scopes more, a stream key's
/// limits): keys, ids and the AUTOINCREMENT counter survive, and the
/// CHECK still refuses an unknown scope.
#[test]
fn the_version_9_rebuild_keeps_keys_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = at_version(&path, 8);
        c.execute_batch(
            "INSERT INTO api_keys (name, hint, digest, scope, created_at) VALUES
               ('a', 'hk_a…', 'd1', 'admin', 't'), ('b', 'hk_b…', 'd2', 'read', 't'), ('c', 'hk_c…', 'd3', 'read', 't');
             DELETE FROM api_keys WHERE id = 3;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let keys = store.api_keys().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].id, keys[0].scope),
        (1, crate::engines::access::Scope::Admin)
    );
    assert_eq!(
        (keys[1].id, keys[1].scope),
        (2, crate::engines::access::Scope::Read)
    );
    assert!(keys.iter().all(|k| k.limits.is_none()));
    let limits = crate::base::subscription::Subscription::parse(
        "ticket.*",
        &["backend_group=fidelio".into()],
    )
    .unwrap();
    let made = store
        .insert_api_key(
            "kiosk",
            "hk_k…",
            "d4",
            crate::engines::access::Scope::Stream,
            Some(&limits),
        )
        .unwrap();
    assert_eq!(made.id, 4, "a deleted key's id is not given out again");
    assert_eq!(made.limits.as_ref(), Some(&limits));
    let live = store.live_api_keys().unwrap();
    assert_eq!(
        live.iter().find(|k| k.id == 4).unwrap().limits.as_ref(),
        Some(&limits)
    );
    drop(store);
    let c = Connection::open(&path).unwrap();
    assert!(
        c.execute("UPDATE api_keys SET scope = 'root' WHERE id = 1", [])
            .is_err()
    );
}

/// Version 11 rebuilds events (the CHECK without IN) while deliveries
/// reference it: no delivery is lost to a cascade, ids and the counter
/// survive, and the CHECK still refuses.
#[test]
fn the_version_11_rebuild_keeps_events_and_their_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = at_version(&path, 10);
        c.execute_batch(
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('w', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
             INSERT INTO events (type, source) VALUES ('system.start', 'api'), ('system.start', NULL), ('system.start', 'cli');
             DELETE FROM events WHERE id = 3;
             INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
             VALUES (1, 1, 0, 't', 't'), (2, 1, 0, 't', 't');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    assert_eq!(
        store.pending_deliveries().unwrap(),
        2,
        "no delivery lost to a cascade"
    );
    drop(store);
    let c = Connection::open(&path).unwrap();
    let sources: Vec<Option<String>> = c
        .prepare("SELECT source FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sources, vec![Some("api".to_owned()), None]);
    let seq: i64 = c
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seq, 3, "a deleted event id would be given out again");
    assert!(c.execute("UPDATE events SET state = 'lost'", []).is_err());
    let foreign_keys: i64 = Connection::open(&path)
        .map(|c| {
            c.pragma_update(None, "foreign_keys", "ON").unwrap();
            c.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap()
        })
        .unwrap();
    assert_eq!(foreign_keys, 0);
    // The store turned foreign keys on again after migrating.
    let store = Sqlite::open_with(&path, &Options::default()).unwrap();
    store
        .write(|c| Ok(c.pragma_query_value(None, "foreign_keys", |r| r.get::<_, i64>(0))?))
        .map(|on| assert_eq!(on, 1))
        .unwrap();
}

/// A migration that would leave a broken reference is refused whole:
/// the version stays, and the error says so.
#[test]
fn a_migration_leaving_broken_references_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = at_version(&path, 10);
        // Written with foreign keys off: a delivery of an event that is
        // not there.
        c.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('w', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 't', 't');
             INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
             VALUES (99, 1, 0, 't', 't');",
        )
        .unwrap();
    }
    match Store::open(&path) {
        Err(Error::Corrupt(m)) => assert!(m.contains("broken references"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let c = Connection::open(&path).unwrap();
    let version: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 10);
    assert_eq!(
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_v11'",
            [],
            |r| r.get::<_, i64>(0)
        )
        .unwrap(),
        0,
        "the rebuild was rolled back"
    );
}

#[test]
fn open_existing_does_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    assert!(matches!(
        Store::open_existing(&path),
        Err(Error::Open { .. })
    ));
    assert!(!path.exists());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(Error::TooNew { found: 99, .. })
    ));
}
