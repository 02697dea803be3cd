//! `sqlite-store`: SQLite connections on files in the granted directories,
//! with parameters and rows crossing the boundary as JSON text.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{ffi, OpenFlags, ToSql};
use std::fmt::Write as _;

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
                ffi::ErrorCode::ApiMisuse => SqlError::Misuse(message),
                // Plain SQLITE_ERROR is SQLite's "SQL logic error": bad SQL, no such table.
                _ if failure.extended_code == ffi::SQLITE_ERROR => SqlError::Misuse(message),
                _ => SqlError::Other(message),
            },
            rusqlite::Error::SqlInputError { .. }
            | rusqlite::Error::InvalidParameterName(_)
            | rusqlite::Error::InvalidParameterCount(_, _)
            | rusqlite::Error::MultipleStatement
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

/// A connection plus the JSON codec for its values.
pub struct Connection {
    conn: rusqlite::Connection,
}

impl Connection {
    /// Opens the database at `path`.
    pub fn open(path: &str, mode: Mode) -> Result<Self, SqlError> {
        Ok(Connection {
            conn: open_connection(path, mode)?,
        })
    }

    /// Runs one statement and returns its result document.
    pub fn execute(&self, sql: &str, params: &str) -> Result<String, SqlError> {
        let params = parse_params(params)?;
        let mut stmt = self.conn.prepare(sql)?;
        bind(&mut stmt, &params)?;
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let column_count = columns.len();
        let mut out = String::from("{\"columns\":[");
        for (i, name) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, name);
        }
        out.push_str("],\"rows\":[");
        let mut rows = stmt.raw_query();
        let mut first = true;
        while let Some(row) = rows.next()? {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('[');
            for i in 0..column_count {
                if i > 0 {
                    out.push(',');
                }
                write_sql_value(&mut out, row.get_ref(i)?);
            }
            out.push(']');
        }
        drop(rows);
        let _ = write!(
            out,
            "],\"changes\":{},\"last-insert-rowid\":{}}}",
            self.conn.changes(),
            self.conn.last_insert_rowid()
        );
        Ok(out)
    }

    /// Runs `sql` once per parameter set, all or nothing.
    pub fn execute_many(&self, sql: &str, param_sets: &str) -> Result<u64, SqlError> {
        let sets = match json::parse(param_sets).map_err(|e| SqlError::Misuse(e.message))? {
            Value::Array(sets) => sets,
            other => {
                return Err(SqlError::Misuse(format!(
                    "parameter sets must be an array, got {}",
                    other.type_name()
                )))
            }
        };
        let own_transaction = self.conn.is_autocommit();
        if own_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        } else {
            self.conn.execute_batch("SAVEPOINT execute_many")?;
        }
        let result = (|| {
            let mut stmt = self.conn.prepare(sql)?;
            let mut total = 0u64;
            for set in &sets {
                bind(&mut stmt, &params_from_value(set)?)?;
                total += stmt.raw_execute()? as u64;
            }
            Ok(total)
        })();
        let finish = match (&result, own_transaction) {
            (Ok(_), true) => "COMMIT",
            (Err(_), true) => "ROLLBACK",
            (Ok(_), false) => "RELEASE execute_many",
            (Err(_), false) => "ROLLBACK TO execute_many; RELEASE execute_many",
        };
        self.conn.execute_batch(finish)?;
        result
    }

    /// Runs a parameterless script.
    pub fn execute_script(&self, sql: &str) -> Result<(), SqlError> {
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
        Value::Object(members) => Ok(Params::Named(
            members
                .iter()
                .map(|(k, v)| Ok((k.clone(), sql_value(v)?)))
                .collect::<Result<_, SqlError>>()?,
        )),
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
            for i in 1..=expected {
                let Some(name) = stmt.parameter_name(i) else {
                    return Err(SqlError::Misuse(
                        "named parameters given to a statement with positional ones".into(),
                    ));
                };
                let key = &name[1..];
                let Some((_, value)) = values.iter().find(|(k, _)| k == key || k == name) else {
                    return Err(SqlError::Misuse(format!("no value given for parameter {name}")));
                };
                stmt.raw_bind_parameter(i, value as &dyn ToSql)?;
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
        ValueRef::Real(f) if f.is_finite() => json::write_float(out, f),
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

        fn execute_many(&self, sql: String, param_sets: String) -> Result<u64, Error> {
            Ok(super::Connection::execute_many(self, &sql, &param_sets)?)
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
        assert!(out.contains(r#""rows":[[1,1.0,"xé",null,{"$blob":"AAEC"}]]"#), "{out}");
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
