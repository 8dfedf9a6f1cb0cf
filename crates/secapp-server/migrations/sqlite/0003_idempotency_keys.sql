-- Idempotency-Key of publishes: a retry with the same key and the same
-- request gets the original processed_id and records nothing new. Keys are
-- scoped to the publishing application and kept for a configured window.
CREATE TABLE idempotency_keys (
    app_name    TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    -- The request as received (level and Change_at as given), to tell a
    -- retry from a different request reusing the key.
    request     TEXT    NOT NULL,
    change_id   INTEGER NOT NULL REFERENCES changes (id),
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (app_name, key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
