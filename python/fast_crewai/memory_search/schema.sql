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

-- The change log: the id of every record any writer inserts, replaces,
-- updates or deletes (NULL when store_meta changes: the dimension), written
-- by these triggers, which are part of the file and so fire for every
-- program that writes it. A reader that holds the store in memory applies
-- only the records logged since its last look (`refresh`) instead of reading
-- the whole file again; when the log no longer reaches back that far (it
-- keeps the last 10,000 entries), or holds a NULL, it reads the whole file.
-- AUTOINCREMENT: entries are numbered one after another and never reused.
CREATE TABLE IF NOT EXISTS memory_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT
);
CREATE TRIGGER IF NOT EXISTS memories_inserted AFTER INSERT ON memories BEGIN
    INSERT INTO memory_changes (id) VALUES (NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS memories_updated AFTER UPDATE ON memories BEGIN
    INSERT INTO memory_changes (id) VALUES (OLD.id);
    INSERT INTO memory_changes (id) SELECT NEW.id WHERE NEW.id IS NOT OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS memories_deleted AFTER DELETE ON memories BEGIN
    INSERT INTO memory_changes (id) VALUES (OLD.id);
END;
CREATE TRIGGER IF NOT EXISTS store_meta_inserted AFTER INSERT ON store_meta BEGIN
    INSERT INTO memory_changes (id) VALUES (NULL);
END;
CREATE TRIGGER IF NOT EXISTS store_meta_updated AFTER UPDATE ON store_meta BEGIN
    INSERT INTO memory_changes (id) VALUES (NULL);
END;
CREATE TRIGGER IF NOT EXISTS store_meta_deleted AFTER DELETE ON store_meta BEGIN
    INSERT INTO memory_changes (id) VALUES (NULL);
END;
CREATE TRIGGER IF NOT EXISTS memory_changes_trimmed AFTER INSERT ON memory_changes BEGIN
    DELETE FROM memory_changes WHERE seq <= NEW.seq - 10000;
END;
