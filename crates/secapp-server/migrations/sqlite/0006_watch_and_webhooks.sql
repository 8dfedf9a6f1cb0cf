-- Stale-consumer alerts and outgoing webhooks.

-- A consumer application's own allowance before it counts as stale, in
-- milliseconds; NULL uses the server's --stale-after.
ALTER TABLE apps ADD COLUMN stale_after_ms INTEGER CHECK (stale_after_ms > 0);

-- What the server knows of each watched consumer application: when it was
-- last seen (only ever moves forward) and its alert state.
CREATE TABLE consumer_watch (
    app        TEXT PRIMARY KEY,
    last_seen  TEXT,
    -- fresh, stale or never_seen; NULL until first evaluated.
    state      TEXT CHECK (state IN ('fresh', 'stale', 'never_seen')),
    -- Since when it is in that state.
    since      TEXT
);

-- Every change of alert state.
CREATE TABLE consumer_watch_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,
    last_seen   TEXT
);

CREATE INDEX consumer_watch_history_by_app ON consumer_watch_history (app, id);

-- The outbox: events written in the same transaction as the change that
-- caused them. The body sent is built from these columns, so every attempt
-- sends the same bytes.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    -- The event's `data`, as JSON text.
    data         TEXT NOT NULL
);

-- One row per event and webhook that subscribed to it.
CREATE TABLE webhook_deliveries (
    event_id         INTEGER NOT NULL REFERENCES events (id),
    webhook          TEXT NOT NULL,
    -- pending, delivered or dead.
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- When it may next be tried; while a sender holds it, when its hold ends.
    next_attempt_at  TEXT NOT NULL,
    finished_at      TEXT,
    last_error       TEXT,
    PRIMARY KEY (event_id, webhook)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook, state, next_attempt_at);
