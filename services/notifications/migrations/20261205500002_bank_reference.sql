-- The RF creditor reference payments assigned to an invoice (reference.assigned), shown in
-- messages so the payer knows what to write on a transfer.
ALTER TABLE invoices ADD COLUMN bank_reference TEXT NOT NULL DEFAULT '';
