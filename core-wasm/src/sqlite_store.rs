//! `sqlite-store`: SQLite connections on files in the granted directories,
//! with parameters and rows crossing the boundary as JSON text.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{ffi, OpenFlags, ToSql};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::json::{self, Number, Value};

/// Why a SQLite call failed; mirrors the WIT `error` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlError {
    Constraint(String),
    Busy(String),
    ReadOnly(String),
    Corrupt(String),
    NotFound(String),
    Misuse(String),
    Other(String),
}

/// The message for a statement the authorizer refused: SQLite says only "not authorized".
pub const REFUSED: &str =
    "not authorized: ATTACH, VACUUM INTO and changing journal_mode or locking_mode would escape the host's locks";

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> Self {
        let message = err.to_string();
        match &err {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ffi::ErrorCode::ConstraintViolation => SqlError::Constraint(message),
                ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => SqlError::Busy(message),
                ffi::ErrorCode::ReadOnly => SqlError::ReadOnly(message),
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

/// The VFS the core opens files with. Inside WebAssembly there are no file
/// locks, so the host serialises access across processes with its own locks
/// and SQLite is told not to lock at all.
#[cfg(target_arch = "wasm32")]
pub const VFS: Option<&str> = Some("unix-none");
#[cfg(not(target_arch = "wasm32"))]
pub const VFS: Option<&str> = None;

/// Opens `path` in `mode` the way every store of the core opens its files:
/// rollback journal (WAL needs shared memory WASI does not have), full sync,
/// foreign keys on.
pub fn open_connection(path: &str, mode: Mode) -> Result<rusqlite::Connection, SqlError> {
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let flags = match mode {
        Mode::ReadOnly => base | OpenFlags::SQLITE_OPEN_READ_ONLY,
        Mode::ReadWrite => base | OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::Create => base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    let conn = match VFS {
        Some(vfs) => rusqlite::Connection::open_with_flags_and_vfs(path, flags, vfs)?,
        None => rusqlite::Connection::open_with_flags(path, flags)?,
    };
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

/// What the statement cache holds: every statement a store runs repeatedly
/// (stdlib `sqlite3` keeps 128 too).
const STATEMENT_CACHE: usize = 128;

/// Why `execute`, `execute-many` and `query` refuse to open or close a
/// transaction: the host holds its cross-process lock for exactly one call
/// or one host-managed transaction, and a transaction left open past it
/// would be unprotected.
pub const TRANSACTION_CONTROL: &str =
    "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) belongs to the host's transaction()";

/// Why `query` refused a statement.
pub const WRITE_IN_QUERY: &str = "query runs only statements that do not write; use execute";

/// A connection plus the JSON codec for its values.
///
/// Between calls that only read, SQLite keeps its (no-op) lock and its page
/// cache (`locking_mode=EXCLUSIVE`): otherwise every statement would first
/// probe the journal, the WAL file, the file size and the change counter,
/// five WASI calls costing far more than the statement. Writes run with
/// `locking_mode=NORMAL` so that every commit bumps the change counter that
/// other connections watch. The host, which sees other processes' commits
/// through that counter, calls `refresh` when the file changed.
pub struct Connection {
    conn: rusqlite::Connection,
    /// Whether SQLite is told to keep its lock between statements.
    holding: Cell<bool>,
    /// Set while the core runs its own pragmas, which the authorizer refuses to callers.
    internal: Arc<AtomicBool>,
}

/// Refuses what would escape the host's protection: another database file
/// (ATTACH, VACUUM INTO, which attaches) has no host lock, and WAL or
/// exclusive locking cannot work without file locks. `ATTACH ''` (a private
/// temporary database, which plain VACUUM uses) reaches no file.
fn authorize(ctx: AuthContext<'_>, internal: &AtomicBool) -> Authorization {
    if internal.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    match ctx.action {
        AuthAction::Attach { filename } if !filename.is_empty() => Authorization::Deny,
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if ["journal_mode", "locking_mode"]
            .iter()
            .any(|locked| pragma_name.eq_ignore_ascii_case(locked)) =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

impl Connection {
    /// Opens the database at `path`.
    pub fn open(path: &str, mode: Mode) -> Result<Self, SqlError> {
        let mut conn = open_connection(path, mode)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let internal = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&internal);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| authorize(ctx, &flag)))?;
        // A read-only connection to a WAL database stays in exclusive mode (see leave_wal_mode).
        let locking: String = conn.pragma_query_value(None, "locking_mode", |row| row.get(0))?;
        Ok(Connection {
            conn,
            holding: Cell::new(locking.eq_ignore_ascii_case("exclusive")),
            internal,
        })
    }

    fn set_holding(&self, on: bool) -> Result<(), SqlError> {
        if self.holding.get() != on {
            let sql = if on {
                "PRAGMA locking_mode=EXCLUSIVE"
            } else {
                "PRAGMA locking_mode=NORMAL"
            };
            self.internal.store(true, Ordering::Relaxed);
            let result = self.conn.query_row(sql, [], |_| Ok(()));
            self.internal.store(false, Ordering::Relaxed);
            result?;
            self.holding.set(on);
        }
        Ok(())
    }

    /// Makes SQLite re-read the file before the next statement: the host
    /// calls it when another connection changed the file, or left a journal.
    pub fn refresh(&self) -> Result<(), SqlError> {
        if self.holding.get() {
            self.set_holding(false)?;
            // With NORMAL set, the next access drops the lock SQLite held (it
            // still reads through the old cache: nothing here depends on it);
            // the statement after that checks the journal and change counter.
            self.conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Runs one statement and returns its result document.
    pub fn execute(&self, sql: &str, params: &str) -> Result<String, SqlError> {
        self.set_holding(false)?;
        self.keeping_transaction_state(|| self.run(sql, params, false))
    }

    /// Runs one statement that SQLite reports as read-only
    /// (`sqlite3_stmt_readonly`), so that the host may run it holding only a
    /// shared lock. (Not `PRAGMA query_only`: toggling it expires every
    /// prepared statement.)
    pub fn query(&self, sql: &str, params: &str) -> Result<String, SqlError> {
        let result = self.keeping_transaction_state(|| self.run(sql, params, true));
        if self.conn.is_autocommit() {
            self.set_holding(true)?;
        }
        result
    }

    /// Runs `run` and refuses its outcome if it opened or closed a
    /// transaction; one it opened is rolled back. A statement that failed
    /// keeps its own error even if SQLite rolled the transaction back for
    /// it (`INSERT OR ROLLBACK`, I/O errors): the host asks
    /// `in-transaction` after an error.
    fn keeping_transaction_state<T>(&self, run: impl FnOnce() -> Result<T, SqlError>) -> Result<T, SqlError> {
        let before = self.conn.is_autocommit();
        let result = run();
        let after = self.conn.is_autocommit();
        if before && !after {
            self.conn.execute_batch("ROLLBACK")?;
            return Err(SqlError::Misuse(TRANSACTION_CONTROL.into()));
        }
        if !before && after && result.is_ok() {
            return Err(SqlError::Misuse(TRANSACTION_CONTROL.into()));
        }
        result
    }

    fn run(&self, sql: &str, params: &str, read_only: bool) -> Result<String, SqlError> {
        let params = parse_params(params)?;
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            // Only whitespace or comments: nothing to run, like stdlib sqlite3.
            Err(rusqlite::Error::Empty) => {
                return match params {
                    Params::Positional(values) if !values.is_empty() => Err(SqlError::Misuse(format!(
                        "the statement takes 0 parameters, {} were given",
                        values.len()
                    ))),
                    Params::Named(values) if !values.is_empty() => Err(SqlError::Misuse(format!(
                        "unknown parameter {}: the statement has no such parameter",
                        values[0].0
                    ))),
                    _ => Ok(self.document(&[], "", 0)),
                }
            }
            Err(err) => return Err(err.into()),
        };
        // An EXPLAIN only describes its statement, whatever that would do.
        if read_only && !stmt.readonly() && stmt.is_explain() == 0 {
            return Err(SqlError::ReadOnly(WRITE_IN_QUERY.into()));
        }
        bind(&mut stmt, &params)?;
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let column_count = columns.len();
        let before = self.conn.total_changes();
        let mut rows_text = String::new();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            if !rows_text.is_empty() {
                rows_text.push(',');
            }
            rows_text.push('[');
            for i in 0..column_count {
                if i > 0 {
                    rows_text.push(',');
                }
                write_sql_value(&mut rows_text, row.get_ref(i)?);
            }
            rows_text.push(']');
        }
        drop(rows);
        let changes = self.changes_since(before);
        Ok(self.document(&columns, &rows_text, changes))
    }

    /// The rows the statement just run inserted, updated or deleted
    /// (`sqlite3_changes`, so not those of triggers), or 0 when it changed
    /// nothing: `sqlite3_changes` alone would repeat an earlier statement's
    /// count after a SELECT or a CREATE.
    fn changes_since(&self, total_before: u64) -> u64 {
        if self.conn.total_changes() == total_before {
            0
        } else {
            self.conn.changes()
        }
    }

    fn document(&self, columns: &[String], rows_text: &str, changes: u64) -> String {
        let mut out = String::with_capacity(rows_text.len() + 64);
        out.push_str("{\"columns\":[");
        for (i, name) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, name);
        }
        let _ = write!(
            out,
            "],\"rows\":[{rows_text}],\"changes\":{changes},\"last-insert-rowid\":{}}}",
            self.conn.last_insert_rowid()
        );
        out
    }

    /// Runs `sql` once per parameter set, all or nothing, and returns the
    /// rows changed in total.
    pub fn execute_many(&self, sql: &str, param_sets: &str) -> Result<u64, SqlError> {
        let sets =
            match json::parse(param_sets).map_err(|e| SqlError::Misuse(format!("parameter sets: {}", e.message)))? {
                Value::Array(sets) => sets,
                other => {
                    return Err(SqlError::Misuse(format!(
                        "parameter sets must be an array, got {}",
                        other.type_name()
                    )))
                }
            };
        let sets = sets.iter().map(params_from_value).collect::<Result<Vec<_>, _>>()?;
        self.set_holding(false)?;
        let not_dml = || SqlError::Misuse("execute-many runs statements that change the database".into());
        let mut stmt = match self.conn.prepare_cached(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::Empty) => return Err(not_dml()),
            Err(err) => return Err(err.into()),
        };
        // Like stdlib sqlite3: a statement that cannot write (SELECT, and
        // every transaction-control statement) has no place here, nor one
        // that returns rows (RETURNING).
        if stmt.readonly() || stmt.column_count() > 0 {
            return Err(not_dml());
        }
        let own_transaction = self.conn.is_autocommit();
        self.conn.execute_batch(if own_transaction {
            "BEGIN IMMEDIATE"
        } else {
            "SAVEPOINT execute_many"
        })?;
        let result = (|| {
            let mut total = 0u64;
            for set in &sets {
                bind(&mut stmt, set)?;
                let before = self.conn.total_changes();
                stmt.raw_execute()?;
                total += self.changes_since(before);
            }
            Ok(total)
        })();
        drop(stmt);
        let finish = match (&result, own_transaction) {
            (Ok(_), true) => "COMMIT",
            (Err(_), true) => "ROLLBACK",
            (Ok(_), false) => "RELEASE execute_many",
            (Err(_), false) => "ROLLBACK TO execute_many; RELEASE execute_many",
        };
        // A failed statement may already have rolled the transaction back.
        if !self.conn.is_autocommit() {
            if let Err(err) = self.conn.execute_batch(finish) {
                if own_transaction {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err(result.err().unwrap_or_else(|| err.into()));
            }
        }
        result
    }

    /// Runs a parameterless script: the host's own BEGIN, COMMIT, ROLLBACK
    /// and savepoints.
    pub fn execute_script(&self, sql: &str) -> Result<(), SqlError> {
        self.set_holding(false)?;
        Ok(self.conn.execute_batch(sql)?)
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

/// Parameters in their two shapes.
enum Params {
    Positional(Vec<SqlValue>),
    /// Names without their sigil (`:`, `@` or `$`).
    Named(Vec<(String, SqlValue)>),
}

fn parse_params(text: &str) -> Result<Params, SqlError> {
    if text.is_empty() {
        return Ok(Params::Positional(Vec::new()));
    }
    let value = json::parse(text).map_err(|e| SqlError::Misuse(format!("parameters: {}", e.message)))?;
    params_from_value(&value)
}

fn params_from_value(value: &Value) -> Result<Params, SqlError> {
    match value {
        Value::Array(items) => Ok(Params::Positional(
            items.iter().map(sql_value).collect::<Result<_, _>>()?,
        )),
        Value::Object(members) => {
            let mut named: Vec<(String, SqlValue)> = Vec::with_capacity(members.len());
            for (key, item) in members {
                let name = key.strip_prefix([':', '@', '$']).unwrap_or(key);
                if named.iter().any(|(k, _)| k == name) {
                    return Err(SqlError::Misuse(format!("parameter {name} is given twice")));
                }
                named.push((name.to_owned(), sql_value(item)?));
            }
            Ok(Params::Named(named))
        }
        other => Err(SqlError::Misuse(format!(
            "parameters must be an array or an object, got {}",
            other.type_name()
        ))),
    }
}

fn sql_value(value: &Value) -> Result<SqlValue, SqlError> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(Number::Integer(text)) => SqlValue::Integer(
            text.parse()
                .map_err(|_| SqlError::Misuse(format!("integer {text} does not fit in 64 bits")))?,
        ),
        Value::Number(Number::Float(f)) => SqlValue::Real(*f),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(members) => match members.as_slice() {
            [(key, Value::String(b64))] if key == "$blob" => SqlValue::Blob(
                BASE64
                    .decode(b64)
                    .map_err(|e| SqlError::Misuse(format!("blob parameter: {e}")))?,
            ),
            [(key, Value::String(kind))] if key == "$real" => special_real(kind)?,
            _ => {
                return Err(SqlError::Misuse(
                    "an object parameter must be {\"$blob\": base64} or {\"$real\": \"inf\"|\"-inf\"}".into(),
                ))
            }
        },
        Value::Array(_) => return Err(SqlError::Misuse("a parameter cannot be an array".into())),
    })
}

