-- Reconciliation: what is owed (kept from invoicing's and payments' events), the matches made
-- against it, who decided them, discrepancies for staff, and the tenant's settings.

CREATE TABLE settings (
    tenant_id               UUID PRIMARY KEY,
    auto_confirm_threshold  NUMERIC NOT NULL DEFAULT 0.90 CHECK (auto_confirm_threshold > 0 AND auto_confirm_threshold <= 1),
    unmatched_after_days    INT NOT NULL DEFAULT 5 CHECK (unmatched_after_days BETWEEN 1 AND 365),
    date_window_days        INT NOT NULL DEFAULT 30 CHECK (date_window_days BETWEEN 0 AND 365),
    payout_tolerance        NUMERIC NOT NULL DEFAULT 0.50 CHECK (payout_tolerance >= 0),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE csv_mappings (
    tenant_id  UUID NOT NULL,
    name       TEXT NOT NULL,
    mapping    JSONB NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE customers (
    tenant_id    UUID NOT NULL,
    customer_id  UUID NOT NULL,
    name         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Accounts customers paid from, learned from confirmed matches.
CREATE TABLE customer_accounts (
    tenant_id    UUID NOT NULL,
    account      TEXT NOT NULL,
    customer_id  UUID NOT NULL,
    PRIMARY KEY (tenant_id, account, customer_id)
);

-- RF creditor references payments handed out, for a customer or one invoice.
CREATE TABLE payment_references (
    tenant_id    UUID NOT NULL,
    reference    TEXT NOT NULL,
    customer_id  UUID NOT NULL,
    invoice_id   UUID,
    PRIMARY KEY (tenant_id, reference)
);

-- Invoices as invoicing last described them.
CREATE TABLE invoices (
    tenant_id    UUID NOT NULL,
    invoice_id   UUID NOT NULL,
    customer_id  UUID NOT NULL,
    number       TEXT NOT NULL,
    status       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total        NUMERIC NOT NULL,
    balance      NUMERIC NOT NULL,
    due_date     DATE NOT NULL,
    -- Applied here by confirmed matches and not yet seen back from invoicing.
    pending      NUMERIC NOT NULL DEFAULT 0,
    has_plan     BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, invoice_id)
);
CREATE INDEX invoices_open ON invoices (tenant_id) WHERE balance > 0;

CREATE TABLE installments (
    tenant_id       UUID NOT NULL,
    installment_id  UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    seq             INT NOT NULL,
    due_date        DATE NOT NULL,
    amount          NUMERIC NOT NULL,
    balance         NUMERIC NOT NULL,
    pending         NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, installment_id)
);
CREATE INDEX installments_of ON installments (tenant_id, invoice_id);

CREATE TABLE payouts (
    tenant_id   UUID NOT NULL,
    payout_id   UUID NOT NULL,
    connector   TEXT NOT NULL,
    payout_ref  TEXT NOT NULL,
    day         DATE NOT NULL,
    currency    TEXT NOT NULL,
    gross       NUMERIC NOT NULL,
    fees        NUMERIC NOT NULL,
    refunds     NUMERIC NOT NULL,
    net         NUMERIC NOT NULL,
    -- The bank line that paid it out, once matched.
    line_id     UUID,
    PRIMARY KEY (tenant_id, payout_id)
);

CREATE TABLE matches (
    tenant_id    UUID NOT NULL,
    id           UUID NOT NULL,
    line_id      UUID NOT NULL,
    rule         TEXT NOT NULL,
    confidence   NUMERIC NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('suggested', 'confirmed', 'rejected', 'reversed')),
    customer_id  UUID,
    decided_by   TEXT NOT NULL DEFAULT '',
    decided_at   TIMESTAMPTZ,
    reason       TEXT NOT NULL DEFAULT '',
    payment_id   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, line_id) REFERENCES bank_lines (tenant_id, id)
);
-- A line has at most one live match.
CREATE UNIQUE INDEX matches_live ON matches (tenant_id, line_id) WHERE status IN ('suggested', 'confirmed');
CREATE INDEX matches_by_status ON matches (tenant_id, status, id);

CREATE TABLE match_items (
    tenant_id       UUID NOT NULL,
    match_id        UUID NOT NULL,
    seq             INT NOT NULL,
    invoice_id      UUID,
    installment_id  UUID,
    payout_id       UUID,
    invoice_number  TEXT NOT NULL DEFAULT '',
    amount          NUMERIC NOT NULL,
    currency        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, match_id, seq),
    FOREIGN KEY (tenant_id, match_id) REFERENCES matches (tenant_id, id)
);

-- Every decision on a match, append only.
CREATE TABLE match_audit (
    tenant_id  UUID NOT NULL,
    id         BIGSERIAL,
    match_id   UUID NOT NULL,
    line_id    UUID NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE discrepancies (
    tenant_id    UUID NOT NULL,
    id           UUID NOT NULL,
    kind         TEXT NOT NULL,
    line_id      UUID,
    payout_id    UUID,
    invoice_id   UUID,
    currency     TEXT NOT NULL,
    amount       NUMERIC NOT NULL,
    expected     NUMERIC,
    detail       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolved_by  TEXT NOT NULL DEFAULT '',
    resolution   TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
-- Each kind is raised once per line or payout.
CREATE UNIQUE INDEX discrepancies_once ON discrepancies (tenant_id, kind, COALESCE(line_id, payout_id));
CREATE INDEX discrepancies_by_status ON discrepancies (tenant_id, status, id);

-- Tenants whose open items changed since matching last ran.
CREATE TABLE dirty_tenants (
    tenant_id  UUID PRIMARY KEY,
    since      TIMESTAMPTZ NOT NULL DEFAULT now()
);
