-- Installments of a plan, from invoicing's installments.planned: an invoice under a plan is
-- charged installment by installment, never whole on its original due date.
CREATE TABLE planned_installments (
    tenant_id       UUID NOT NULL,
    installment_id  UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    due_date        DATE NOT NULL,
    PRIMARY KEY (tenant_id, installment_id)
);
CREATE INDEX planned_installments_invoice ON planned_installments (tenant_id, invoice_id);

-- Invoices autopay leaves alone while the customer's hardship request or dispute is open.
CREATE TABLE autopay_holds (
    tenant_id   UUID NOT NULL,
    invoice_id  UUID NOT NULL,
    -- hardship, dispute
    reason      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, reason)
);

-- The business day of a run's latest try: a retry is never the same day, even when the
-- schedule's date already passed (the run waited on a hold, or the job was down).
ALTER TABLE autopay_runs ADD COLUMN last_tried_on DATE;
