//! The SQLite side of a store: one file, a `memories` table and a
//! `store_meta` table holding the vector dimension.
//!
//! `seq` is the table's `INTEGER PRIMARY KEY` (the rowid): `INSERT OR
//! REPLACE` gives a saved record a rowid above every live one, so `seq` orders
//! records by their latest write, survives `VACUUM`, and is what the index
//! uses to break ties.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use super::constants::{constants, MIGRATIONS, SCHEMA};
use super::index::{Index, Record};
use super::{memory, MemError};
use crate::json::{self, Value};

const DIMENSION_KEY: &str = "dimension";

/// `SQLITE_READONLY_ROLLBACK`: a read-only connection found a hot journal.
const READONLY_ROLLBACK: i32 = 776;

/// Why a store opened read-only refuses a crashed writer's journal.
pub const HOT_JOURNAL: &str =
    "a crashed writer left a journal that only a writable open can roll back; open the store writable once";

impl From<rusqlite::Error> for MemError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error() {
            Some(e) if e.code == rusqlite::ErrorCode::OutOfMemory => {
                MemError::Capacity(format!("SQLite ran out of the core's memory: {err}"))
            }
            Some(e) if e.extended_code == READONLY_ROLLBACK => MemError::ReadOnly(HOT_JOURNAL.into()),
            // A write SQLite itself refused: the file, its directory or its
            // journal cannot be written.
            Some(e) if e.code == rusqlite::ErrorCode::ReadOnly => MemError::ReadOnly(err.to_string()),
            Some(e) if e.code == rusqlite::ErrorCode::DiskFull => MemError::DiskFull(err.to_string()),
            _ => MemError::Storage(err.to_string()),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> MemError {
    MemError::Storage(format!("corrupt memory store: {what}"))
}

/// Opens the database at `path`: writable (creating it when missing) with
/// durable rollback-journal settings and the schema in place, or read-only
/// (`SQLITE_OPEN_READONLY`), writing nothing, when the file already holds
/// the current schema (see [`check_readable`]).
pub fn open(path: &str, read_only: bool) -> Result<Connection, MemError> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // The core's VFS: in the component the Python host serialises processes
    // with its own file locks and WASI has no POSIX advisory locks, so it
    // takes none; journal writes are gathered (see `crate::vfs`).
    crate::vfs::register()?;
    let opened = Connection::open_with_flags_and_vfs(path, flags, crate::vfs::NAME);
    let conn = match opened {
        Err(e) if read_only && e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
            return Err(MemError::ReadOnly(format!(
                "the file cannot be opened ({e}), and a store opened read-only does not create it"
            )))
        }
        opened => opened?,
    };
    let c = constants();
    conn.busy_timeout(std::time::Duration::from_millis(c.busy_timeout_ms))?;
    if read_only {
        // Only the connection's own settings: the file is left as it is.
        conn.execute_batch(&c.connection_pragmas())?;
        check_readable(&conn)?;
        return Ok(conn);
    }
    let mode: String = conn.query_row(&format!("PRAGMA journal_mode={}", c.journal_mode), [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case(&c.journal_mode) && !mode.eq_ignore_ascii_case("memory") {
        return Err(MemError::Storage(format!(
            "could not switch the journal to {} mode (it is {mode})",
            c.journal_mode
        )));
    }
    // The page size (32 KiB) keeps a row with a vector of up to ~8000
    // dimensions on its leaf page instead of an overflow chain, and halves the
    // WASI calls per megabyte, each a host call in wasmtime (bulk saves and
    // reopens were faster than with 16 KiB). 64 KiB pages fail with an I/O
    // error through WASI. Only takes effect on a new file.
    // The 16 MiB page cache lets a batch of a thousand 1536-dimensional rows
    // commit without spilling (each spill costs an extra journal sync).
    conn.execute_batch(&c.pragmas())?;
    transaction(&conn, SCHEMA)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Runs `sql` in one write transaction.
fn transaction(conn: &Connection, sql: &str) -> Result<(), MemError> {
    conn.execute_batch(&format!("BEGIN IMMEDIATE;{sql}COMMIT;"))
        .inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        })?;
    Ok(())
}

/// The tables every store holds (`schema.sql`).
const TABLES: [&str; 3] = ["memories", "store_meta", "memory_changes"];

