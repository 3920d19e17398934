-- ERP imports: a hash of what the ERP sent, so a re-sent invoice is recognised as unchanged.
ALTER TABLE invoices ADD COLUMN source_hash text;
