-- Checkpoints: how far a reader of the event log outside the hub has got,
-- by name (`kafka:<topic>` for the Kafka publisher). A broker that can tell
-- the resume point itself (JetStream's last message) needs no row here.
-- Written after the broker acknowledged everything up to `position`, so a
-- crash in between re-publishes the tail and loses nothing.
CREATE TABLE checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) STRICT;
