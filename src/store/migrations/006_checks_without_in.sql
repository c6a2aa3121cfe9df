-- herald schema, version 6: the same tables, with the CHECKs on
-- log.outcome and deliveries.state written as OR chains. SQLite builds a
-- temporary index for `x IN (list)` every time it checks such a row, which
-- was an eighth of the delivery path's instructions (storage engine issue).
-- SQLite cannot change a CHECK in place: both tables are rebuilt, with their
-- rows, ids, AUTOINCREMENT counters and indexes. Nothing references either
-- table by foreign key, so dropping the old ones deletes nothing else.

CREATE TABLE log_v6 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,
    outcome          TEXT NOT NULL CHECK (outcome = 'delivered' OR outcome = 'failed' OR outcome = 'invalid'
                                          OR outcome = 'alert' OR outcome = 'paused' OR outcome = 'resumed'
                                          OR outcome = 'recovered'),
    event_uuid       TEXT,
    event_type       TEXT,
    ticket_id        TEXT,
    webhook_id       INTEGER,
    webhook_name     TEXT,
    delivery_id      INTEGER,
    attempt          INTEGER,
    duration_ms      INTEGER,
    http_status      INTEGER,
    error            TEXT,
    request_method   TEXT,
    request_url      TEXT,
    request_headers  TEXT,
    request_body     TEXT,
    response_headers TEXT,
    response_body    TEXT,
    retry_at         TEXT,                        -- failed, and tried again at this time
    test             INTEGER NOT NULL DEFAULT 0   -- a test send (`herald test`), no delivery
);
INSERT INTO log_v6 (id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
                    duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
                    response_headers, response_body, retry_at, test)
SELECT id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
       duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
       response_headers, response_body, retry_at, test
FROM log;
-- Ids of deleted rows are not given out again.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'log'))
WHERE name = 'log_v6' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'log');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'log_v6', seq FROM sqlite_sequence
WHERE name = 'log' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'log_v6');
DROP TABLE log;
ALTER TABLE log_v6 RENAME TO log;
CREATE INDEX log_at ON log (at);
CREATE INDEX log_webhook ON log (webhook_id, id);
CREATE INDEX log_event ON log (event_uuid);

CREATE TABLE deliveries_v6 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state = 'pending' OR state = 'delivered' OR state = 'failed'),
    claimed         INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,        -- unix ms
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    UNIQUE (event_id, webhook_id)
);
INSERT INTO deliveries_v6 (id, event_id, webhook_id, state, claimed, attempts, next_attempt_at, created_at,
                           updated_at, tries, last_error)
SELECT id, event_id, webhook_id, state, claimed, attempts, next_attempt_at, created_at, updated_at, tries, last_error
FROM deliveries;
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'))
WHERE name = 'deliveries_v6' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'deliveries');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'deliveries_v6', seq FROM sqlite_sequence
WHERE name = 'deliveries' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'deliveries_v6');
DROP TABLE deliveries;
ALTER TABLE deliveries_v6 RENAME TO deliveries;
CREATE INDEX deliveries_webhook ON deliveries (webhook_id);
CREATE INDEX deliveries_pending_event ON deliveries (event_id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook_order ON deliveries (webhook_id, id) WHERE state = 'pending';
CREATE INDEX deliveries_failed ON deliveries (webhook_id) WHERE state = 'failed';
