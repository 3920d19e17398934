-- Recurring invoices, "I can't pay" requests, disputes, due/overdue notices, and a change feed
-- for ERPs.

CREATE TABLE recurring_templates (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    customer_id      uuid NOT NULL,
    currency         text NOT NULL,
    -- The invoice to create each period, as CreateInvoice takes it.
    invoice          jsonb NOT NULL,
    frequency        text NOT NULL CHECK (frequency IN ('monthly', 'quarterly', 'yearly')),
    day_of_month     integer NOT NULL CHECK (day_of_month BETWEEN 1 AND 28),
    next_period      date NOT NULL,
    end_date         date,
    max_count        integer CHECK (max_count > 0),
    generated_count  integer NOT NULL DEFAULT 0,
    auto_issue       boolean NOT NULL,
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX recurring_due ON recurring_templates (next_period) WHERE active;

-- One row per template and period: the primary key makes each period's invoice exactly once,
-- whatever replicas or restarts do.
CREATE TABLE recurring_runs (
    tenant_id   uuid NOT NULL,
    template_id uuid NOT NULL,
    period      date NOT NULL,
    invoice_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id, period)
);

CREATE TABLE hardship_requests (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    invoice_id         uuid NOT NULL,
    requested_by       text NOT NULL,
    reason             text NOT NULL,
    installments       integer NOT NULL CHECK (installments BETWEEN 2 AND 60),
    first_date         date NOT NULL,
    note               text NOT NULL DEFAULT '',
    state              text NOT NULL CHECK (state IN ('open', 'accepted', 'rejected')),
    resolution_note    text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE UNIQUE INDEX hardship_one_open ON hardship_requests (tenant_id, invoice_id) WHERE state = 'open';

CREATE TABLE disputes (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    invoice_id     uuid NOT NULL,
    opened_by      text NOT NULL,
    reason         text NOT NULL,
    state          text NOT NULL CHECK (state IN ('open', 'credited', 'rejected')),
    credit_note_id uuid,
    resolution_note text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE UNIQUE INDEX disputes_one_open ON disputes (tenant_id, invoice_id) WHERE state = 'open';

ALTER TABLE installments ADD COLUMN due_notified boolean NOT NULL DEFAULT false;
ALTER TABLE installments ADD COLUMN overdue_notified boolean NOT NULL DEFAULT false;

-- Every change to an invoice takes the next value, so an ERP asks "what changed after N".
CREATE SEQUENCE invoice_changes;
ALTER TABLE invoices ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('invoice_changes');
CREATE FUNCTION invoices_touch_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('invoice_changes');
    RETURN NEW;
END;
$$;
CREATE TRIGGER invoices_change_seq BEFORE UPDATE ON invoices FOR EACH ROW EXECUTE FUNCTION invoices_touch_change_seq();
CREATE INDEX invoices_changes ON invoices (tenant_id, change_seq);
