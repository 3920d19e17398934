-- Notifications: reminder policies, what it knows of customers and invoices (from invoicing's
-- events), opt-outs, and the messages it plans and sends.

-- The tenant default (customer_id NULL) and per-customer overrides. `body` is the policy as the
-- API takes it (steps, times, caps); the webhook secret is kept apart.
CREATE TABLE policies (
    tenant_id       UUID NOT NULL,
    customer_id     UUID,
    body            JSONB NOT NULL,
    webhook_secret  TEXT NOT NULL DEFAULT '',
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, customer_id)
);

-- Customers as invoicing's customer.upserted describes them.
CREATE TABLE customers (
    tenant_id    UUID NOT NULL,
    customer_id  UUID NOT NULL,
    legal_name   TEXT NOT NULL,
    -- [{name, email, phone, whatsapp_opt_in, language, timezone}]
    contacts     JSONB NOT NULL DEFAULT '[]',
    paused       BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Invoices as invoicing's events describe them: what reminders are about.
CREATE TABLE invoices (
    tenant_id     UUID NOT NULL,
    invoice_id    UUID NOT NULL,
    customer_id   UUID NOT NULL,
    number        TEXT NOT NULL,
    status        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    total         NUMERIC NOT NULL,
    balance       NUMERIC NOT NULL,
    due_date      DATE NOT NULL,
    -- Paused by staff, or while a hardship request or a dispute is open.
    paused_by_staff  BOOLEAN NOT NULL DEFAULT false,
    hardship_open    BOOLEAN NOT NULL DEFAULT false,
    dispute_open     BOOLEAN NOT NULL DEFAULT false,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, invoice_id)
);

-- A contact said no to a channel.
CREATE TABLE opt_outs (
    tenant_id    UUID NOT NULL,
    customer_id  UUID NOT NULL,
    address      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id, address, channel)
);

-- One row per message: a reminder step on one channel to one recipient, or a transactional
-- message. `idempotency_key` is what providers see (the email's Message-ID, HTTP
-- Idempotency-Key), the same on every retry.
CREATE TABLE messages (
    tenant_id        UUID NOT NULL,
    id               UUID NOT NULL,
    customer_id      UUID NOT NULL,
    invoice_id       UUID,
    kind             TEXT NOT NULL,
    step             INT,
    tone             TEXT NOT NULL DEFAULT '',
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    language         TEXT NOT NULL DEFAULT 'en',
    -- What the cause told that the message shows (a receipt's amount and date).
    data             JSONB NOT NULL DEFAULT '{}',
    send_at          TIMESTAMPTZ NOT NULL,
    -- planned, sending, sent, canceled, failed, dead_lettered
    status           TEXT NOT NULL,
    attempts         INT NOT NULL DEFAULT 0,
    locked_until     TIMESTAMPTZ,
    last_error       TEXT NOT NULL DEFAULT '',
    provider_id      TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT NOT NULL,
    sent_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX messages_due ON messages (send_at) WHERE status = 'planned';
CREATE INDEX messages_stuck ON messages (locked_until) WHERE status = 'sending';
CREATE INDEX messages_invoice ON messages (tenant_id, invoice_id);
CREATE INDEX messages_sent_per_customer ON messages (tenant_id, customer_id, sent_at) WHERE status = 'sent';