/// JSON has no infinities; they travel as `{"$real": "inf"}` and `"-inf"`.
fn special_real(kind: &str) -> Result<SqlValue, SqlError> {
    match kind {
        "inf" => Ok(SqlValue::Real(f64::INFINITY)),
        "-inf" => Ok(SqlValue::Real(f64::NEG_INFINITY)),
        _ => Err(SqlError::Misuse(format!("unknown special real {kind:?}"))),
    }
}

/// Binds every parameter of `stmt`: positional values by index (also to
/// named parameters, as stdlib sqlite3 does), named values by name without
/// the sigil. A missing value, a surplus value and an unknown name are all
/// refused, so a typo never silently binds NULL.
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &Params) -> Result<(), SqlError> {
    stmt.clear_bindings();
    let expected = stmt.parameter_count();
    match params {
        Params::Positional(values) => {
            if values.len() != expected {
                return Err(SqlError::Misuse(format!(
                    "the statement takes {expected} parameters, {} were given",
                    values.len()
                )));
            }
            for (i, value) in values.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, value)?;
            }
        }
        Params::Named(values) => {
            let mut used = vec![false; values.len()];
            for i in 1..=expected {
                let Some(name) = stmt.parameter_name(i) else {
                    return Err(SqlError::Misuse(
                        "named parameters given to a statement with positional ones".into(),
                    ));
                };
                let Some(found) = values.iter().position(|(k, _)| k == &name[1..]) else {
                    return Err(SqlError::Misuse(format!("no value given for parameter {name}")));
                };
                used[found] = true;
                stmt.raw_bind_parameter(i, &values[found].1 as &dyn ToSql)?;
            }
            if let Some(unused) = used.iter().position(|u| !u) {
                return Err(SqlError::Misuse(format!(
                    "unknown parameter {}: the statement has no such parameter",
                    values[unused].0
                )));
            }
        }
    }
    Ok(())
}

