//! The component glue: the WIT resource over [`Store`](super::Store).

use std::cell::RefCell;

use super::{MemError, Store as Inner};
use crate::bindings::exports::fast_crewai::core::memory_search::{Dimensions, Error, Guest, GuestStore, Store};

impl From<MemError> for Error {
    fn from(err: MemError) -> Self {
        match err {
            MemError::InvalidInput(m) => Error::InvalidInput(m),
            MemError::DimensionMismatch { stored, given } => Error::DimensionMismatch(Dimensions { stored, given }),
            MemError::Capacity(m) => Error::Capacity(m),
            MemError::Storage(m) => Error::Storage(m),
            MemError::DiskFull(m) => Error::DiskFull(m),
            MemError::RecordTooLarge(m) => Error::RecordTooLarge(m),
            MemError::ResultTooLarge(m) => Error::ResultTooLarge(m),
            MemError::ReadOnly(m) => Error::ReadOnly(m),
        }
    }
}

/// The resource's representation. Methods take `&self`; the core is
/// single-threaded and never re-entered, so the `RefCell` is never
/// contended.
pub struct StoreResource(RefCell<Inner>);

impl StoreResource {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T, MemError>) -> Result<T, Error> {
        let mut inner = self
            .0
            .try_borrow_mut()
            .map_err(|_| Error::Storage("the store is already in use".into()))?;
        let result = f(&mut inner);
        if matches!(result, Err(MemError::DiskFull(_))) {
            inner.settle();
        }
        Ok(result?)
    }
}

impl Guest for crate::Core {
    type Store = StoreResource;
}

impl GuestStore for StoreResource {
    fn open(path: String, read_only: bool) -> Result<Store, Error> {
        let inner = if read_only {
            Inner::open_read_only(&path)?
        } else {
            Inner::open(&path)?
        };
        Ok(Store::new(StoreResource(RefCell::new(inner))))
    }

    fn save(&self, records: String) -> Result<u32, Error> {
        self.with(|s| s.save(&records))
    }

    fn save_packed(&self, records: String, vectors: String) -> Result<u32, Error> {
        self.with(|s| s.save_packed(&records, &vectors))
    }

    fn search(&self, query: String, filter: String, limit: u32, min_score: f64) -> Result<String, Error> {
        self.with(|s| s.search(&query, &filter, limit, min_score))
    }

    fn search_text(&self, query: String, filter: String, limit: u32) -> Result<String, Error> {
        self.with(|s| s.search_text(&query, &filter, limit))
    }

    fn search_hits(&self, query: String, filter: String, limit: u32, min_score: f64) -> Result<String, Error> {
        self.with(|s| s.search_hits(&query, &filter, limit, min_score))
    }

    fn search_text_hits(&self, query: String, filter: String, limit: u32) -> Result<String, Error> {
        self.with(|s| s.search_text_hits(&query, &filter, limit))
    }

    fn records(&self, ids: String) -> Result<String, Error> {
        self.with(|s| s.records(&ids))
    }

    fn delete(&self, filter: String) -> Result<u32, Error> {
        self.with(|s| s.delete(&filter))
    }

    fn get(&self, id: String) -> Result<Option<String>, Error> {
        self.with(|s| s.get(&id))
    }

    fn refresh(&self) -> Result<bool, Error> {
        self.with(|s| s.refresh())
    }

    fn list(&self, scope_prefix: Option<String>, limit: u32, offset: u32) -> Result<String, Error> {
        self.with(|s| s.list(scope_prefix.as_deref(), limit, offset))
    }

    fn scope_info(&self, scope: String) -> Result<String, Error> {
        self.with(|s| s.scope_info(&scope))
    }

    fn list_scopes(&self, parent: String) -> Result<String, Error> {
        self.with(|s| s.list_scopes(&parent))
    }

    fn list_categories(&self, scope_prefix: Option<String>) -> Result<String, Error> {
        self.with(|s| s.list_categories(scope_prefix.as_deref()))
    }

    fn count(&self, scope_prefix: Option<String>) -> Result<u64, Error> {
        self.with(|s| s.count(scope_prefix.as_deref()))
    }

    fn reset(&self, scope_prefix: Option<String>) -> Result<(), Error> {
        self.with(|s| s.reset(scope_prefix.as_deref()))
    }

    fn touch(&self, ids: String, at: String) -> Result<u32, Error> {
        self.with(|s| s.touch(&ids, &at))
    }

    fn dimension(&self) -> Option<u32> {
        self.0.try_borrow_mut().ok().and_then(|mut s| s.dimension())
    }
}
