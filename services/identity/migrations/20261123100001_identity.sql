-- Identity: tenants, their users and portal contacts, second factors, sessions, API keys,
-- service clients, signing keys and the security audit log. Every tenant-owned table carries
-- tenant_id in its primary key so every lookup is scoped by tenant.

CREATE TABLE tenants (
    id                        uuid PRIMARY KEY,
    slug                      text NOT NULL UNIQUE,
    name                      text NOT NULL,
    default_locale            text NOT NULL,
    default_timezone          text NOT NULL,
    mfa_required_for_staff    boolean NOT NULL DEFAULT false,
    mfa_required_for_contacts boolean NOT NULL DEFAULT false,
    lockout_threshold         integer NOT NULL DEFAULT 10 CHECK (lockout_threshold > 0),
    lockout_duration_seconds  integer NOT NULL DEFAULT 1800 CHECK (lockout_duration_seconds > 0),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    email         text NOT NULL,
    display_name  text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('user', 'customer')),
    role          text CHECK (role IN ('owner', 'admin', 'ar_clerk', 'treasurer', 'viewer')),
    customer_id   uuid,
    password_hash text NOT NULL,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email),
    -- Staff have a role; contacts have a customer instead.
    CHECK ((kind = 'user' AND role IS NOT NULL AND customer_id IS NULL)
        OR (kind = 'customer' AND role IS NULL AND customer_id IS NOT NULL))
);

CREATE TABLE totp_credentials (
    tenant_id      uuid NOT NULL,
    user_id        uuid NOT NULL,
    -- AES-256-GCM under the data key, bound to (tenant, user) as associated data.
    secret_sealed  bytea NOT NULL,
    confirmed_at   timestamptz,
    -- The newest time step accepted; a code of this step or any earlier one is a replay.
    last_used_step bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE recovery_codes (
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    -- The code's first group, not secret: finds the row without trying every hash.
    selector    text NOT NULL,
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, user_id, selector),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE mfa_challenges (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL,
    user_id            uuid NOT NULL,
    token_hash         bytea NOT NULL UNIQUE,
    enrolment_required boolean NOT NULL,
    attempts           integer NOT NULL DEFAULT 0,
    client_ip          text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    consumed_at        timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE refresh_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    -- Every token rotated from one login shares its family; reuse of a rotated token revokes it.
    family_id     uuid NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    rotated_at    timestamptz,
    revoked_at    timestamptz,
    revoke_reason text,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_live ON refresh_tokens (tenant_id, user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE api_keys (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    id             uuid NOT NULL,
    name           text NOT NULL,
    display_prefix text NOT NULL,
    -- HMAC-SHA256 of the whole key under the server's pepper.
    key_hash       bytea NOT NULL UNIQUE,
    scopes         text[] NOT NULL,
    expires_at     timestamptz,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Cobro's own services (and the platform operator): platform-wide, not tenant-owned.
CREATE TABLE service_clients (
    name        text PRIMARY KEY,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);

CREATE TABLE signing_keys (
    kid                text PRIMARY KEY,
    -- Ed25519 seed, AES-256-GCM under the data key with the kid as associated data.
    private_key_sealed bytea NOT NULL,
    public_key         bytea NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Published at once, used for signing from this time on, so every verifier has fetched
    -- the key before the first token signed with it arrives.
    signing_from       timestamptz NOT NULL,
    -- Superseded by a newer key: still published until its last token expired.
    retired_at         timestamptz
);

CREATE TABLE audit_log (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    actor       text NOT NULL,
    subject     text NOT NULL,
    client_ip   text NOT NULL,
    detail      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
