-- The vault: card records under envelope encryption, per-tenant fingerprint keys, key-encryption
-- key versions, and an append-only audit log. No column ever holds a card number in the clear.

CREATE TABLE kek_versions (
    version    integer PRIMARY KEY CHECK (version > 0),
    -- active: wraps new data keys (exactly one); retiring: being rewrapped away;
    -- retired: nothing wraps under it any more and unwrapping with it is refused.
    state      text NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    -- A known value wrapped under this version: a vault started with the wrong KEK notices at
    -- once instead of at the first detokenize.
    canary     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX kek_versions_one_active ON kek_versions (state) WHERE state = 'active';

CREATE TABLE fingerprint_keys (
    tenant_id   uuid PRIMARY KEY,
    -- The tenant's HMAC key for card fingerprints, wrapped under kek_version.
    wrapped_key bytea NOT NULL,
    kek_version integer NOT NULL REFERENCES kek_versions (version),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cards (
    tenant_id   uuid NOT NULL,
    -- Internal id, bound into the ciphertexts' associated data with the token and expiry.
    id          uuid NOT NULL,
    token       text NOT NULL,
    -- Set when a portal contact stored the card: only that customer's contacts see it.
    customer_id uuid,
    brand       text NOT NULL,
    last4       text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month   smallint NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year    smallint NOT NULL,
    -- Emptied when the card is deleted, so nothing derived from the number outlives it.
    fingerprint bytea NOT NULL,
    -- Only permanent tokens stored by staff or services deduplicate.
    dedupe      boolean NOT NULL,
    -- AES-256-GCM of the card data under the record's data key; associated data: tenant, id.
    ciphertext  bytea,
    -- The data key, wrapped under kek_version; associated data: tenant, id, version.
    -- Both NULL once the token is deleted (crypto-shredded).
    wrapped_dek bytea,
    kek_version integer NOT NULL REFERENCES kek_versions (version),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Temporary tokens are shredded after this.
    expires_at  timestamptz,
    deleted_at  timestamptz,
    -- Every lookup is by tenant and token; one index keeps tokenizing cheap.
    PRIMARY KEY (tenant_id, token),
    CHECK (NOT dedupe OR (expires_at IS NULL AND customer_id IS NULL)),
    CHECK ((deleted_at IS NULL) = (wrapped_dek IS NOT NULL AND ciphertext IS NOT NULL))
);
CREATE UNIQUE INDEX cards_dedupe ON cards (tenant_id, fingerprint) WHERE dedupe AND deleted_at IS NULL;
CREATE INDEX cards_expiring ON cards (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE audit_log (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    actor       text NOT NULL,
    actor_kind  text NOT NULL,
    token       text NOT NULL,
    purpose     text NOT NULL,
    outcome     text NOT NULL,
    detail      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Append-only (PCI DSS 10.3.2): the service's own role cannot change or remove what happened.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the vault audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
