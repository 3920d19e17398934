-- What invoicing has applied of each payment (its invoice.payment_applied events). A payment
-- that succeeded but is not applied yet still counts against the open balance, so the portal and
-- autopay cannot both collect the same invoice in the gap before invoicing catches up.
CREATE TABLE payment_applications (
    tenant_id   UUID NOT NULL,
    payment_id  UUID NOT NULL,
    invoice_id  UUID NOT NULL,
    amount      NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, payment_id, invoice_id)
);
CREATE INDEX payment_intents_invoices ON payment_intents USING gin (invoice_ids);
