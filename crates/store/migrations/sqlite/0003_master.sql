-- Master data: SKUs, customers, sites, orders, vendors and code crosswalks,
-- which the hub holds locally so that validation, translation and the
-- eligibility API answer without calling the ERP. Same conventions as 0001.
--
-- Records are JSON documents keyed by (kind, key) rather than typed tables:
-- `backhaul-master` owns their shapes and rules and validates a batch before
-- it is written; the hub loads every record into memory and looks records up
-- there, so no SQL filters on a field; and a new field or kind needs no
-- migration on two backends. The database still insists that a body is a
-- JSON object, since the store passes bodies through without parsing them.
--
-- `revision` on a record is the revision of the batch that last wrote it.
CREATE TABLE master_records (
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    body       TEXT    NOT NULL CHECK (json_type(body) = 'object'),
    revision   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT;

-- One row: the revision of the master data as a whole, bumped by every batch
-- that writes, so another hub process notices a change with one cheap read.
-- Writers also serialise on it (see the PostgreSQL migration).
CREATE TABLE master_revision (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    revision   INTEGER NOT NULL,
    updated_at TEXT
) STRICT;

INSERT INTO master_revision (id, revision, updated_at) VALUES (1, 0, NULL);
