-- Backhaul storage schema, SQLite flavour. The PostgreSQL migration holds the
-- same logical schema; keep the two in step.
--
-- Conventions: UUIDs are hyphenated lower-case TEXT; timestamps are RFC 3339
-- UTC TEXT with exactly nine fractional digits ("...T12:00:00.000000000Z"),
-- a fixed width so that text order is time order and range filters and
-- ORDER BY work on the text; JSON is TEXT. Tables are STRICT so a wrong
-- binding fails loudly instead of being stored with another type.

-- The event log. AUTOINCREMENT keeps positions from ever being reused, even if
-- the newest rows were deleted by hand: a subscriber remembers the last
-- position it saw and must never see a smaller one again.
-- There is deliberately no foreign key to `returns`: the append path only
-- inserts events after it wrote their stream head in the same transaction, and
-- `replace_summaries` deletes every head before re-inserting them.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    UNIQUE (stream_id, version)
) STRICT;

-- One row per stream: the stream head (`version`, checked by optimistic
-- concurrency) and the read model (the summary) in the same row, so an append
-- moves both with one statement.
-- `skus` is the SKU list as given (JSON array): reads take it from here, and
-- the append path compares it to detect a changed SKU set without reading
-- `return_skus`.
CREATE TABLE returns (
    stream_id  TEXT    PRIMARY KEY NOT NULL,
    version    INTEGER NOT NULL,
    reference  TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    open       INTEGER NOT NULL,
    customer   TEXT    NOT NULL,
    order_ref  TEXT    NOT NULL,
    skus       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    body       TEXT    NOT NULL
) STRICT;

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
CREATE INDEX returns_backlog ON returns (stage, status, owner, created_at) WHERE open = 1;

-- One row per distinct SKU of a return, only for the SKU filter.
CREATE TABLE return_skus (
    stream_id TEXT NOT NULL REFERENCES returns (stream_id) ON DELETE CASCADE,
    sku       TEXT NOT NULL,
    PRIMARY KEY (stream_id, sku)
) STRICT, WITHOUT ROWID;

CREATE INDEX return_skus_sku ON return_skus (sku, stream_id);

-- Outcome of idempotent commands, scoped per partner.
CREATE TABLE idempotency (
    partner      TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    stream_id    TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (partner, key)
) STRICT, WITHOUT ROWID;

-- Partner API keys; only a hash of the secret is stored.
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY NOT NULL,
    partner     TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;

-- Benchmark scratch table: the event log's columns without its constraints,
-- to measure the raw insert ceiling of the storage.
CREATE TABLE bench_raw_events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL
) STRICT;
