-- The whole schema of secapp on PostgreSQL, as the SQLite one stands after
-- its migration 6. Times are timestamptz (microseconds, as secapp keeps
-- them), except changed_at: the normalised RFC 3339 text echoed to consumers.

CREATE TABLE changes (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    level           BIGINT      NOT NULL,
    changed_at      TEXT        NOT NULL,
    published_by    TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    outcome         TEXT        NOT NULL CHECK (outcome IN ('head', 'tie', 'older')),
    -- The head version this change was given when it won; NULL otherwise.
    head_version    BIGINT UNIQUE CHECK ((outcome = 'head') = (head_version IS NOT NULL)),
    source_address  TEXT,
    token_id        TEXT
);

CREATE INDEX changes_by_publisher ON changes (published_by, id);

CREATE TABLE consumers (
    app_name         TEXT PRIMARY KEY,
    told_version     BIGINT NOT NULL DEFAULT 0,
    told_at          TIMESTAMPTZ,
    sent_id          BIGINT,
    sent_at          TIMESTAMPTZ,
    sent_mode        TEXT,
    sent_long_poll   BOOLEAN,
    acked_id         BIGINT,
    acked_at         TIMESTAMPTZ,
    acked_mode       TEXT,
    acked_long_poll  BOOLEAN
);

CREATE TABLE idempotency_keys (
    app_name    TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    request     TEXT        NOT NULL,
    change_id   BIGINT      NOT NULL REFERENCES changes (id),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_name, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE apps (
    name            TEXT PRIMARY KEY,
    roles           TEXT        NOT NULL,
    description     TEXT,
    owner           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    disabled_at     TIMESTAMPTZ,
    stale_after_ms  BIGINT CHECK (stale_after_ms > 0)
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    app_name      TEXT        NOT NULL REFERENCES apps (name),
    hash          BYTEA       NOT NULL UNIQUE CHECK (length(hash) = 32),
    label         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ
);

CREATE INDEX tokens_by_app ON tokens (app_name);

CREATE TABLE admin_audit (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL,
    actor           TEXT NOT NULL,
    actor_token     TEXT,
    source_address  TEXT,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    detail          TEXT NOT NULL
);

CREATE TABLE consumer_watch (
    app        TEXT PRIMARY KEY,
    last_seen  TIMESTAMPTZ,
    state      TEXT CHECK (state IN ('fresh', 'stale', 'never_seen')),
    since      TIMESTAMPTZ
);

CREATE TABLE consumer_watch_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app         TEXT        NOT NULL,
    from_state  TEXT        NOT NULL,
    to_state    TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ
);

CREATE INDEX consumer_watch_history_by_app ON consumer_watch_history (app, id);

CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type         TEXT        NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    data         TEXT        NOT NULL
);

CREATE TABLE webhook_deliveries (
    event_id         BIGINT      NOT NULL REFERENCES events (id),
    webhook          TEXT        NOT NULL,
    state            TEXT        NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    last_error       TEXT,
    PRIMARY KEY (event_id, webhook)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook, state, next_attempt_at);
