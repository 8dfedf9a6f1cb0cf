-- Registered applications, their tokens, and the audit of admin actions.

CREATE TABLE apps (
    name         TEXT PRIMARY KEY,
    -- Role names joined by commas: publish,consume,viewer,admin.
    roles        TEXT NOT NULL,
    description  TEXT,
    owner        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    -- Set while the application is disabled: its tokens are refused.
    disabled_at  TEXT
);

-- Only the SHA-256 of each token is kept: the token itself is shown once,
-- when issued, and never stored.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    app_name      TEXT NOT NULL REFERENCES apps (name),
    hash          BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    label         TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);

CREATE INDEX tokens_by_app ON tokens (app_name);

-- Every change to applications and tokens: who, from where, what.
CREATE TABLE admin_audit (
    id              INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    actor           TEXT NOT NULL,
    actor_token     TEXT,
    source_address  TEXT,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    -- JSON: the fields the action set.
    detail          TEXT NOT NULL
);

-- The token a change was published with: a token id, 'shared' for the
-- shared compatibility token, NULL for changes recorded before it was kept.
ALTER TABLE changes ADD COLUMN token_id TEXT;
