-- The outbox; see the SQLite migration of the same name for the design notes.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       UUID        NOT NULL,
    target          TEXT        NOT NULL,
    kind            TEXT        NOT NULL,
    delivery_key    TEXT        NOT NULL UNIQUE,
    requires        TEXT[]      NOT NULL,
    payload         JSONB       NOT NULL,
    correlation_id  UUID        NOT NULL,
    state           TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    last_error      JSONB,
    result          JSONB,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_stream ON deliveries (stream_id, target, id);
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE delivery_audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT      NOT NULL REFERENCES deliveries (id),
    action      TEXT        NOT NULL,
    actor       TEXT        NOT NULL,
    reason      TEXT        NOT NULL,
    detail      JSONB       NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX delivery_audit_delivery ON delivery_audit (delivery_id, id);
