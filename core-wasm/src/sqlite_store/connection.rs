//! The connection resource: statements, transactions kept in the host's
//! hands, and the authorizer that keeps SQLite inside the host's locks.

use rusqlite::ffi;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::values::json_error;
use super::values::{bind, params_from_value, parse_params, write_sql_value, Params};
use super::{open_connection, Mode, SqlError};
use crate::json::{self, Value, MAX_DOCUMENT_BYTES};

/// What the statement cache holds: every statement a store runs repeatedly
/// (stdlib `sqlite3` keeps 128 too).
const STATEMENT_CACHE: usize = 128;

/// Why `execute`, `execute-many` and `query` refuse to open or close a
/// transaction: the host holds its cross-process lock for exactly one call
/// or one host-managed transaction, and a transaction left open past it
/// would be unprotected.
pub const TRANSACTION_CONTROL: &str =
    "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) belongs to the host's transaction()";

/// Why a result was refused; the same text as the host's reference.
pub fn result_too_large(limit: usize) -> String {
    format!(
        "the result would be more than {limit} bytes of JSON, the most one call returns: \
         read it in parts (LIMIT and OFFSET, substr())"
    )
}

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
    /// The largest result document returned ([`MAX_DOCUMENT_BYTES`]; tests lower it).
    pub(super) result_limit: usize,
}

/// Pragmas that, set, would escape the host's protection: WAL and exclusive
/// locking cannot work without file locks, and a temporary directory
/// elsewhere puts files outside the granted one.
const LOCKED_PRAGMAS: [&str; 4] = [
    "journal_mode",
    "locking_mode",
    "temp_store_directory",
    "data_store_directory",
];

/// Refuses what would escape the host's protection: another database file
/// has no host lock, so ATTACH is refused whatever names the file (a
/// literal, a bound parameter, an expression: SQLite passes no file name for
/// the last two), and so is VACUUM INTO, which attaches its target. `ATTACH
/// ''`, a private temporary database like those of temporary tables, is
/// what plain VACUUM attaches, and stays allowed; DETACH has nothing left to
/// detach but that, and is refused.
fn authorize(ctx: AuthContext<'_>, internal: &AtomicBool) -> Authorization {
    if internal.load(Ordering::Relaxed) {
        return Authorization::Allow;
    }
    match ctx.action {
        AuthAction::Attach { filename: "" } => Authorization::Allow,
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Unknown { code, .. } if code == ffi::SQLITE_ATTACH || code == ffi::SQLITE_DETACH => {
            Authorization::Deny
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if LOCKED_PRAGMAS
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
            result_limit: MAX_DOCUMENT_BYTES,
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
        self.settled(self.keeping_transaction_state(|| self.run(sql, params, false)))
    }

    /// `result`, a write's, once a transaction a full disk ended has been
    /// rolled back from its journal (see [`crate::vfs::settle`]).
    fn settled<T>(&self, result: Result<T, SqlError>) -> Result<T, SqlError> {
        if matches!(result, Err(SqlError::DiskFull(_))) {
            crate::vfs::settle(&self.conn);
        }
        result
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
                    Params::Named(named) if named.first_name().is_some() => Err(SqlError::Misuse(format!(
                        "unknown parameter {}: the statement has no such parameter",
                        named.first_name().unwrap_or_default()
                    ))),
                    _ => self.document(&[], "", 0),
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
            // Stop building what could never cross; the whole document is checked below.
            if rows_text.len() > self.result_limit {
                return Err(SqlError::TooLarge(result_too_large(self.result_limit)));
            }
        }
        drop(rows);
        let changes = self.changes_since(before);
        self.document(&columns, &rows_text, changes)
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

    /// The result document, if it is within the limit of what one call returns.
    fn document(&self, columns: &[String], rows_text: &str, changes: u64) -> Result<String, SqlError> {
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
        if out.len() > self.result_limit {
            return Err(SqlError::TooLarge(result_too_large(self.result_limit)));
        }
        Ok(out)
    }

    /// Runs `sql` once per parameter set, all or nothing, and returns the
    /// rows changed in total.
    pub fn execute_many(&self, sql: &str, param_sets: &str) -> Result<u64, SqlError> {
        self.settled(self.run_many(sql, param_sets))
    }

    fn run_many(&self, sql: &str, param_sets: &str) -> Result<u64, SqlError> {
        let sets = match json::parse(param_sets).map_err(|e| json_error("parameter sets", e))? {
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
        self.settled(self.conn.execute_batch(sql).map_err(SqlError::from))
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}
