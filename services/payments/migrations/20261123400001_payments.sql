-- Payments: intents and their attempts, refunds, idempotency, saved methods and mandates,
-- autopay, payment links, creditor references, payouts, and what payments knows of invoices.

-- Per-tenant payment settings.
CREATE TABLE tenant_settings (
    tenant_id          UUID PRIMARY KEY,
    allow_overpayment  BOOLEAN NOT NULL DEFAULT false,
    -- Where bank transfers go: shown with the reference in transfer instructions.
    account_holder     TEXT NOT NULL DEFAULT '',
    iban               TEXT NOT NULL DEFAULT '',
    bic                TEXT NOT NULL DEFAULT '',
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Invoicing's open invoices as its events describe them: what an intent may collect.
CREATE TABLE receivables (
    tenant_id    UUID NOT NULL,
    invoice_id   UUID NOT NULL,
    customer_id  UUID NOT NULL,
    number       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total        NUMERIC NOT NULL,
    balance      NUMERIC NOT NULL,
    due_date     DATE,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, invoice_id)
);
CREATE INDEX receivables_due ON receivables (due_date) WHERE balance > 0;

-- Installments whose due date arrived with a balance (invoicing's installment.due).
CREATE TABLE installments_due (
    tenant_id       UUID NOT NULL,
    installment_id  UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    due_date        DATE NOT NULL,
    currency        TEXT NOT NULL,
    balance         NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, installment_id)
);

CREATE TABLE payment_intents (
    tenant_id          UUID NOT NULL,
    id                 UUID NOT NULL,
    customer_id        UUID NOT NULL,
    amount             NUMERIC NOT NULL CHECK (amount > 0),
    currency           TEXT NOT NULL,
    status             TEXT NOT NULL,
    -- card, bank_transfer, direct_debit; empty until a method is attached.
    method             TEXT NOT NULL DEFAULT '',
    card_token         TEXT,
    payment_method_id  UUID,
    mandate_id         UUID,
    invoice_ids        UUID[] NOT NULL DEFAULT '{}',
    installment_id     UUID,
    link_id            UUID,
    autopay_run_id     UUID,
    description        TEXT NOT NULL DEFAULT '',
    transfer_reference TEXT,
    return_url         TEXT NOT NULL DEFAULT '',
    next_action_url    TEXT,
    processor          TEXT,
    processor_ref      TEXT,
    amount_received    NUMERIC NOT NULL DEFAULT 0,
    amount_refunded    NUMERIC NOT NULL DEFAULT 0,
    fee                NUMERIC NOT NULL DEFAULT 0,
    failure_code       TEXT,
    failure_message    TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    succeeded_at       TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    CHECK (amount_refunded <= amount_received)
);
CREATE INDEX payment_intents_customer ON payment_intents (tenant_id, customer_id, id);
CREATE INDEX payment_intents_reference ON payment_intents (tenant_id, transfer_reference)
    WHERE transfer_reference IS NOT NULL;

-- One row per call to a processor, written before the call so a crash leaves a trace.
CREATE TABLE attempts (
    tenant_id      UUID NOT NULL,
    id             UUID NOT NULL,
    intent_id      UUID NOT NULL,
    connector      TEXT NOT NULL,
    -- processing, requires_action, succeeded, failed, canceled
    status         TEXT NOT NULL,
    amount         NUMERIC NOT NULL,
    currency       TEXT NOT NULL,
    fee            NUMERIC NOT NULL DEFAULT 0,
    processor_ref  TEXT,
    decline_code   TEXT,
    message        TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, intent_id) REFERENCES payment_intents (tenant_id, id)
);
CREATE INDEX attempts_intent ON attempts (tenant_id, intent_id);
-- Webhooks name an attempt without its tenant.
CREATE UNIQUE INDEX attempts_id ON attempts (id);
CREATE INDEX attempts_open ON attempts (updated_at) WHERE status IN ('processing', 'requires_action');
CREATE INDEX attempts_processor_ref ON attempts (connector, processor_ref);

CREATE TABLE refunds (
    tenant_id      UUID NOT NULL,
    id             UUID NOT NULL,
    intent_id      UUID NOT NULL,
    amount         NUMERIC NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    -- pending, succeeded, failed
    status         TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    processor_ref  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, intent_id) REFERENCES payment_intents (tenant_id, id)
);
CREATE INDEX refunds_intent ON refunds (tenant_id, intent_id);

