-- herald schema, version 5: web admin sessions (issue 5).

-- A logged-in browser. Only the SHA-256 of the session cookie is kept, so a
-- copy of the database does not log anyone in. `csrf` is the token every
-- form and API write from that browser must send back.
CREATE TABLE sessions (
    digest     TEXT PRIMARY KEY,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
