//! The store: the SQLite connection, the in-memory index, and the calls of
//! the WIT resource.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::codec::{
    bounded, check_record_size, decode_vector, parse_packed_records, parse_records, write_hit_ids, write_hits,
    write_rows, write_string_array, write_versioned, NewRecord, Output,
};
use super::constants::constants;
use super::filter::{in_scope, rooted_prefix, string_list, Filter};
use super::index::Index;
use super::search::{text_top_k, vector_top_k};
use super::{invalid, memory, mismatch, parse_json, persist, MemError};
use crate::json::{self, Value};

/// An open memory store: the SQLite connection and the in-memory index.
pub struct Store {
    pub(super) conn: Connection,
    pub(super) index: Index,
    /// Reads the file's change counter.
    header: persist::Header,
    fresh: Freshness,
    /// How many times the index was (re)loaded from the file.
    pub(super) loads: u64,
    /// How many times it was brought up to date from the change log alone.
    pub(super) updates: u64,
    /// Opened read-only: SQLite may not write, and every write is refused.
    read_only: bool,
}

/// What the index reflects of the file.
struct Freshness {
    /// `PRAGMA data_version` when the index was last brought up to date;
    /// `i64::MIN` forces a reload.
    data_version: i64,
    /// The last entry of the file's change log the index reflects, and the
    /// change counter of the file it reflects; `None` when unknown (then
    /// only a reload brings it up to date).
    log_position: Option<i64>,
    counter: Option<u32>,
}

/// Brings `index` up to date, in one read transaction, when another
/// connection committed since (or when the version is `i64::MIN`).
fn sync(
    conn: &mut Connection,
    header: &persist::Header,
    index: &mut Index,
    store: &mut Counts,
    fresh: &mut Freshness,
) -> Result<(), MemError> {
    if persist::data_version(conn)? == fresh.data_version {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    catch_up(&tx, header, index, store, fresh)?;
    tx.commit()?;
    Ok(())
}

/// The store's counters, borrowed apart from its connection.
struct Counts<'a> {
    loads: &'a mut u64,
    updates: &'a mut u64,
}

/// Applies what other connections changed, from the file's change log
/// (`schema.sql`: every store logs the ids of the records it writes or
/// deletes) when it accounts for every commit since the index's position,
/// else reloads the whole store.
fn catch_up(
    conn: &Connection,
    header: &persist::Header,
    index: &mut Index,
    counts: &mut Counts,
    fresh: &mut Freshness,
) -> Result<(), MemError> {
    // A read first: SQLite has rolled back any crashed writer's journal
    // before the counter is read.
    let latest = persist::log_position(conn)?;
    let current = header.counter()?;
    if let (Some(position), Some(known)) = (fresh.log_position, fresh.counter) {
        let changes = if latest == position && current == known {
            Some((position, Vec::new()))
        } else {
            persist::changes_since(conn, position, known, current)?
        };
        if let Some((last, ids)) = changes {
            // Past half the store, reading it whole is the cheaper way.
            if ids.len() <= index.len() / 2 + 64 {
                fresh.data_version = i64::MIN;
                fresh.log_position = None;
                fresh.counter = None;
                // On failure the index may hold part of the changes: reload.
                if persist::apply(conn, index, &ids).is_ok() {
                    *counts.updates += 1;
                    fresh.log_position = Some(last);
                    fresh.counter = Some(current);
                    fresh.data_version = persist::data_version(conn)?;
                    return Ok(());
                }
            }
        }
    }
    reload(conn, index, counts, fresh, current)
}

fn reload(
    conn: &Connection,
    index: &mut Index,
    counts: &mut Counts,
    fresh: &mut Freshness,
    counter: u32,
) -> Result<(), MemError> {
    *counts.loads += 1;
    // Free the old index first (the memory may not hold two), and leave the
    // version invalid until the new one is complete, so that a failed reload
    // is retried by the next call.
    *index = Index::default();
    fresh.data_version = i64::MIN;
    fresh.log_position = None;
    fresh.counter = None;
    let new_index = persist::load(conn)?;
    let position = persist::log_position(conn)?;
    let new_version = persist::data_version(conn)?;
    *index = new_index;
    fresh.log_position = Some(position);
    fresh.counter = Some(counter);
    fresh.data_version = new_version;
    Ok(())
}

/// Starts a write transaction, holding the database's write lock, with the
/// index brought up to date inside it.
/// Returns it with the change counter the transaction found.
fn begin_write<'c>(
    conn: &'c mut Connection,
    header: &persist::Header,
    index: &mut Index,
    counts: &mut Counts,
    fresh: &mut Freshness,
) -> Result<(Transaction<'c>, u32), MemError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if persist::data_version(&tx)? != fresh.data_version {
        catch_up(&tx, header, index, counts, fresh)?;
    }
    let counter = header.counter()?;
    Ok((tx, counter))
}

