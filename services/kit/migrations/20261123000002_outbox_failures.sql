-- A row the broker refuses for good (too large, invalid) is parked with its error instead of
-- blocking every row behind it; staff see it through the cobro_outbox_failed metric and logs.
ALTER TABLE outbox ADD COLUMN failed_at TIMESTAMPTZ, ADD COLUMN last_error TEXT;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL AND failed_at IS NULL;
-- Inbox rows are kept long enough to recognise any redelivery (well past Kafka's retention),
-- then purged by the relay.
CREATE INDEX inbox_processed_at ON inbox (processed_at);
