-- The newest state each application was sent (any mode) and acknowledged
-- (client-held cursors). Informational: the plain-poll cursor stays
-- told_version. told_at becomes NULL for applications that never used a
-- plain poll.
CREATE TABLE consumers_v2 (
    app_name        TEXT    PRIMARY KEY,
    told_version    INTEGER NOT NULL DEFAULT 0,
    told_at         TEXT,
    sent_id         INTEGER,
    sent_at         TEXT,
    sent_mode       TEXT,
    sent_long_poll  INTEGER,
    acked_id        INTEGER,
    acked_at        TEXT,
    acked_mode      TEXT,
    acked_long_poll INTEGER
);

INSERT INTO consumers_v2 (app_name, told_version, told_at)
SELECT app_name, told_version, told_at FROM consumers;

DROP TABLE consumers;
ALTER TABLE consumers_v2 RENAME TO consumers;
