-- The outbox serves every sink (webhooks, message brokers), each in the
-- order its events were written.
ALTER TABLE webhook_deliveries RENAME TO deliveries;
ALTER TABLE deliveries RENAME COLUMN webhook TO sink;
DROP INDEX webhook_deliveries_due;

-- A sink's pending deliveries, oldest event first: what the relay reads.
CREATE INDEX deliveries_by_sink ON deliveries (sink, state, event_id);
-- Dead letters, newest first: what the admin API lists.
CREATE INDEX deliveries_dead ON deliveries (event_id) WHERE state = 'dead';
