-- The outbox: outbound work (an action of the domain for one target system)
-- written in the same transaction as the events that call for it, and
-- delivered at least once by the dispatcher. Same conventions as 0001.
--
-- A lane is (stream_id, target): deliveries of one lane go in id order, so an
-- item waits while an earlier item of its lane is pending, dead or in the
-- exception queue. `requires` names kinds (JSON array) that must be done or
-- skipped for the same stream first, whatever their lane.
--
-- `state`: pending (waiting or leased), done, dead (technical retries
-- exhausted), exception (the target refused it; an operator decides),
-- skipped (an operator marked it as done by hand), cancelled.
-- A pending row with `lease_until` in the future is being delivered by
-- `lease_owner`; a lease that ran out is claimable again (the delivery is then
-- repeated with the same `delivery_key`, which the target deduplicates).
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    delivery_key    TEXT    NOT NULL UNIQUE,
    requires        TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    result          TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;

-- The dispatcher's scan: only pending rows, in due order.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
-- Lane order and prerequisites of one stream.
CREATE INDEX deliveries_stream ON deliveries (stream_id, target, id);
-- The exception queue and the dead letters, for operators.
CREATE INDEX deliveries_state ON deliveries (state, id);

-- Every operator action on a delivery (retry, retry with corrected data,
-- skip, cancel), who took it and why. Never updated or deleted.
CREATE TABLE delivery_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    action      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    at          TEXT    NOT NULL
) STRICT;

CREATE INDEX delivery_audit_delivery ON delivery_audit (delivery_id, id);
