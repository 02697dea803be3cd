//! `memory-search`: CrewAI memory records with exact vector search and BM25
//! lexical search, persisted in one SQLite file per store.
//!
//! # Design
//! * The whole store is held in an in-memory [`index::Index`]; SQLite is the
//!   durable copy. Every mutating call runs in one `BEGIN IMMEDIATE`
//!   transaction and touches the index only after `COMMIT` succeeded, so a
//!   failed call changes nothing. Reads are served from the index alone; the
//!   host calls `refresh` when the file's change counter moved (another
//!   process committed), which compares `PRAGMA data_version` with the value
//!   seen at the last load and applies what changed: the records the file's
//!   change log (triggers in `schema.sql`, so every writer logs) names since
//!   the index's position, or the whole store when the log cannot tell.
//!   Checking that inside the core costs several WASI calls, which the host
//!   does natively in microseconds. Writes make the same check inside their
//!   own transaction.
//! * A store opened read-only ([`Store::open_read_only`]) has SQLite open
//!   the file with `SQLITE_OPEN_READONLY` and writes nothing: no journal
//!   mode, no pragma that writes, no schema, no migration, no change log. It
//!   reads only a file that already holds the current schema (an older one
//!   needs a writable open to migrate it), and every call that would write
//!   fails with [`MemError::ReadOnly`] before parsing its arguments. Reads
//!   and `refresh` work as on a writable store. A crashed writer's journal,
//!   which only a writer can roll back, is `ReadOnly` too.
//! * Vector search is an exact scan (see [`kernel`]): score `1 / (1 + d)` with
//!   `d` the squared Euclidean distance, records without an embedding count as
//!   zero vectors (as in LanceDB). Filters are evaluated inside the scan; a
//!   bounded heap keeps the top `limit`. A row is skipped without reading its
//!   vector only when the norm bound `(|q| - |x|)^2 <= d` proves it cannot
//!   rank, so results are those of the full scan.
//! * A stored vector holding NaN or an infinity (saves refuse them; only a
//!   file written by another tool has one) is never a vector-search hit,
//!   whatever `min_score`; the record is otherwise an ordinary one (`get`,
//!   `list`, text search and counts see it, with its vector as stored).
//! * Ties: equal distances (or equal BM25 scores) rank by insertion order,
//!   earlier first. "Insertion" is the latest write of the record (`save`
//!   of an existing id re-inserts it, as LanceDB's update does), which is the
//!   SQLite rowid and so survives reopening. `list` orders by `created_ts`
//!   descending, then later insertion first.
//! * Scopes are rooted: a scope saved without a leading `/` gets one (`a/b`
//!   is kept as `/a/b`), and so does every scope prefix and parent given to
//!   a call; opening a file written before this rule roots its stored scopes
//!   (schema version 2, `migrate_2.sql`). Prefixes are compared by path
//!   segment: a prefix `p` (trailing `/` removed) matches scope `p` and scopes
//!   starting with `p/`; an absent, empty or `/` prefix matches everything.
//!   LanceDB's plain string prefix (`/a/b` also matching `/a/bc`) and its
//!   `OR scope = '/'` in `delete` are deliberately not reproduced.
//! * Filter members are ANDed; `null` is the same as absent. `categories` and
//!   `ids` are "any of": an empty list matches nothing (LanceDB treats an
//!   empty list as no filter; the caller drops empty lists to get that).
//!   `metadata` compares each key with JSON equality (numbers by value,
//!   `1 == 1.0`; `true` is not `1`); a key missing from a record compares as
//!   `null`, as Python's `dict.get(k) == v` does.

mod bm25;
mod codec;
#[cfg(target_arch = "wasm32")]
mod component;
mod constants;
mod filter;
mod index;
mod kernel;
mod memory;
mod persist;
mod search;
mod store;

pub use store::Store;

use crate::json::{self, Value};

/// Why a memory call failed (the WIT `error` variant).
#[derive(Debug, Clone, PartialEq)]
pub enum MemError {
    InvalidInput(String),
    DimensionMismatch { stored: u32, given: u32 },
    Capacity(String),
    Storage(String),
    DiskFull(String),
    RecordTooLarge(String),
    ResultTooLarge(String),
    ReadOnly(String),
}

impl std::fmt::Display for MemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            MemError::DimensionMismatch { stored, given } => write!(
                f,
                "dimension mismatch: the store holds {stored}-dimensional vectors, got {given}"
            ),
            MemError::Capacity(m) => write!(f, "capacity: {m}"),
            MemError::Storage(m) => write!(f, "storage: {m}"),
            MemError::DiskFull(m) => write!(f, "disk full: {m}"),
            MemError::RecordTooLarge(m) => write!(f, "record too large: {m}"),
            MemError::ResultTooLarge(m) => write!(f, "result too large: {m}"),
            MemError::ReadOnly(m) => write!(f, "read-only: {m}"),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for MemError {
    fn from(err: rusqlite::types::FromSqlError) -> Self {
        MemError::Storage(format!("corrupt memory store: {err}"))
    }
}

fn invalid(message: impl Into<String>) -> MemError {
    MemError::InvalidInput(message.into())
}

fn mismatch(stored: usize, given: usize) -> MemError {
    MemError::DimensionMismatch {
        stored: u32::try_from(stored).unwrap_or(u32::MAX),
        given: u32::try_from(given).unwrap_or(u32::MAX),
    }
}

fn parse_json(text: &str, what: &str) -> Result<Value, MemError> {
    json::parse(text).map_err(|e| {
        invalid(format!(
            "{what} is not valid JSON: {} at position {}",
            e.message, e.position
        ))
    })
}

#[cfg(test)]
mod tests;
