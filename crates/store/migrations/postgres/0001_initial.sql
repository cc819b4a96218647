-- Backhaul storage schema, PostgreSQL flavour. The SQLite migration holds the
-- same logical schema; keep the two in step.

-- The event log. Positions come from an identity column; they become visible
-- in commit order only because every append transaction first takes the
-- append advisory lock (see `src/postgres.rs`). Rolled-back appends leave
-- gaps, which is fine: positions are increasing, not dense.
-- There is deliberately no foreign key to `returns`: the append path only
-- inserts events after it wrote their stream head in the same transaction, and
-- `replace_summaries` deletes every head before re-inserting them.
CREATE TABLE events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      UUID        NOT NULL,
    version        BIGINT      NOT NULL,
    event_id       UUID        NOT NULL UNIQUE,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSONB       NOT NULL,
    correlation_id UUID        NOT NULL,
    causation_id   UUID        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (stream_id, version)
);

-- One row per stream: the stream head (`version`, checked by optimistic
-- concurrency) and the read model (the summary) in the same row, so an append
-- moves both with one statement.
-- `skus` is the SKU list as given: reads take it from here, and the append
-- path compares it to detect a changed SKU set without reading `return_skus`.
CREATE TABLE returns (
    stream_id  UUID        PRIMARY KEY,
    version    BIGINT      NOT NULL,
    reference  TEXT        NOT NULL,
    status     TEXT        NOT NULL,
    stage      TEXT        NOT NULL,
    owner      TEXT        NOT NULL,
    open       BOOLEAN     NOT NULL,
    customer   TEXT        NOT NULL,
    order_ref  TEXT        NOT NULL,
    skus       TEXT[]      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    body       JSONB       NOT NULL
);

-- Lists are ordered by (created_at DESC, stream_id). Every filter index
-- leads with its column and continues in exactly that order, so a filtered
-- page is read in order and stops after LIMIT rows instead of sorting every
-- match.
CREATE INDEX returns_created ON returns (created_at DESC, stream_id);
CREATE INDEX returns_status ON returns (status, created_at DESC, stream_id);
CREATE INDEX returns_stage ON returns (stage, created_at DESC, stream_id);
CREATE INDEX returns_customer ON returns (customer, created_at DESC, stream_id);
CREATE INDEX returns_order_ref ON returns (order_ref, created_at DESC, stream_id);
-- The backlog only looks at open returns, which are a small share of all rows
-- once the hub has run for a while; its GROUP BY follows this column order.
CREATE INDEX returns_backlog ON returns (stage, status, owner, created_at) WHERE open;

-- One row per distinct SKU of a return, only for the SKU filter.
CREATE TABLE return_skus (
    stream_id UUID NOT NULL REFERENCES returns (stream_id) ON DELETE CASCADE,
    sku       TEXT NOT NULL,
    PRIMARY KEY (stream_id, sku)
);

CREATE INDEX return_skus_sku ON return_skus (sku, stream_id);

-- Outcome of idempotent commands, scoped per partner.
CREATE TABLE idempotency (
    partner      TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    stream_id    UUID        NOT NULL,
    status       INTEGER     NOT NULL,
    response     JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, key)
);

-- Partner API keys; only a hash of the secret is stored.
CREATE TABLE api_keys (
    key_id      TEXT        PRIMARY KEY,
    partner     TEXT        NOT NULL,
    secret_hash TEXT        NOT NULL,
    scopes      JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Benchmark scratch table: the event log's columns without its constraints,
-- to measure the raw insert ceiling of the storage.
CREATE TABLE bench_raw_events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      UUID        NOT NULL,
    version        BIGINT      NOT NULL,
    event_id       UUID        NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        JSONB       NOT NULL,
    correlation_id UUID        NOT NULL,
    causation_id   UUID        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL
);