/// The file's `schema_version`; refuses one written by a newer version.
fn schema_version(conn: &Connection) -> Result<i64, MemError> {
    let version: i64 = conn
        .query_row("SELECT value FROM store_meta WHERE key = 'schema_version'", [], |r| {
            r.get(0)
        })
        .map_err(|_| corrupt("schema_version"))?;
    let current = constants().schema_version;
    if version > current {
        return Err(MemError::Storage(format!(
            "the memory store was written by a newer fast-crewai (schema version {version}; \
             this one reads up to {current})"
        )));
    }
    Ok(version)
}

/// What a read-only open requires, since it cannot write: the store's
/// tables present and the current schema version (an older file must be
/// migrated by a writable open first).
fn check_readable(conn: &Connection) -> Result<(), MemError> {
    let mut present = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?1")?;
    let mut missing = Vec::new();
    for table in TABLES {
        if !present.exists([table])? {
            missing.push(table);
        }
    }
    if !missing.is_empty() {
        return Err(MemError::ReadOnly(read_only_needs_tables(&missing)));
    }
    // A file of version 1 may lack the key: schema.sql adds it.
    let has_version = conn
        .prepare("SELECT 1 FROM store_meta WHERE key = 'schema_version'")?
        .exists([])?;
    let version = if has_version { schema_version(conn)? } else { 1 };
    read_only_version(version, constants().schema_version)
}

/// Why a read-only open refuses a file lacking some of the store's tables.
pub fn read_only_needs_tables(missing: &[&str]) -> String {
    format!(
        "the file holds no memory store (no table {}), and a store opened read-only cannot create one",
        missing.join(", ")
    )
}

/// Whether a read-only open can read a file of schema `version`: only the
/// current one, as an older file needs a migration, which writes.
pub fn read_only_version(version: i64, current: i64) -> Result<(), MemError> {
    if version < current {
        return Err(MemError::ReadOnly(format!(
            "the file has schema version {version}, older than this version's {current}; \
             open it writable once to migrate it before reading it read-only"
        )));
    }
    Ok(())
}

/// Brings a file written by an older version up to the current schema
/// (each migration is idempotent and sets the new version itself); refuses
/// one written by a newer version.
fn migrate(conn: &Connection) -> Result<(), MemError> {
    let version = schema_version(conn)?;
    for (to, sql) in MIGRATIONS {
        if version < to {
            transaction(conn, sql)?;
        }
    }
    Ok(())
}

/// `PRAGMA data_version`: changes when another connection commits.
pub fn data_version(conn: &Connection) -> Result<i64, MemError> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?)
}

/// The columns a record is read back from, `seq` first.
const COLUMNS: &str = "seq, id, content, scope, categories, metadata, importance, created_at, created_ts, \
                       last_accessed, source, private, embedding";

/// The file's change counter (header bytes 24-27), read from the file
/// itself: SQLite bumps it by one at every commit, whoever makes it, so it
/// tells whether the change log accounts for every commit (see
/// `schema.sql`).
pub struct Header(std::fs::File);

impl Header {
    pub fn open(path: &str) -> Result<Header, MemError> {
        std::fs::File::open(path)
            .map(Header)
            .map_err(|e| MemError::Storage(format!("unable to read the header of {path}: {e}")))
    }

    pub fn counter(&self) -> Result<u32, MemError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut bytes = [0u8; 4];
        let mut file = &self.0;
        // (WASI's seek only moves the position the read then starts from.)
        match file.seek(SeekFrom::Start(24)).and_then(|_| file.read_exact(&mut bytes)) {
            Ok(()) => Ok(u32::from_be_bytes(bytes)),
            // A file without a header yet (nothing committed) counts none.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(MemError::Storage(format!("unable to read the change counter: {e}"))),
        }
    }
}

/// Logs a write transaction's changes (`None`: the dimension, or every
/// record) with the change counter it found, and trims the log.
pub fn log_changes<'a>(
    tx: &Transaction<'_>,
    counter: u32,
    ids: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<(), MemError> {
    let mut insert = tx.prepare_cached("INSERT INTO memory_changes (counter, id) VALUES (?1, ?2)")?;
    for id in ids {
        insert.execute(params![counter, id])?;
    }
    tx.prepare_cached("DELETE FROM memory_changes WHERE seq <= (SELECT MAX(seq) FROM memory_changes) - ?1")?
        .execute([constants().change_log_rows])?;
    Ok(())
}

/// The last entry of the change log (0 when it holds none).
pub fn log_position(conn: &Connection) -> Result<i64, MemError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM memory_changes")?
        .query_row([], |r| r.get(0))?)
}

