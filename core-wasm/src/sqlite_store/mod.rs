//! `sqlite-store`: SQLite connections on files in the granted directories,
//! with parameters and rows crossing the boundary as JSON text.

use rusqlite::limits::Limit;
use rusqlite::{ffi, OpenFlags};

mod connection;
mod values;

pub use connection::{Connection, TRANSACTION_CONTROL, WRITE_IN_QUERY};

/// Why a SQLite call failed; mirrors the WIT `error` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlError {
    Constraint(String),
    Busy(String),
    ReadOnly(String),
    Corrupt(String),
    NotFound(String),
    Misuse(String),
    TooLarge(String),
    DiskFull(String),
    Other(String),
}

/// The longest text or blob a connection stores or reads
/// (`SQLITE_LIMIT_LENGTH`, which also bounds a row): base64 makes a 64 MiB
/// blob 85.3 MiB of JSON, within what one call returns.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// The message for a statement the authorizer refused: SQLite says only "not authorized".
pub const REFUSED: &str = "not authorized: ATTACH, DETACH, VACUUM INTO and setting journal_mode, locking_mode or a \
     store directory would escape the host's locks and the granted directory";

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        let message = err.to_string();
        match &err {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ffi::ErrorCode::ConstraintViolation => SqlError::Constraint(message),
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => SqlError::Busy(message),
                ffi::ErrorCode::ReadOnly => SqlError::ReadOnly(message),
                ffi::ErrorCode::TooBig => SqlError::TooLarge(message),
                ffi::ErrorCode::DiskFull => SqlError::DiskFull(message),
                ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase => SqlError::Corrupt(message),
                ffi::ErrorCode::CannotOpen | ffi::ErrorCode::NotFound => SqlError::NotFound(message),
                ffi::ErrorCode::AuthorizationForStatementDenied => SqlError::Misuse(REFUSED.into()),
                ffi::ErrorCode::ApiMisuse | ffi::ErrorCode::ParameterOutOfRange => SqlError::Misuse(message),
                // Plain SQLITE_ERROR is SQLite's "SQL logic error": bad SQL, no such table.
                _ if failure.extended_code == ffi::SQLITE_ERROR => SqlError::Misuse(message),
                _ => SqlError::Other(message),
            },
            rusqlite::Error::SqlInputError { .. }
            | rusqlite::Error::InvalidParameterName(_)
            | rusqlite::Error::InvalidParameterCount(_, _)
            | rusqlite::Error::MultipleStatement
            | rusqlite::Error::ExecuteReturnedResults
            | rusqlite::Error::InvalidQuery => SqlError::Misuse(message),
            _ => SqlError::Other(message),
        }
    }
}

/// How to open a database file; mirrors the WIT `open-mode` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    ReadWrite,
    Create,
}

/// Opens `path` in `mode` the way every store of the core opens its files:
/// through the core's VFS (no file locks inside WebAssembly, where the host
/// serialises processes with its own; journal writes gathered), rollback
/// journal (WAL needs shared memory WASI does not have), full sync, foreign
/// keys on.
pub fn open_connection(path: &str, mode: Mode) -> Result<rusqlite::Connection, SqlError> {
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let flags = match mode {
        Mode::ReadOnly => base | OpenFlags::SQLITE_OPEN_READ_ONLY,
        Mode::ReadWrite => base | OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::Create => base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    crate::vfs::register()?;
    let conn = rusqlite::Connection::open_with_flags_and_vfs(path, flags, crate::vfs::NAME)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES as i32)?;
    leave_wal_mode(&conn, mode)?;
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(conn)
}

/// A database another SQLite left in WAL mode can only be read here with an
/// exclusive lock; checkpoint it back to a rollback journal (on writable
/// connections) so that every later transaction sees other processes' writes.
fn leave_wal_mode(conn: &rusqlite::Connection, mode: Mode) -> Result<(), SqlError> {
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let journal: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    if journal.eq_ignore_ascii_case("wal") && mode != Mode::ReadOnly {
        let _: String = conn.pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))?;
    }
    if !journal.eq_ignore_ascii_case("wal") || mode != Mode::ReadOnly {
        conn.pragma_update(None, "locking_mode", "NORMAL")?;
        // The mode change takes effect at the next lock release.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    }
    Ok(())
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests;