fn write_sql_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("null"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        // The shortest digits that round-trip, in exponent form ("1.5e0"):
        // valid JSON, and far cheaper than reshaping them as Python's repr.
        ValueRef::Real(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        ValueRef::Real(f) => out.push_str(if f > 0.0 {
            "{\"$real\":\"inf\"}"
        } else {
            "{\"$real\":\"-inf\"}"
        }),
        ValueRef::Text(bytes) => json::write_string(out, &String::from_utf8_lossy(bytes)),
        ValueRef::Blob(bytes) => {
            out.push_str("{\"$blob\":\"");
            out.push_str(&BASE64.encode(bytes));
            out.push_str("\"}");
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::{Mode, SqlError};
    use crate::bindings::exports::fast_crewai::core::sqlite_store::{
        self as wit, Error, Guest, GuestConnection, OpenMode,
    };

    impl From<SqlError> for Error {
        fn from(err: SqlError) -> Self {
            match err {
                SqlError::Constraint(m) => Error::Constraint(m),
                SqlError::Busy(m) => Error::Busy(m),
                SqlError::ReadOnly(m) => Error::ReadOnly(m),
                SqlError::Corrupt(m) => Error::Corrupt(m),
                SqlError::NotFound(m) => Error::NotFound(m),
                SqlError::Misuse(m) => Error::Misuse(m),
                SqlError::Other(m) => Error::Other(m),
            }
        }
    }

    impl Guest for crate::Core {
        type Connection = super::Connection;
    }

    impl GuestConnection for super::Connection {
        fn open(path: String, mode: OpenMode) -> Result<wit::Connection, Error> {
            let mode = match mode {
                OpenMode::ReadOnly => Mode::ReadOnly,
                OpenMode::ReadWrite => Mode::ReadWrite,
                OpenMode::Create => Mode::Create,
            };
            Ok(wit::Connection::new(super::Connection::open(&path, mode)?))
        }

        fn execute(&self, sql: String, params: String) -> Result<String, Error> {
            Ok(super::Connection::execute(self, &sql, &params)?)
        }

        fn query(&self, sql: String, params: String) -> Result<String, Error> {
            Ok(super::Connection::query(self, &sql, &params)?)
        }

        fn execute_many(&self, sql: String, param_sets: String) -> Result<u64, Error> {
            Ok(super::Connection::execute_many(self, &sql, &param_sets)?)
        }

        fn refresh(&self) -> Result<(), Error> {
            Ok(super::Connection::refresh(self)?)
        }

        fn execute_script(&self, sql: String) -> Result<(), Error> {
            Ok(super::Connection::execute_script(self, &sql)?)
        }

        fn in_transaction(&self) -> bool {
            super::Connection::in_transaction(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("fcw-sqlite-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn values_round_trip_with_their_types() {
        let conn = Connection::open(&temp_db("types"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(a, b, c, d, e)").unwrap();
        conn.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            r#"[1, 1.0, "x\u00e9", null, {"$blob": "AAEC"}]"#,
        )
        .unwrap();
        let out = conn.execute("SELECT * FROM t", "[]").unwrap();
        assert!(out.contains(r#""rows":[[1,1e0,"xé",null,{"$blob":"AAEC"}]]"#), "{out}");
    }

    #[test]
    fn named_parameters_and_errors() {
        let conn = Connection::open(&temp_db("named"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(k TEXT PRIMARY KEY, v)").unwrap();
        conn.execute("INSERT INTO t VALUES (:k, :v)", r#"{"k": "a", "v": 2}"#)
            .unwrap();
        let dup = conn.execute("INSERT INTO t VALUES (:k, :v)", r#"{"k": "a", "v": 3}"#);
        assert!(matches!(dup, Err(SqlError::Constraint(_))), "{dup:?}");
        assert!(matches!(conn.execute("SELEC 1", "[]"), Err(SqlError::Misuse(_))));
        assert!(matches!(conn.execute("SELECT ?", "[]"), Err(SqlError::Misuse(_))));
    }

    #[test]
    fn execute_many_is_all_or_nothing() {
        let conn = Connection::open(&temp_db("many"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(k INTEGER PRIMARY KEY)").unwrap();
        assert_eq!(
            conn.execute_many("INSERT INTO t VALUES (?)", "[[1],[2],[3]]").unwrap(),
            3
        );
        assert!(conn.execute_many("INSERT INTO t VALUES (?)", "[[4],[1]]").is_err());
        let out = conn.execute("SELECT count(*) FROM t", "[]").unwrap();
        assert!(out.contains(r#""rows":[[3]]"#), "{out}");
    }

    #[test]
    fn named_parameters_are_strict() {
        let conn = Connection::open(&temp_db("strict"), Mode::Create).unwrap();
        let out = conn.execute("SELECT :a, @b", r#"{":a": 1, "b": 2}"#).unwrap();
        assert!(out.contains(r#""rows":[[1,2]]"#), "{out}");
        for params in [
            r#"{"a": 1}"#,
            r#"{"a": 1, "b": 2, "c": 3}"#,
            r#"{"a": 1, ":a": 2, "b": 3}"#,
        ] {
            let err = conn.execute("SELECT :a, @b", params);
            assert!(matches!(err, Err(SqlError::Misuse(_))), "{params}: {err:?}");
        }
        assert!(matches!(
            conn.execute("SELECT ?", r#"{"a": 1}"#),
            Err(SqlError::Misuse(_))
        ));
    }

    #[test]
    fn changes_count_only_this_statement() {
        let conn = Connection::open(&temp_db("changes"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(x)").unwrap();
        let out = conn.execute("INSERT INTO t VALUES (1), (2)", "[]").unwrap();
        assert!(out.contains(r#""changes":2,"last-insert-rowid":2"#), "{out}");
        let out = conn.execute("SELECT count(*) FROM t", "[]").unwrap();
        assert!(out.contains(r#""changes":0"#), "{out}");
        let out = conn.execute("-- nothing", "[]").unwrap();
        assert!(out.starts_with(r#"{"columns":[],"rows":[],"changes":0"#), "{out}");
    }

    #[test]
    fn transaction_control_and_escapes_are_refused() {
        let conn = Connection::open(&temp_db("guard"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(x)").unwrap();
        for sql in [
            "BEGIN",
            "SAVEPOINT s",
            "ATTACH 'other.db' AS o",
            "PRAGMA journal_mode=WAL",
        ] {
            let err = conn.execute(sql, "[]");
            assert!(matches!(err, Err(SqlError::Misuse(_))), "{sql}: {err:?}");
            assert!(!conn.in_transaction(), "{sql}");
        }
        conn.execute_script("BEGIN").unwrap();
        assert!(matches!(conn.execute("COMMIT", "[]"), Err(SqlError::Misuse(_))));
        conn.execute("VACUUM", "[]").unwrap();
        conn.execute("PRAGMA journal_mode", "[]").unwrap();
    }

    #[test]
    fn query_refuses_writes() {
        let conn = Connection::open(&temp_db("query"), Mode::Create).unwrap();
        conn.execute_script("CREATE TABLE t(x)").unwrap();
        let err = conn.query("INSERT INTO t VALUES (1) RETURNING x", "[]");
        assert!(matches!(err, Err(SqlError::ReadOnly(_))), "{err:?}");
        assert!(conn.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
        conn.execute("INSERT INTO t VALUES (1)", "[]").unwrap();
        assert!(matches!(
            conn.execute_many("SELECT ?", "[[1]]"),
            Err(SqlError::Misuse(_))
        ));
    }

    #[test]
    fn refresh_lets_a_reader_see_another_connections_commit() {
        let path = temp_db("refresh");
        let writer = Connection::open(&path, Mode::Create).unwrap();
        writer.execute_script("CREATE TABLE t(x)").unwrap();
        let reader = Connection::open(&path, Mode::ReadWrite).unwrap();
        assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
        assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
        reader.refresh().unwrap();
        writer.execute("INSERT INTO t VALUES (1)", "[]").unwrap();
        assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[1]]"));
        // Writing drops the held lock again, and the authorizer still refuses callers.
        reader.execute("INSERT INTO t VALUES (2)", "[]").unwrap();
        assert!(matches!(
            reader.execute("PRAGMA locking_mode=EXCLUSIVE", "[]"),
            Err(SqlError::Misuse(_))
        ));
    }

    #[test]
    fn read_only_refuses_writes() {
        let path = temp_db("ro");
        Connection::open(&path, Mode::Create)
            .unwrap()
            .execute_script("CREATE TABLE t(x)")
            .unwrap();
        let conn = Connection::open(&path, Mode::ReadOnly).unwrap();
        assert!(matches!(
            conn.execute("INSERT INTO t VALUES (1)", "[]"),
            Err(SqlError::ReadOnly(_))
        ));
    }
}
