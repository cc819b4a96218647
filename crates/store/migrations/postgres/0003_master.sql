-- Master data; see the SQLite migration of the same name for the design
-- notes. Every write locks the one `master_revision` row first, which
-- serialises master writers across hub processes.
CREATE TABLE master_records (
    kind       TEXT        NOT NULL,
    key        TEXT        NOT NULL,
    body       JSONB       NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    revision   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE TABLE master_revision (
    id         SMALLINT    PRIMARY KEY CHECK (id = 1),
    revision   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ
);

INSERT INTO master_revision (id, revision, updated_at) VALUES (1, 0, NULL);
