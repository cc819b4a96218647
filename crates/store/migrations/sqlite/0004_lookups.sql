-- Finding a return from outside: inbound webhooks name it by its RMA number
-- (the stream head's `reference`) or, for carriers, by the tracking number of
-- its label.
--
-- `reference` is written once, when the stream is created, and never
-- assigned by the append's UPDATE, so this index costs one entry per new
-- return and nothing per command.
CREATE INDEX returns_reference ON returns (reference);

-- The one index into event payloads: the tracking number of a `LabelIssued`
-- event. Partial, so only label events have entries; the lookup query must
-- repeat this expression and condition word for word for SQLite to use it.
CREATE INDEX events_label_tracking ON events (json_extract(payload, '$.label.tracking_number'))
    WHERE event_type = 'LabelIssued';
