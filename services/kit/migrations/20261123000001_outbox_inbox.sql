-- Event tables every service has in its own schema (run by cobro-kit before the service's own
-- migrations, tracked in _kit_migrations).

-- Transactional outbox: rows are written in the same transaction as the state change they
-- announce; the relay publishes them in `seq` order and stamps `published_at`.
CREATE TABLE outbox (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      UUID        NOT NULL UNIQUE,
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,
    event_type    TEXT        NOT NULL,
    tenant_id     UUID        NOT NULL,
    envelope      BYTEA       NOT NULL,
    traceparent   TEXT        NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at  TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Inbox: one row per (consumer, event) handled, written in the handler's transaction, so a
-- redelivered event is recognised and changes nothing twice.
CREATE TABLE inbox (
    consumer      TEXT        NOT NULL,
    event_id      UUID        NOT NULL,
    event_type    TEXT        NOT NULL,
    topic         TEXT        NOT NULL,
    kafka_partition INTEGER   NOT NULL,
    kafka_offset  BIGINT      NOT NULL,
    -- 'handled', or 'rejected' when the handler refused the event for good (reason kept).
    outcome       TEXT        NOT NULL DEFAULT 'handled',
    reason        TEXT,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
