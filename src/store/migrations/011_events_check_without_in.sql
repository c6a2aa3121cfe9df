-- herald schema, version 11: the events table with its CHECK on state
-- written as an OR chain, as migration 6 did for log and deliveries:
-- SQLite builds a temporary index for `x IN (list)` every time it checks a
-- row, which is twice per event (its insert, its routing). SQLite cannot
-- change a CHECK in place: the table is rebuilt with its rows, ids,
-- AUTOINCREMENT counter and indexes. deliveries references events by
-- foreign key: the rebuild runs with foreign keys off (migrations run
-- outside a foreign-key check; see migrate()), and the rebuilt table keeps
-- every id, so every reference still holds.

CREATE TABLE events_v11 (
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
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state = 'queued' OR state = 'routed' OR state = 'invalid'),
    error       TEXT,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    routed_at   TEXT,
    source      TEXT
);
INSERT INTO events_v11 (id, uuid, type, created_at, ticket_id, data, state, error, received_at, routed_at, source)
SELECT id, uuid, type, created_at, ticket_id, data, state, error, received_at, routed_at, source FROM events;
-- Ids of deleted rows are not given out again.
UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'events'))
WHERE name = 'events_v11' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_v11', seq FROM sqlite_sequence
WHERE name = 'events' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_v11');
DROP TABLE events;
ALTER TABLE events_v11 RENAME TO events;
CREATE INDEX events_queued ON events (id) WHERE state = 'queued';
CREATE INDEX events_routed_at ON events (routed_at) WHERE state <> 'queued';
