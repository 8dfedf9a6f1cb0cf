-- Every published change, in the order its id was assigned. Nothing is ever
-- deleted or updated: the table is the history, and the head is derived from it.
CREATE TABLE changes (
    -- AUTOINCREMENT: ids strictly increase and are never reused.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    level         INTEGER NOT NULL,
    -- Normalised RFC 3339 UTC text, exactly as echoed to consumers.
    changed_at    TEXT    NOT NULL,
    published_by  TEXT    NOT NULL,
    received_at   TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('head', 'tie', 'older')),
    -- The head version this change was given when it won; NULL otherwise.
    head_version  INTEGER UNIQUE CHECK ((outcome = 'head') = (head_version IS NOT NULL))
);

-- What each application was last told through the server-held cursor.
CREATE TABLE consumers (
    app_name      TEXT    PRIMARY KEY,
    told_version  INTEGER NOT NULL,
    told_at       TEXT    NOT NULL
);
