-- An invoice's installment plan (invoicing's installments.planned) and what is left of each:
-- reminders then follow each installment's due date and amount instead of the invoice's.
CREATE TABLE installments (
    tenant_id       UUID NOT NULL,
    installment_id  UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    seq             INT NOT NULL,
    due_date        DATE NOT NULL,
    amount          NUMERIC NOT NULL,
    balance         NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, installment_id)
);
CREATE INDEX installments_invoice ON installments (tenant_id, invoice_id);

ALTER TABLE messages ADD COLUMN installment_id UUID;