/// The ids of the records written or deleted since log entry `position`
/// (whose commit left the change counter at `known`; it is `current` now),
/// and the last entry, in log order without repeats; `None` when the log
/// does not account for every commit since (trimmed past `position`, a
/// commit of a program that does not log, a changed dimension).
pub fn changes_since(
    conn: &Connection,
    position: i64,
    known: u32,
    current: u32,
) -> Result<Option<(i64, Vec<String>)>, MemError> {
    let mut stmt = conn.prepare_cached("SELECT seq, counter, id FROM memory_changes WHERE seq > ?1 ORDER BY seq")?;
    let mut rows = stmt.query([position])?;
    let mut last = position;
    // The counter the next logged commit must have found.
    let mut next = known;
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let counter: i64 = row.get(1)?;
        let id: Option<String> = row.get(2)?;
        // Entries are numbered one after another, and trimmed from the oldest.
        if seq != last + 1 {
            return Ok(None);
        }
        last = seq;
        if counter == i64::from(next) {
            // The first entry of the next commit.
            next = next.wrapping_add(1);
        } else if next == known || counter != i64::from(next.wrapping_sub(1)) {
            // Not the commit that follows, nor the one being read.
            return Ok(None);
        }
        let Some(id) = id else {
            return Ok(None);
        };
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok((next == current).then_some((last, ids)))
}

/// Brings the records with these ids in `index` to what the file holds:
/// inserted, replaced or removed. Fails (leaving `index` part-updated, for
/// the caller to reload) when a record does not fit the index as it is.
pub fn apply(conn: &Connection, index: &mut Index, ids: &[String]) -> Result<(), MemError> {
    let dim = index.dim();
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM memories WHERE id = ?1"))?;
    let mut found = Vec::new();
    let mut gone = Vec::new();
    let mut growth = 0usize;
    for id in ids {
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => {
                let size = row_growth(row)?;
                memory::ensure(size, "a changed record")?;
                let mut embedding = Vec::new();
                let (seq, record) = decode_row(row, &mut embedding)?;
                if !embedding.is_empty() && Some(embedding.len()) != dim {
                    return Err(corrupt(format!("embedding length of {:?}", record.id)));
                }
                growth = growth.saturating_add(size).saturating_add(embedding.len() * 5);
                found.push((seq, record, (!embedding.is_empty()).then_some(embedding)));
            }
            None => gone.push(id),
        }
    }
    let rows = index.len() + found.len();
    memory::ensure(growth.saturating_add(memory::headroom(rows)), "the changed records")?;
    index.reserve(rows, dim)?;
    for (seq, record, embedding) in found {
        index.upsert(record, embedding.as_deref(), seq);
    }
    let gone: Vec<usize> = gone.iter().filter_map(|id| index.row_of(id)).collect();
    index.remove_rows(gone);
    Ok(())
}

/// A bound of what a row of [`COLUMNS`] adds to the index beyond its
/// vector, known before the record is built.
fn row_growth(row: &rusqlite::Row<'_>) -> Result<usize, MemError> {
    let text_len = |i: usize| {
        row.get_ref(i).map(|v| match v {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
            _ => 0,
        })
    };
    let mut other = 0usize;
    for i in [1, 3, 4, 5, 7, 9, 10] {
        other = other.saturating_add(text_len(i)?);
    }
    Ok(memory::growth(text_len(2)?, other))
}

/// Decodes a row of [`COLUMNS`]: its `seq` and its record (its embedding,
/// if any, into `embedding`).
fn decode_row(row: &rusqlite::Row<'_>, embedding: &mut Vec<f32>) -> Result<(i64, Record), MemError> {
    let seq: i64 = row.get(0)?;
    let id: String = row.get(1)?;
    let categories =
        parse_categories(row.get_ref(4)?.as_str()?).ok_or_else(|| corrupt(format!("categories of {id:?}")))?;
    let metadata = json::parse(row.get_ref(5)?.as_str()?)
        .ok()
        .filter(|m| matches!(m, Value::Object(_)))
        .ok_or_else(|| corrupt(format!("metadata of {id:?}")))?;
    embedding.clear();
    if let Some(bytes) = row.get_ref(12)?.as_blob_or_null()? {
        let (floats, rest) = bytes.as_chunks::<4>();
        if !rest.is_empty() || floats.is_empty() {
            return Err(corrupt(format!("embedding of {id:?}")));
        }
        embedding.extend(floats.iter().map(|b| f32::from_le_bytes(*b)));
    }
    let record = Record {
        content: row.get(2)?,
        scope: row.get(3)?,
        categories,
        metadata,
        importance: row.get(6)?,
        created_at: row.get(7)?,
        created_ts: row.get(8)?,
        last_accessed: row.get(9)?,
        source: row.get(10)?,
        private: row.get(11)?,
        has_embedding: !embedding.is_empty(),
        id,
    };
    Ok((seq, record))
}

