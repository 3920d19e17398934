-- Reconciliation: bank accounts, the statements imported for them and their lines. A file is
-- imported once (its hash), and a bank entry seen in two overlapping statements is stored once
-- (its key: the bank's entry id where it gives one, else what the entry says).

CREATE TABLE bank_accounts (
    tenant_id   UUID NOT NULL,
    id          UUID NOT NULL,
    name        TEXT NOT NULL,
    -- IBAN, CLABE or local account number, as statements name it.
    number      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number, currency)
);

CREATE TABLE statements (
    tenant_id     UUID NOT NULL,
    id            UUID NOT NULL,
    account_id    UUID NOT NULL,
    format        TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    file_sha256   BYTEA NOT NULL,
    lines_read    INT NOT NULL,
    lines_new     INT NOT NULL,
    imported_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES bank_accounts (tenant_id, id),
    UNIQUE (tenant_id, account_id, file_sha256, statement_id)
);

CREATE TABLE bank_lines (
    tenant_id             UUID NOT NULL,
    id                    UUID NOT NULL,
    account_id            UUID NOT NULL,
    statement_row         UUID NOT NULL,
    entry_key             TEXT NOT NULL,
    booking_date          DATE NOT NULL,
    value_date            DATE,
    amount                NUMERIC NOT NULL CHECK (amount >= 0),
    currency              TEXT NOT NULL,
    direction             TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    counterparty_name     TEXT NOT NULL DEFAULT '',
    counterparty_account  TEXT NOT NULL DEFAULT '',
    end_to_end_id         TEXT NOT NULL DEFAULT '',
    reference             TEXT NOT NULL DEFAULT '',
    remittance            TEXT NOT NULL DEFAULT '',
    bank_code             TEXT NOT NULL DEFAULT '',
    statement_id          TEXT NOT NULL,
    entry_id              TEXT NOT NULL,
    -- unmatched, suggested, matched, rejected
    status                TEXT NOT NULL DEFAULT 'unmatched',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, statement_row) REFERENCES statements (tenant_id, id),
    UNIQUE (tenant_id, account_id, entry_key)
);
CREATE INDEX bank_lines_open ON bank_lines (tenant_id, booking_date) WHERE status = 'unmatched';