/// Logs a write's changes and commits it; the index (updated by the caller
/// after this) then reflects the change log up to the write's own entries,
/// and the counter its commit left.
fn commit<'a>(
    tx: Transaction<'_>,
    counter: u32,
    changed: impl IntoIterator<Item = Option<&'a str>>,
    fresh: &mut Freshness,
) -> Result<(), MemError> {
    persist::log_changes(&tx, counter, changed)?;
    let position = persist::log_position(&tx)?;
    tx.commit()?;
    fresh.log_position = Some(position);
    fresh.counter = Some(counter.wrapping_add(1));
    Ok(())
}

/// Why a store opened read-only refuses the call `what`.
pub fn refused_write(what: &str) -> MemError {
    MemError::ReadOnly(format!("{what} would write to a store opened read-only"))
}

impl Store {
    /// Opens (creating when missing) the store in the SQLite file at `path`.
    pub fn open(path: &str) -> Result<Store, MemError> {
        Store::open_with(path, false)
    }

    /// Opens the store in the existing SQLite file at `path` read-only: the
    /// file is never written, and every call that would write fails with
    /// [`MemError::ReadOnly`].
    pub fn open_read_only(path: &str) -> Result<Store, MemError> {
        Store::open_with(path, true)
    }

    fn open_with(path: &str, read_only: bool) -> Result<Store, MemError> {
        if path.is_empty() {
            return Err(invalid("path is empty"));
        }
        if path.contains('\0') {
            return Err(invalid("path contains a NUL character"));
        }
        let conn = persist::open(path, read_only)?;
        let mut store = Store {
            conn,
            index: Index::default(),
            header: persist::Header::open(path)?,
            fresh: Freshness {
                data_version: i64::MIN,
                log_position: None,
                counter: None,
            },
            loads: 0,
            updates: 0,
            read_only,
        };
        store.sync()?;
        Ok(store)
    }

    /// Rolls back, from its journal, a write a full disk ended (see
    /// [`crate::vfs::settle`]).
    pub fn settle(&self) {
        crate::vfs::settle(&self.conn);
    }

    /// Refuses the write `what` on a store opened read-only, before it
    /// parses its arguments.
    fn writable(&self, what: &str) -> Result<(), MemError> {
        if self.read_only {
            return Err(refused_write(what));
        }
        Ok(())
    }

    /// Starts a write transaction with the index brought up to date: the
    /// transaction, the change counter its commit moves past, and the index
    /// and freshness the write updates (borrowed beside the connection).
    fn begin(&mut self) -> Result<(Transaction<'_>, u32, &mut Index, &mut Freshness), MemError> {
        let mut counts = Counts {
            loads: &mut self.loads,
            updates: &mut self.updates,
        };
        let (tx, counter) = begin_write(
            &mut self.conn,
            &self.header,
            &mut self.index,
            &mut counts,
            &mut self.fresh,
        )?;
        Ok((tx, counter, &mut self.index, &mut self.fresh))
    }

    fn sync(&mut self) -> Result<(), MemError> {
        let mut counts = Counts {
            loads: &mut self.loads,
            updates: &mut self.updates,
        };
        sync(
            &mut self.conn,
            &self.header,
            &mut self.index,
            &mut counts,
            &mut self.fresh,
        )
    }

    /// Inserts or replaces (by id) a JSON array of records; returns how many
    /// were written.
    pub fn save(&mut self, records: &str) -> Result<u32, MemError> {
        self.writable("save")?;
        // Parsing takes a few times the text (strings, metadata, vectors).
        memory::ensure(records.len().saturating_mul(3), "reading the batch")?;
        let batch = parse_records(records)?;
        self.write_batch(batch)
    }

    /// [`Store::save`] with the embeddings in one base64 block beside the
    /// records' JSON (each record's `embedding` the count of its values).
    pub fn save_packed(&mut self, records: &str, vectors: &str) -> Result<u32, MemError> {
        self.writable("save")?;
        memory::ensure(
            records.len().saturating_add(vectors.len()).saturating_mul(3),
            "reading the batch",
        )?;
        let batch = parse_packed_records(records, vectors)?;
        self.write_batch(batch)
    }

