-- What each confirmed match applied ahead of invoicing, per item, until invoicing's
-- `invoice.payment_applied` for that payment comes back (or the match is undone).
CREATE TABLE pending_payments (
    tenant_id       UUID NOT NULL,
    payment_id      TEXT NOT NULL,
    item_id         UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    installment_id  UUID,
    amount          NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, payment_id, item_id)
);
