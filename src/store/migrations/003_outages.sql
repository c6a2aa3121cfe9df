-- herald schema, version 3: retries, per-webhook concurrency and ordering,
-- batching, pause and alerts (issue 4).

-- Delivery settings (see src/spec/retry.rs and src/spec/webhook.rs for the shapes).
-- Existing webhooks get the default retry schedule.
ALTER TABLE webhooks ADD COLUMN retry TEXT NOT NULL DEFAULT '{"kind":"schedule","delays":[5.0,30.0,120.0,600.0,3600.0],"jitter":0.1}';
ALTER TABLE webhooks ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 4;
ALTER TABLE webhooks ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN follow_redirects INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN batch TEXT;  -- NULL: one request per event

-- Health, written by the deliverer and the health monitor, never by edits
-- (so it does not change updated_at). Times in unix ms.
ALTER TABLE webhooks ADD COLUMN paused_at TEXT;           -- set: nothing is sent until resumed
ALTER TABLE webhooks ADD COLUMN pause_reason TEXT;
ALTER TABLE webhooks ADD COLUMN failing_since_ms INTEGER; -- first failure of the current streak
ALTER TABLE webhooks ADD COLUMN last_failure_ms INTEGER;
ALTER TABLE webhooks ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN last_error TEXT;
ALTER TABLE webhooks ADD COLUMN last_alert_ms INTEGER;
ALTER TABLE webhooks ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;           -- an alert went out in this streak
ALTER TABLE webhooks ADD COLUMN recovery_pending INTEGER NOT NULL DEFAULT 0;  -- announce recovery once
ALTER TABLE webhooks ADD COLUMN last_attempt_at TEXT;
ALTER TABLE webhooks ADD COLUMN last_status TEXT;          -- 'delivered' or 'failed'

-- Tries in the current round (a replay starts a new round; `attempts` keeps
-- counting for the log), and the last error for listings.
ALTER TABLE deliveries ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_webhook_due ON deliveries (webhook_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_webhook_order ON deliveries (webhook_id, id) WHERE state = 'pending';
CREATE INDEX deliveries_failed ON deliveries (webhook_id) WHERE state = 'failed';

-- The log gains health entries (alert, paused, resumed, recovered), the time
-- of a scheduled retry, and test sends. SQLite cannot change a CHECK in
-- place: the table is rebuilt.
CREATE TABLE log_v3 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,
    outcome          TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'invalid', 'alert', 'paused', 'resumed', 'recovered')),
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
INSERT INTO log_v3 (id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
                    duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
                    response_headers, response_body)
SELECT id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
       duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
       response_headers, response_body
FROM log;
DROP TABLE log;
ALTER TABLE log_v3 RENAME TO log;
CREATE INDEX log_at ON log (at);
CREATE INDEX log_webhook ON log (webhook_id, id);
CREATE INDEX log_event ON log (event_uuid);
