-- The network address each publish came from, for the audit history.
-- NULL for changes recorded before it was kept.
ALTER TABLE changes ADD COLUMN source_address TEXT;

CREATE INDEX changes_by_publisher ON changes (published_by, id);
