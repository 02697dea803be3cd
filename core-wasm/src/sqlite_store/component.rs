//! The component glue: the WIT `sqlite-store` interface over `Connection`.

use super::{Mode, SqlError};
use crate::bindings::exports::fast_crewai::core::sqlite_store::{self as wit, Error, Guest, GuestConnection, OpenMode};

impl From<SqlError> for Error {
    fn from(err: SqlError) -> Self {
        match err {
            SqlError::Constraint(m) => Error::Constraint(m),
            SqlError::Busy(m) => Error::Busy(m),
            SqlError::ReadOnly(m) => Error::ReadOnly(m),
            SqlError::Corrupt(m) => Error::Corrupt(m),
            SqlError::NotFound(m) => Error::NotFound(m),
            SqlError::Misuse(m) => Error::Misuse(m),
            SqlError::TooLarge(m) => Error::TooLarge(m),
            SqlError::DiskFull(m) => Error::DiskFull(m),
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
