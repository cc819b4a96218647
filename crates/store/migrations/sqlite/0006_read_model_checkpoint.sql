-- The read model (`returns`, `return_skus`) may lag the log: the SQLite
-- backend writes rows lazily (see `src/sqlite/lazy.rs`), and the checkpoint
-- `read_model` says up to which position every event is reflected in them.
-- Until now rows were written with their events, so an existing database is
-- reflected up to its last event.
INSERT INTO checkpoints (name, position)
    SELECT 'read_model', COALESCE(MAX(position), 0) FROM events WHERE true
    ON CONFLICT (name) DO NOTHING;
