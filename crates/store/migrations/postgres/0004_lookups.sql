-- Finding a return from outside: inbound webhooks name it by its RMA number
-- (the stream head's `reference`) or, for carriers, by the tracking number of
-- its label. Keep in step with the SQLite migration of the same number.
--
-- `reference` is written once, when the stream is created, and never
-- assigned by the append's UPDATE.
CREATE INDEX returns_reference ON returns (reference);

-- The one index into event payloads: the tracking number of a `LabelIssued`
-- event. Partial, so only label events have entries; the lookup query
-- repeats this expression and condition so the planner can use it.
CREATE INDEX events_label_tracking ON events ((payload -> 'label' ->> 'tracking_number'))
    WHERE event_type = 'LabelIssued';
