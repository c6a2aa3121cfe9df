-- herald schema, version 1.

-- The queue. Producers may INSERT (type, data[, ticket_id, uuid, created_at]);
-- everything else has a default. The router moves state from 'queued' to
-- 'routed' or 'invalid'.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE DEFAULT (
                    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
                    substr(lower(hex(randomblob(2))), 2) || '-' ||
                    substr('89ab', 1 + (abs(random()) % 4), 1) ||
                    substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))),
    type        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ticket_id   TEXT,
    data        TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'routed', 'invalid')),
    error       TEXT,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    routed_at   TEXT
);
CREATE INDEX events_queued ON events (id) WHERE state = 'queued';
CREATE INDEX events_routed_at ON events (routed_at) WHERE state <> 'queued';

CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    method        TEXT NOT NULL CHECK (method IN ('POST', 'GET', 'PUT', 'DELETE')),
    events        TEXT NOT NULL,            -- JSON array of patterns
    headers       TEXT NOT NULL DEFAULT '',
    body_template TEXT NOT NULL DEFAULT '',
    body_mime     TEXT NOT NULL CHECK (body_mime IN ('application/json', 'application/xml')),
    log_bodies    INTEGER NOT NULL DEFAULT 0,
    enabled       INTEGER NOT NULL DEFAULT 1,
    timeout_ms    INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- One row per (event, webhook): the outbox. 'pending' rows are sent; a row
-- is claimed while its request is in flight; claims are cleared at start, so
-- a request in flight when herald died is sent again.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    claimed         INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,        -- unix ms
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id);
CREATE INDEX deliveries_pending_event ON deliveries (event_id) WHERE state = 'pending';

-- The event log: one row per attempt, and one per invalid event. Self-
-- contained (names copied) so it outlives events and webhooks until cleanup.
CREATE TABLE log (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,           -- RFC 3339 UTC, ms
    outcome          TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'invalid')),
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
    response_body    TEXT
);
CREATE INDEX log_at ON log (at);
CREATE INDEX log_webhook ON log (webhook_id, id);
CREATE INDEX log_event ON log (event_uuid);
