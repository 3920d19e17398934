-- Invoicing: customers, invoices with their lines, installments, credit notes, payments and
-- their allocations, customer credit, and the per-tenant number series. Amounts are NUMERIC in
-- the row's currency; every tenant-owned table carries tenant_id in its primary key.

CREATE TABLE customers (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    external_id       text,
    legal_name        text NOT NULL,
    tax_id            text NOT NULL DEFAULT '',
    tax_country       text NOT NULL DEFAULT '',
    billing_address   jsonb NOT NULL DEFAULT '{}',
    contacts          jsonb NOT NULL DEFAULT '[]',
    payment_terms_days integer NOT NULL CHECK (payment_terms_days BETWEEN 0 AND 365),
    currency          text NOT NULL,
    credit_limit      numeric,
    reminder_policy   text NOT NULL DEFAULT '',
    autopay           boolean NOT NULL DEFAULT false,
    tags              text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- An ERP upserts by its own id.
CREATE UNIQUE INDEX customers_external_id ON customers (tenant_id, external_id) WHERE external_id IS NOT NULL;

-- Gapless numbering: one row per (tenant, series, year), its counter taken under a row lock in
-- the issuing transaction, so a rolled-back issue gives its number back.
CREATE TABLE number_series (
    tenant_id  uuid NOT NULL,
    series     text NOT NULL,
    year       integer NOT NULL,
    last_value bigint NOT NULL,
    PRIMARY KEY (tenant_id, series, year)
);

CREATE TABLE invoices (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    customer_id      uuid NOT NULL,
    external_id      text,
    number           text,
    status           text NOT NULL CHECK (status IN ('draft', 'open', 'partially_paid', 'paid', 'void', 'uncollectible')),
    currency         text NOT NULL,
    issue_date       date,
    due_date         date,
    discount_kind    text NOT NULL DEFAULT 'none' CHECK (discount_kind IN ('none', 'percent', 'amount')),
    discount_value   numeric NOT NULL DEFAULT 0,
    subtotal         numeric NOT NULL,
    discount_total   numeric NOT NULL,
    tax_total        numeric NOT NULL,
    total            numeric NOT NULL,
    credited         numeric NOT NULL DEFAULT 0,
    paid             numeric NOT NULL DEFAULT 0,
    balance          numeric NOT NULL,
    memo             text NOT NULL DEFAULT '',
    overdue_notified boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    issued_at        timestamptz,
    voided_at        timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    CHECK (balance >= 0),
    CHECK ((status = 'draft') = (number IS NULL))
);
CREATE UNIQUE INDEX invoices_number ON invoices (tenant_id, number) WHERE number IS NOT NULL;
CREATE UNIQUE INDEX invoices_external_id ON invoices (tenant_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX invoices_open ON invoices (tenant_id, customer_id, due_date) WHERE status IN ('open', 'partially_paid');

CREATE TABLE invoice_lines (
    tenant_id      uuid NOT NULL,
    invoice_id     uuid NOT NULL,
    position       integer NOT NULL,
    description    text NOT NULL,
    quantity       numeric NOT NULL CHECK (quantity > 0),
    unit_price     numeric NOT NULL CHECK (unit_price >= 0),
    discount_kind  text NOT NULL CHECK (discount_kind IN ('none', 'percent', 'amount')),
    discount_value numeric NOT NULL,
    -- [{"name": "IVA", "rate_percent": "16", "inclusive": false}, ...]
    taxes          jsonb NOT NULL,
    net            numeric NOT NULL,
    tax_total      numeric NOT NULL,
    total          numeric NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id, position),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE installments (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    invoice_id uuid NOT NULL,
    seq        integer NOT NULL,
    due_date   date NOT NULL,
    amount     numeric NOT NULL CHECK (amount > 0),
    balance    numeric NOT NULL CHECK (balance >= 0),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, invoice_id, seq),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);

CREATE TABLE credit_notes (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    invoice_id uuid NOT NULL,
    number     text NOT NULL,
    amount     numeric NOT NULL CHECK (amount > 0),
    currency   text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);

-- A payment is applied once: its id (from payments, reconciliation or staff) is the key.
CREATE TABLE payments (
    tenant_id   uuid NOT NULL,
    id          text NOT NULL,
    customer_id uuid NOT NULL,
    amount      numeric NOT NULL CHECK (amount > 0),
    currency    text NOT NULL,
    method      text NOT NULL,
    received_on date NOT NULL,
    unapplied   numeric NOT NULL CHECK (unapplied >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE TABLE allocations (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    payment_id     text NOT NULL,
    invoice_id     uuid NOT NULL,
    installment_id uuid,
    amount         numeric NOT NULL CHECK (amount > 0),
    applied_on     date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX allocations_invoice ON allocations (tenant_id, invoice_id);
