-- The memory store's file, as both backends create it (the core embeds this
-- file; the Python reference reads it from the package). Run inside one
-- BEGIN IMMEDIATE transaction on every open; every statement is idempotent.
--
-- memories.seq is the rowid: INSERT OR REPLACE gives a saved record a rowid
-- above every live one, so seq orders records by their latest write (ties
-- rank by it) and survives VACUUM. embedding is little-endian float32, NULL
-- for a record saved without one. store_meta holds 'schema_version' (files
-- without it are version 1) and 'dimension' once a vector was saved.

CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL,
    scope TEXT NOT NULL,
    categories TEXT NOT NULL,
    metadata TEXT NOT NULL,
    importance REAL NOT NULL,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    last_accessed TEXT NOT NULL,
    source TEXT,
    private INTEGER NOT NULL,
    embedding BLOB
);
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value
);
INSERT OR IGNORE INTO store_meta (key, value) VALUES ('schema_version', 1);

-- The change log: every write transaction of a store (either backend) adds
-- a row per record it inserts, replaces, updates or deletes (id NULL: the
-- dimension changed), each with the file's change counter (bytes 24-27 of
-- its header, which every commit bumps by one) as the transaction found it.
-- A reader holding the store in memory applies only the records logged
-- since its last look when the logged counters account for every commit
-- since (a program that does not log, such as another SQLite tool or an
-- older version, leaves a gap and the reader reads the whole file again).
-- Writers keep the last 10,000 rows.
CREATE TABLE IF NOT EXISTS memory_changes (
    seq INTEGER PRIMARY KEY,
    counter INTEGER NOT NULL,
    id TEXT
);