-- A mutating request's key: the first caller claims it, concurrent duplicates wait for the
-- stored answer, a crashed claim expires at locked_until and may be taken over.
CREATE TABLE idempotency_keys (
    tenant_id     UUID NOT NULL,
    key           TEXT NOT NULL,
    operation     TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    response      BYTEA,
    locked_until  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE payment_methods (
    tenant_id     UUID NOT NULL,
    id            UUID NOT NULL,
    customer_id   UUID NOT NULL,
    -- card, direct_debit
    kind          TEXT NOT NULL,
    vault_token   TEXT,
    brand         TEXT NOT NULL DEFAULT '',
    last4         TEXT NOT NULL DEFAULT '',
    exp_month     INT,
    exp_year      INT,
    -- direct debit: the payer's account, masked except the last four characters
    account_masked TEXT NOT NULL DEFAULT '',
    is_default    BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX payment_methods_customer ON payment_methods (tenant_id, customer_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (tenant_id, customer_id)
    WHERE is_default AND removed_at IS NULL;
CREATE UNIQUE INDEX payment_methods_token ON payment_methods (tenant_id, customer_id, vault_token)
    WHERE removed_at IS NULL AND vault_token IS NOT NULL;

-- The customer's consent: autopay (charge the default method on due dates) or a direct-debit
-- mandate. What was shown, when and from where, kept as given.
CREATE TABLE mandates (
    tenant_id          UUID NOT NULL,
    id                 UUID NOT NULL,
    customer_id        UUID NOT NULL,
    -- autopay, direct_debit
    kind               TEXT NOT NULL,
    payment_method_id  UUID,
    mandate_reference  TEXT NOT NULL DEFAULT '',
    consent_text       TEXT NOT NULL,
    consent_ip         TEXT NOT NULL,
    consented_at       TIMESTAMPTZ NOT NULL,
    revoked_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX mandates_one_active_autopay ON mandates (tenant_id, customer_id)
    WHERE kind = 'autopay' AND revoked_at IS NULL;

-- One autopay collection of one due amount, with its retries.
CREATE TABLE autopay_runs (
    tenant_id       UUID NOT NULL,
    id              UUID NOT NULL,
    customer_id     UUID NOT NULL,
    invoice_id      UUID NOT NULL,
    installment_id  UUID,
    due_date        DATE NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_try_on     DATE,
    -- scheduled, succeeded, failed (hard decline or retries used up), stopped
    status          TEXT NOT NULL,
    last_intent_id  UUID,
    last_decline    TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX autopay_runs_once ON autopay_runs (tenant_id, invoice_id, installment_id, due_date) NULLS NOT DISTINCT;
CREATE INDEX autopay_runs_next ON autopay_runs (next_try_on) WHERE status = 'scheduled';

CREATE TABLE payment_links (
    tenant_id       UUID NOT NULL,
    id              UUID NOT NULL,
    -- SHA-256 of the token; the token itself is shown once.
    token_hash      BYTEA NOT NULL UNIQUE,
    customer_id     UUID NOT NULL,
    invoice_id      UUID,
    installment_id  UUID,
    amount          NUMERIC CHECK (amount > 0),
    currency        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    expires_at      TIMESTAMPTZ NOT NULL,
    revoked_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- ISO 11649 creditor references: one per customer (invoice_id NULL) and one per invoice.
CREATE TABLE creditor_references (
    tenant_id    UUID NOT NULL,
    reference    TEXT NOT NULL,
    customer_id  UUID NOT NULL,
    invoice_id   UUID,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reference)
);
CREATE UNIQUE INDEX creditor_references_owner ON creditor_references (tenant_id, customer_id, invoice_id) NULLS NOT DISTINCT;

-- What processors paid out, for reconciliation against the bank statement.
CREATE TABLE payouts (
    tenant_id   UUID NOT NULL,
    id          UUID NOT NULL,
    connector   TEXT NOT NULL,
    payout_ref  TEXT NOT NULL,
    day         DATE NOT NULL,
    currency    TEXT NOT NULL,
    gross       NUMERIC NOT NULL,
    fees        NUMERIC NOT NULL,
    refunds     NUMERIC NOT NULL,
    net         NUMERIC NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, connector, payout_ref)
);

-- The sandbox processor's own books. They stand for a processor's systems outside Cobro,
-- so they are written in their own transactions and survive a crash of the caller.
CREATE TABLE sandbox_charges (
    processor_ref  TEXT PRIMARY KEY,
    attempt_id     UUID NOT NULL UNIQUE,
    tenant_id      UUID NOT NULL,
    amount         NUMERIC NOT NULL,
    currency       TEXT NOT NULL,
    fee            NUMERIC NOT NULL DEFAULT 0,
    -- succeeded, requires_action, declined, canceled
    status         TEXT NOT NULL,
    decline_code   TEXT,
    last4          TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_charges_day ON sandbox_charges (tenant_id, currency, updated_at);

CREATE TABLE sandbox_refunds (
    processor_ref    TEXT PRIMARY KEY,
    idempotency_key  UUID NOT NULL UNIQUE,
    charge_ref       TEXT NOT NULL REFERENCES sandbox_charges (processor_ref),
    amount           NUMERIC NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
