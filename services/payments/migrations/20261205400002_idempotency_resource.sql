-- The id of what a keyed request creates (a payment, a refund), chosen when the key is first
-- claimed: a retry after a crash or an unclear failure continues that same record instead of
-- making a second one.
ALTER TABLE idempotency_keys ADD COLUMN resource_id UUID;
