-- The once-only duties, held for a term: the server holding a row's lease
-- until `expires_at` (the database's clock) does the duty; each time it
-- changes hands, or lapses and is taken again, `epoch` grows, and every
-- write the duty makes checks its epoch is still the current one.
CREATE TABLE leases (
    duty        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