/// Reads the whole store into a fresh index. Run inside a transaction so the
/// snapshot is consistent.
pub fn load(conn: &Connection) -> Result<Index, MemError> {
    let stored: Option<i64> = conn
        .query_row("SELECT value FROM store_meta WHERE key = ?1", [DIMENSION_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    let mut dim = match stored {
        None => None,
        Some(d) if d > 0 && d <= i64::from(u32::MAX) => Some(d as usize),
        Some(d) => return Err(corrupt(format!("dimension {d}"))),
    };
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0))?;
    let rows = usize::try_from(rows).map_err(|_| corrupt("row count"))?;
    let mut index = Index::new(dim);
    index.reserve(rows, dim)?;

    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM memories ORDER BY seq"))?;
    let mut cursor = stmt.query([])?;
    let mut embedding: Vec<f32> = Vec::new();
    let mut loading = memory::Loading::default();
    while let Some(row) = cursor.next()? {
        loading.add(row_growth(row)?)?;
        let (seq, record) = decode_row(row, &mut embedding)?;
        if !embedding.is_empty() {
            if dim.is_none() {
                // Only a file written by something else lacks the key.
                dim = Some(embedding.len());
                index.reserve(rows, dim)?;
                index.set_dim(embedding.len());
            }
            if Some(embedding.len()) != dim {
                return Err(corrupt(format!("embedding length of {:?}", record.id)));
            }
        }
        if index.row_of(&record.id).is_some() {
            return Err(corrupt(format!("duplicate id {:?}", record.id)));
        }
        let vector = (!embedding.is_empty()).then_some(embedding.as_slice());
        index.upsert(record, vector, seq);
    }
    Ok(index)
}

fn parse_categories(text: &str) -> Option<Vec<String>> {
    match json::parse(text).ok()? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Records the store's dimension.
pub fn set_dimension(tx: &Transaction<'_>, dim: usize) -> Result<(), MemError> {
    tx.execute(
        "INSERT OR REPLACE INTO store_meta (key, value) VALUES (?1, ?2)",
        params![DIMENSION_KEY, dim as i64],
    )?;
    Ok(())
}

/// Inserts or replaces `record`; returns its new sequence number.
pub fn put(tx: &Transaction<'_>, record: &Record, embedding: Option<&[f32]>) -> Result<i64, MemError> {
    let mut categories = String::new();
    categories.push('[');
    for (i, c) in record.categories.iter().enumerate() {
        if i > 0 {
            categories.push(',');
        }
        json::write_string(&mut categories, c);
    }
    categories.push(']');
    let metadata = json::to_string(&record.metadata);
    let blob: Option<Vec<u8>> = embedding.map(|e| {
        let mut bytes = Vec::with_capacity(e.len() * 4);
        for x in e {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes
    });
    tx.prepare_cached(
        "INSERT OR REPLACE INTO memories (id, content, scope, categories, metadata, \
         importance, created_at, created_ts, last_accessed, source, private, embedding) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        record.id,
        record.content,
        record.scope,
        categories,
        metadata,
        record.importance,
        record.created_at,
        record.created_ts,
        record.last_accessed,
        record.source,
        record.private,
        blob,
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Deletes the record with sequence number `seq`.
pub fn delete_seq(tx: &Transaction<'_>, seq: i64) -> Result<(), MemError> {
    tx.prepare_cached("DELETE FROM memories WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

/// Deletes every record, and the dimension too when `forget_dim`.
pub fn delete_all(tx: &Transaction<'_>, forget_dim: bool) -> Result<(), MemError> {
    tx.execute("DELETE FROM memories", [])?;
    if forget_dim {
        tx.execute("DELETE FROM store_meta WHERE key = ?1", [DIMENSION_KEY])?;
    }
    Ok(())
}

/// Sets `last_accessed` of the record with sequence number `seq`.
pub fn touch(tx: &Transaction<'_>, seq: i64, at: &str) -> Result<(), MemError> {
    tx.prepare_cached("UPDATE memories SET last_accessed = ?1 WHERE seq = ?2")?
        .execute(params![at, seq])?;
    Ok(())
}
