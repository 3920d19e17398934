-- Payments taken back (reconciliation undid the bank match that sent them).
--
-- One row per reversed payment id, written by the reversal whether or not the payment has
-- arrived yet: the reversal and its payment travel on different partitions, so either may come
-- first. A row written before the payment is a tombstone: the payment, when it comes, is not
-- applied. There is no foreign key to payments for that reason.
CREATE TABLE payment_reversals (
    tenant_id         uuid NOT NULL,
    payment_id        text NOT NULL,
    reason            text NOT NULL,
    -- Whether the payment had been applied when the reversal arrived (false: a tombstone).
    payment_recorded  boolean NOT NULL,
    reversed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, payment_id)
);

-- Allocations taken back stay on record, with the day they were taken back, so statements and
-- receivables "as they stood" on an earlier day do not change.
ALTER TABLE allocations ADD COLUMN reversed_on date;