    fn write_batch(&mut self, batch: Vec<NewRecord>) -> Result<u32, MemError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut scratch = String::new();
        for (i, (record, embedding)) in batch.iter().enumerate() {
            check_record_size(&mut scratch, record, embedding.as_ref().map(Vec::len), || {
                format!("records[{i}]")
            })?;
        }
        let (tx, counter, index, fresh) = self.begin()?;
        // Every embedding must have the store's dimension, or, in a store
        // without one yet, that of the batch's first embedding.
        let mut expected = index.dim();
        for e in batch.iter().filter_map(|(_, e)| e.as_ref()) {
            match expected {
                None => expected = Some(e.len()),
                Some(d) if d != e.len() => return Err(mismatch(d, e.len())),
                Some(_) => {}
            }
        }
        let new_dim = if index.dim().is_none() { expected } else { None };
        let new_ids: HashSet<&str> = batch
            .iter()
            .map(|(r, _)| r.id.as_str())
            .filter(|id| index.row_of(id).is_none())
            .collect();
        let rows = index.len() + new_ids.len();
        let dim = index.dim().or(new_dim);
        let per_element = usize::try_from(constants().bytes_per_element).unwrap_or(usize::MAX);
        let vectors = new_ids
            .len()
            .saturating_mul(dim.unwrap_or(0))
            .saturating_mul(per_element);
        let growth = batch
            .iter()
            .fold(vectors, |n, (r, _)| n.saturating_add(memory::record_growth(r)));
        memory::ensure(
            growth.saturating_add(memory::headroom(rows)),
            "the batch and room to read the store afterwards",
        )?;
        index.reserve(rows, dim)?;
        if let Some(d) = new_dim {
            persist::set_dimension(&tx, d)?;
        }
        let mut seqs = Vec::with_capacity(batch.len());
        for (record, embedding) in &batch {
            seqs.push(persist::put(&tx, record, embedding.as_deref())?);
        }
        // A new dimension is logged as a change of everything.
        let changed = batch.iter().map(|(r, _)| Some(r.id.as_str()));
        commit(tx, counter, new_dim.map(|_| None).into_iter().chain(changed), fresh)?;
        if let Some(d) = new_dim {
            index.set_dim(d);
        }
        let written = batch.len();
        for ((record, embedding), seq) in batch.into_iter().zip(seqs) {
            index.upsert(record, embedding.as_deref(), seq);
        }
        Ok(u32::try_from(written).unwrap_or(u32::MAX))
    }

    /// Exact top-`limit` vector search; JSON `[[record, score], ...]`.
    pub fn search(&mut self, query: &str, filter: &str, limit: u32, min_score: f64) -> Result<String, MemError> {
        let hits = self.vector_hits(query, filter, limit, min_score)?;
        write_hits(&self.index, &hits)
    }

    /// [`Store::search`] as `[[id, version, score], ...]`.
    pub fn search_hits(&mut self, query: &str, filter: &str, limit: u32, min_score: f64) -> Result<String, MemError> {
        let hits = self.vector_hits(query, filter, limit, min_score)?;
        write_hit_ids(&self.index, &hits)
    }

    /// The rows and scores of an exact top-`limit` vector search.
    fn vector_hits(
        &self,
        query: &str,
        filter: &str,
        limit: u32,
        min_score: f64,
    ) -> Result<Vec<(usize, f64)>, MemError> {
        if min_score.is_nan() {
            return Err(invalid("min-score is NaN"));
        }
        let q = decode_vector(query, "query")?;
        let filter = Filter::parse(filter)?;
        let Some(dim) = self.index.dim() else {
            return Ok(Vec::new());
        };
        if q.len() != dim {
            return Err(mismatch(dim, q.len()));
        }
        Ok(vector_top_k(&self.index, &q, &filter, limit as usize, min_score))
    }

    /// BM25 search of `content`; JSON `[[record, score], ...]`.
    pub fn search_text(&mut self, query: &str, filter: &str, limit: u32) -> Result<String, MemError> {
        let filter = Filter::parse(filter)?;
        let hits = text_top_k(&self.index, query, &filter, limit as usize);
        write_hits(&self.index, &hits)
    }

    /// [`Store::search_text`] as `[[id, version, score], ...]`.
    pub fn search_text_hits(&mut self, query: &str, filter: &str, limit: u32) -> Result<String, MemError> {
        let filter = Filter::parse(filter)?;
        let hits = text_top_k(&self.index, query, &filter, limit as usize);
        write_hit_ids(&self.index, &hits)
    }

    /// `[[version, record] | null, ...]` for the JSON array of ids `ids`.
    pub fn records(&mut self, ids: &str) -> Result<String, MemError> {
        let ids = match parse_json(ids, "ids")? {
            v @ Value::Array(_) => string_list(v, "ids").map_err(|_| invalid("ids must be a JSON array of strings"))?,
            _ => return Err(invalid("ids must be a JSON array of strings")),
        };
        write_versioned(&self.index, ids.iter().map(|id| self.index.row_of(id)))
    }

    /// Deletes the records matching `filter` (`{}` deletes all); returns how
    /// many.
    pub fn delete(&mut self, filter: &str) -> Result<u32, MemError> {
        self.writable("delete")?;
        let filter = Filter::parse(filter)?;
        self.delete_where(&filter, false)
    }

    fn delete_where(&mut self, filter: &Filter, forget_dim: bool) -> Result<u32, MemError> {
        let (tx, counter, index, fresh) = self.begin()?;
        if filter.is_empty() {
            let n = index.len();
            persist::delete_all(&tx, forget_dim)?;
            commit(tx, counter, [None], fresh)?;
            index.clear(forget_dim);
            return Ok(u32::try_from(n).unwrap_or(u32::MAX));
        }
        let rows = filter.rows(index);
        if rows.is_empty() {
            return Ok(0);
        }
        for &row in &rows {
            persist::delete_seq(&tx, index.seq(row))?;
        }
        let changed = rows.iter().map(|&row| Some(index.record(row).id.as_str()));
        commit(tx, counter, changed, fresh)?;
        let n = rows.len();
        index.remove_rows(rows);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The record with this id as JSON.
    pub fn get(&mut self, id: &str) -> Result<Option<String>, MemError> {
        let Some(row) = self.index.row_of(id) else {
            return Ok(None);
        };
        let mut out = Output::new();
        out.push_record(&self.index, row)?;
        out.finish().map(Some)
    }

    /// Records under `scope_prefix`, newest `created_ts` first (then latest
    /// insertion first), paged.
    pub fn list(&mut self, scope_prefix: Option<&str>, limit: u32, offset: u32) -> Result<String, MemError> {
        let index = &self.index;
        let mut rows = Filter::scope(scope_prefix).rows(index);
        let newest_first = |a: &usize, b: &usize| {
            index
                .record(*b)
                .created_ts
                .total_cmp(&index.record(*a).created_ts)
                .then(index.seq(*b).cmp(&index.seq(*a)))
        };
        let end = (offset as usize).saturating_add(limit as usize);
        if end < rows.len() {
            rows.select_nth_unstable_by(end, newest_first);
            rows.truncate(end);
        }
        rows.sort_unstable_by(newest_first);
        write_rows(index, rows.into_iter().skip(offset as usize).take(limit as usize))
    }

    /// `{"record_count", "categories", "oldest", "newest", "child_scopes"}`
    /// for `scope` and everything below it.
    pub fn scope_info(&mut self, scope: &str) -> Result<String, MemError> {
        let index = &self.index;
        let prefix = rooted_prefix(scope);
        let prefix = prefix.as_str();
        let child_prefix = format!("{prefix}/");
        let mut count = 0u64;
        let mut categories: BTreeSet<&String> = BTreeSet::new();
        let mut children: BTreeSet<&str> = BTreeSet::new();
        let mut oldest: Option<(f64, i64, usize)> = None;
        let mut newest: Option<(f64, i64, usize)> = None;
        for (row, r) in index.records().iter().enumerate() {
            if !prefix.is_empty() && !in_scope(&r.scope, prefix) {
                continue;
            }
            count += 1;
            categories.extend(r.categories.iter());
            if let Some(rest) = r.scope.strip_prefix(&child_prefix) {
                let first = rest.split('/').next().unwrap_or("");
                if !first.is_empty() {
                    children.insert(&r.scope[..child_prefix.len() + first.len()]);
                }
            }
            let key = (r.created_ts, index.seq(row), row);
            let older = |a: &(f64, i64, usize), b: &(f64, i64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt();
            if oldest.is_none_or(|o| older(&key, &o)) {
                oldest = Some(key);
            }
            if newest.is_none_or(|n| older(&n, &key)) {
                newest = Some(key);
            }
        }
        let mut out = String::from("{\"record_count\":");
        out.push_str(&count.to_string());
        out.push_str(",\"categories\":");
        write_string_array(&mut out, categories.into_iter());
        for (name, end) in [("oldest", oldest), ("newest", newest)] {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            match end {
                Some((_, _, row)) => json::write_string(&mut out, &index.record(row).created_at),
                None => out.push_str("null"),
            }
        }
        out.push_str(",\"child_scopes\":");
        json::write_string_array(&mut out, children);
        out.push('}');
        bounded(out)
    }

    /// The immediate child scopes of `parent`, sorted.
    pub fn list_scopes(&mut self, parent: &str) -> Result<String, MemError> {
        let prefix = format!("{}/", rooted_prefix(parent));
        let mut children: BTreeSet<&str> = BTreeSet::new();
        for r in self.index.records() {
            if let Some(rest) = r.scope.strip_prefix(&prefix) {
                let first = rest.split('/').next().unwrap_or("");
                if !first.is_empty() {
                    children.insert(&r.scope[..prefix.len() + first.len()]);
                }
            }
        }
        let mut out = String::new();
        json::write_string_array(&mut out, children);
        bounded(out)
    }

    /// `{category: number of records having it}` under `scope_prefix`,
    /// keys sorted.
    pub fn list_categories(&mut self, scope_prefix: Option<&str>) -> Result<String, MemError> {
        let filter = Filter::scope(scope_prefix);
        let matcher = filter.matcher(&self.index);
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut seen: Vec<&str> = Vec::new();
        for (row, r) in self.index.records().iter().enumerate() {
            if !matcher.matches(row) {
                continue;
            }
            seen.clear();
            for c in &r.categories {
                if !seen.contains(&c.as_str()) {
                    seen.push(c);
                    *counts.entry(c).or_insert(0) += 1;
                }
            }
        }
        let mut out = String::from("{");
        for (i, (c, n)) in counts.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, c);
            out.push(':');
            out.push_str(&n.to_string());
        }
        out.push('}');
        bounded(out)
    }

    /// How many records lie under `scope_prefix` (all when absent or `/`).
    pub fn count(&mut self, scope_prefix: Option<&str>) -> Result<u64, MemError> {
        let filter = Filter::scope(scope_prefix);
        if filter.is_empty() {
            return Ok(self.index.len() as u64);
        }
        let matcher = filter.matcher(&self.index);
        Ok((0..self.index.len()).filter(|&row| matcher.matches(row)).count() as u64)
    }

    /// Deletes everything under `scope_prefix`; when it is absent (or empty
    /// or `/`), deletes every record and forgets the dimension.
    pub fn reset(&mut self, scope_prefix: Option<&str>) -> Result<(), MemError> {
        self.writable("reset")?;
        let filter = Filter::scope(scope_prefix);
        let forget_dim = filter.is_empty();
        self.delete_where(&filter, forget_dim).map(|_| ())
    }

    /// Sets `last_accessed` to `at` for the given ids (a JSON array of
    /// strings); returns how many distinct ids exist.
    pub fn touch(&mut self, ids: &str, at: &str) -> Result<u32, MemError> {
        self.writable("touch")?;
        let ids = match parse_json(ids, "ids")? {
            v @ Value::Array(_) => string_list(v, "ids").map_err(|_| invalid("ids must be a JSON array of strings"))?,
            _ => return Err(invalid("ids must be a JSON array of strings")),
        };
        let (tx, counter, index, fresh) = self.begin()?;
        let mut rows: Vec<usize> = ids.iter().filter_map(|id| index.row_of(id)).collect();
        rows.sort_unstable();
        rows.dedup();
        if rows.is_empty() {
            return Ok(0);
        }
        let mut scratch = String::new();
        for &row in &rows {
            let mut touched = index.record(row).clone();
            at.clone_into(&mut touched.last_accessed);
            let dim = index.embedding(row).map(<[f32]>::len);
            check_record_size(&mut scratch, &touched, dim, || format!("record {:?}", touched.id))?;
        }
        memory::ensure(
            rows.len()
                .saturating_mul(at.len() + 64)
                .saturating_add(memory::headroom(index.len())),
            "the new last_accessed values and room to read the store afterwards",
        )?;
        for &row in &rows {
            persist::touch(&tx, index.seq(row), at)?;
        }
        let changed = rows.iter().map(|&row| Some(index.record(row).id.as_str()));
        commit(tx, counter, changed, fresh)?;
        for &row in &rows {
            index.set_last_accessed(row, at);
        }
        Ok(u32::try_from(rows.len()).unwrap_or(u32::MAX))
    }

    /// The store's vector dimension, if one has been saved.
    pub fn dimension(&mut self) -> Option<u32> {
        self.index.dim().and_then(|d| u32::try_from(d).ok())
    }

    /// Brings the index up to date when another connection committed since
    /// (from the change log, else by reloading it); returns whether it did.
    pub fn refresh(&mut self) -> Result<bool, MemError> {
        let before = (self.loads, self.updates);
        self.sync()?;
        Ok((self.loads, self.updates) != before)
    }

    #[cfg(test)]
    pub(super) fn check(&self) {
        self.index.check();
    }
}
