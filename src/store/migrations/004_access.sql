-- herald schema, version 4: access to the listener (issue 5).

-- Settings herald keeps for itself (the admin password's argon2 hash; later
-- the settings saved in the admin UI).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- API keys: only the SHA-256 of a key is kept; `hint` is its first
-- characters, to tell keys apart in listings.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    hint       TEXT NOT NULL,
    digest     TEXT NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
