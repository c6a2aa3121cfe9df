-- herald schema, version 9: API keys for the live stream (issue 19).
-- Two scopes more: `stream` (only the live stream, within the event
-- patterns and match filters stored on the key) and `ingest` (only
-- POST /api/v1/events). SQLite cannot change a CHECK in place, so the
-- table is rebuilt with its rows, ids and AUTOINCREMENT counter. Nothing
-- references api_keys by foreign key.

CREATE TABLE api_keys_v9 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    hint       TEXT NOT NULL,
    digest     TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope = 'read' OR scope = 'admin' OR scope = 'stream' OR scope = 'ingest'),
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    -- A stream key's limits: a JSON array of event patterns, and one of
    -- `FIELD=VALUE` match filters that always apply. NULL for other scopes.
    events     TEXT,
    filters    TEXT
);
INSERT INTO api_keys_v9 (id, name, hint, digest, scope, created_at, revoked_at)
SELECT id, name, hint, digest, scope, created_at, revoked_at FROM api_keys;
-- Ids of deleted rows are not given out again.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'api_keys'))
WHERE name = 'api_keys_v9' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'api_keys');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'api_keys_v9', seq FROM sqlite_sequence
WHERE name = 'api_keys' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'api_keys_v9');
DROP TABLE api_keys;
ALTER TABLE api_keys_v9 RENAME TO api_keys;
