//! The in-memory index: records, their vectors in one contiguous row-major
//! buffer, norms, insertion sequence numbers, an id map and the BM25 index.
//! Rows are removed by swap-remove, so a row number is not stable; the
//! sequence number (SQLite's rowid) is, and orders records by insertion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::bm25::TextIndex;
use super::constants::constants;
use super::kernel;
use super::MemError;
use crate::json::Value;

/// One memory record, with its JSON fields parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub content: String,
    pub scope: String,
    pub categories: Vec<String>,
    /// Always an object.
    pub metadata: Value,
    pub importance: f64,
    pub created_at: String,
    pub created_ts: f64,
    pub last_accessed: String,
    pub source: Option<String>,
    pub private: bool,
    /// Whether the record was saved with an embedding (otherwise its row
    /// holds zeros, as LanceDB stores it).
    pub has_embedding: bool,
}

/// Interned scope strings, reference-counted: rows refer to their scope by
/// id, so a scope-prefix filter is decided once per distinct scope and the
/// scan only reads a `u32` per row.
#[derive(Default)]
struct Scopes {
    /// By id; a freed id holds an empty string.
    names: Vec<String>,
    refs: Vec<u32>,
    ids: HashMap<String, u32>,
    free: Vec<u32>,
}

impl Scopes {
    fn acquire(&mut self, scope: &str) -> u32 {
        if let Some(&id) = self.ids.get(scope) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = scope.to_owned();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.names.push(scope.to_owned());
                self.refs.push(1);
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(scope.to_owned(), id);
        id
    }

    fn release(&mut self, id: u32) {
        let refs = &mut self.refs[id as usize];
        *refs -= 1;
        if *refs == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
        }
    }
}

#[derive(Default)]
pub struct Index {
    dim: Option<usize>,
    /// `len() * dim` floats, row-major (empty while `dim` is unknown).
    vectors: Vec<f32>,
    /// Euclidean norm of each row's vector.
    norms: Vec<f64>,
    /// `len() * dim` int8 values: each row quantised with its own scale
    /// (see [`kernel::quantize`]), scanned first to bound the distances.
    qvectors: Vec<i8>,
    /// Each row's quantisation parameters.
    qcodes: Vec<kernel::Quantized>,
    /// Insertion sequence number of each row.
    seqs: Vec<i64>,
    /// Each row's version (see [`Index::version`]).
    versions: Vec<u64>,
    /// Each row's scope id and `created_ts`, next to each other in memory
    /// for the filters evaluated during the scan.
    scope_of: Vec<u32>,
    created_ts: Vec<f64>,
    scopes: Scopes,
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
    text: TextIndex,
    /// How many rows hold a vector with a NaN or infinite element (only a
    /// file written by another tool has them; saves refuse them). Their
    /// norm is not finite, which is how the scans recognise and skip them.
    unusable: usize,
}

/// The next record version of this instance (see [`Index::version`]): a
/// counter shared by every store and every load, so a version is never given
/// twice, even across reloads.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

fn capacity_error(what: &str) -> MemError {
    MemError::Capacity(format!("not enough memory in the core for {what}; the store is full"))
}

/// Makes room for `needed` elements in `v`, growing by half again at most,
/// without aborting on failure.
fn reserve_total<T>(v: &mut Vec<T>, needed: usize, what: &str) -> Result<(), MemError> {
    if needed <= v.capacity() {
        return Ok(());
    }
    let target = needed.max(v.capacity().saturating_add(v.capacity() / 2));
    if v.try_reserve_exact(target - v.len()).is_ok() {
        return Ok(());
    }
    v.try_reserve_exact(needed - v.len()).map_err(|_| capacity_error(what))
}

impl Index {
    pub fn new(dim: Option<usize>) -> Index {
        Index {
            dim,
            ..Index::default()
        }
    }

    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn record(&self, row: usize) -> &Record {
        &self.records[row]
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn seq(&self, row: usize) -> i64 {
        self.seqs[row]
    }

    /// The version of `row`'s record: a number no other record state has
    /// had in this instance of the core, so that the host may keep a record
    /// it built and know, from the version alone, whether it is still the
    /// record the store holds. Every write of the record (saving, touching,
    /// loading it again) gives it a new one.
    pub fn version(&self, row: usize) -> u64 {
        self.versions[row]
    }

    pub fn norm(&self, row: usize) -> f64 {
        self.norms[row]
    }

    /// The interned scopes, indexed by [`Index::scope_id`] (unused ids hold
    /// an empty string).
    pub fn scope_names(&self) -> &[String] {
        &self.scopes.names
    }

    pub fn scope_id(&self, row: usize) -> usize {
        self.scope_of[row] as usize
    }

    pub fn created_ts(&self, row: usize) -> f64 {
        self.created_ts[row]
    }

    /// The vector of `row` (empty while the dimension is unknown).
    pub fn vector(&self, row: usize) -> &[f32] {
        match self.dim {
            Some(d) => &self.vectors[row * d..(row + 1) * d],
            None => &[],
        }
    }

    /// The stored embedding of `row`, `None` when it was saved without one.
    pub fn embedding(&self, row: usize) -> Option<&[f32]> {
        self.records[row].has_embedding.then(|| self.vector(row))
    }

    pub fn text(&self) -> &TextIndex {
        &self.text
    }

    /// Whether some row's vector is unusable (see [`Index::norm`]: it is
    /// then not finite); vector search skips such rows.
    pub fn has_unusable(&self) -> bool {
        self.unusable > 0
    }

    /// Reserves room for `rows` records in total with vectors of `dim`
    /// (the store's dimension once the write lands), so that the following
    /// pushes cannot fail. Errors with `capacity` beyond the store's limit or
    /// when memory cannot be had.
    pub fn reserve(&mut self, rows: usize, dim: Option<usize>) -> Result<(), MemError> {
        if let Some(d) = dim {
            // Under 4 GiB: the core's 32-bit linear memory also holds the
            // records, the text index and SQLite.
            let c = constants();
            let bytes = (rows as u64)
                .saturating_mul(d as u64)
                .saturating_mul(c.bytes_per_element);
            if bytes > c.max_vector_bytes {
                return Err(MemError::Capacity(format!(
                    "{rows} vectors of dimension {d} need {bytes} bytes, over the store's \
                     limit of {}",
                    c.max_vector_bytes
                )));
            }
            let floats = usize::try_from(rows as u64 * d as u64).map_err(|_| capacity_error("the vectors"))?;
            reserve_total(&mut self.vectors, floats, "the vectors")?;
            reserve_total(&mut self.qvectors, floats, "the quantised vectors")?;
        }
        reserve_total(&mut self.norms, rows, "the vector norms")?;
        reserve_total(&mut self.qcodes, rows, "the quantisation codes")?;
        reserve_total(&mut self.seqs, rows, "the records")?;
        reserve_total(&mut self.versions, rows, "the records")?;
        reserve_total(&mut self.scope_of, rows, "the records")?;
        reserve_total(&mut self.created_ts, rows, "the records")?;
        reserve_total(&mut self.records, rows, "the records")?;
        let more = rows.saturating_sub(self.by_id.len());
        self.by_id.try_reserve(more).map_err(|_| capacity_error("the id map"))
    }

    /// Fixes the dimension of a store that had none: existing rows get zero
    /// vectors. Call [`Index::reserve`] first.
    pub fn set_dim(&mut self, dim: usize) {
        debug_assert!(self.dim.is_none());
        self.dim = Some(dim);
        self.vectors.clear();
        self.vectors.resize(self.len() * dim, 0.0);
        self.qvectors.clear();
        self.qvectors.resize(self.len() * dim, 0);
        self.qcodes.fill(kernel::Quantized::default());
    }

    /// The int8 copy of `row` (empty while the dimension is unknown).
    pub fn qvector(&self, row: usize) -> &[i8] {
        match self.dim {
            Some(d) => &self.qvectors[row * d..(row + 1) * d],
            None => &[],
        }
    }

    /// The quantisation parameters of `row`'s int8 copy.
    pub fn qcode(&self, row: usize) -> &kernel::Quantized {
        &self.qcodes[row]
    }

    /// Quantises `embedding` into the int8 row `row` (which must exist, its
    /// norm set); an unusable vector gets the zero code, as no vector does.
    fn quantize_row(&mut self, row: usize, embedding: Option<&[f32]>) {
        let embedding = embedding.filter(|_| self.norms[row].is_finite());
        self.qcodes[row] = match (self.dim, embedding) {
            (Some(d), Some(e)) => kernel::quantize(e, &mut self.qvectors[row * d..(row + 1) * d]),
            (Some(d), None) => {
                self.qvectors[row * d..(row + 1) * d].fill(0);
                kernel::Quantized::default()
            }
            (None, _) => kernel::Quantized::default(),
        };
    }

    /// Inserts `record`, or replaces the record with its id in place, with
    /// the given embedding (already checked against the dimension) and
    /// sequence number. Call [`Index::reserve`] first.
    pub fn upsert(&mut self, record: Record, embedding: Option<&[f32]>, seq: i64) {
        let norm = embedding.map_or(0.0, kernel::norm);
        self.unusable += usize::from(!norm.is_finite());
        if let Some(&row) = self.by_id.get(&record.id) {
            self.unusable -= usize::from(!self.norms[row].is_finite());
            if let Some(d) = self.dim {
                let dst = &mut self.vectors[row * d..(row + 1) * d];
                match embedding {
                    Some(e) => dst.copy_from_slice(e),
                    None => dst.fill(0.0),
                }
            }
            self.norms[row] = norm;
            self.quantize_row(row, embedding);
            self.seqs[row] = seq;
            self.versions[row] = next_version();
            self.scopes.release(self.scope_of[row]);
            self.scope_of[row] = self.scopes.acquire(&record.scope);
            self.created_ts[row] = record.created_ts;
            self.text.replace(row, &record.content);
            self.records[row] = record;
        } else {
            if let Some(d) = self.dim {
                match embedding {
                    Some(e) => self.vectors.extend_from_slice(e),
                    None => self.vectors.resize(self.vectors.len() + d, 0.0),
                }
            }
            self.norms.push(norm);
            if let Some(d) = self.dim {
                self.qvectors.resize(self.qvectors.len() + d, 0);
            }
            self.qcodes.push(kernel::Quantized::default());
            self.quantize_row(self.records.len(), embedding);
            self.seqs.push(seq);
            self.versions.push(next_version());
            self.scope_of.push(self.scopes.acquire(&record.scope));
            self.created_ts.push(record.created_ts);
            self.text.push(&record.content);
            self.by_id.insert(record.id.clone(), self.records.len());
            self.records.push(record);
        }
    }

    /// Sets `last_accessed` of `row`.
    pub fn set_last_accessed(&mut self, row: usize, at: &str) {
        at.clone_into(&mut self.records[row].last_accessed);
        self.versions[row] = next_version();
    }

    /// Removes the given rows (any order, no duplicates).
    pub fn remove_rows(&mut self, mut rows: Vec<usize>) {
        // Highest first: the row swapped into a hole is then never one still
        // to be removed.
        rows.sort_unstable_by(|a, b| b.cmp(a));
        for row in rows {
            self.swap_remove(row);
        }
    }

    fn swap_remove(&mut self, row: usize) {
        let last = self.len() - 1;
        self.unusable -= usize::from(!self.norms[row].is_finite());
        if let Some(d) = self.dim {
            if row != last {
                self.vectors.copy_within(last * d..(last + 1) * d, row * d);
            }
            self.vectors.truncate(last * d);
            if row != last {
                self.qvectors.copy_within(last * d..(last + 1) * d, row * d);
            }
            self.qvectors.truncate(last * d);
        }
        self.norms.swap_remove(row);
        self.qcodes.swap_remove(row);
        self.seqs.swap_remove(row);
        self.versions.swap_remove(row);
        self.scopes.release(self.scope_of.swap_remove(row));
        self.created_ts.swap_remove(row);
        self.text.swap_remove(row);
        let removed = self.records.swap_remove(row);
        self.by_id.remove(&removed.id);
        if row != last {
            let moved = &self.records[row].id;
            if let Some(slot) = self.by_id.get_mut(moved) {
                *slot = row;
            }
        }
    }

    /// Drops every record; keeps the dimension unless `forget_dim`.
    pub fn clear(&mut self, forget_dim: bool) {
        let dim = if forget_dim { None } else { self.dim };
        *self = Index::new(dim);
    }

    #[cfg(test)]
    pub fn check(&self) {
        let n = self.len();
        assert_eq!(self.norms.len(), n);
        assert_eq!(self.seqs.len(), n);
        assert_eq!(self.versions.len(), n);
        assert_eq!(self.by_id.len(), n);
        assert_eq!(self.text.len(), n);
        assert_eq!(self.vectors.len(), n * self.dim.unwrap_or(0));
        assert_eq!(self.qvectors.len(), n * self.dim.unwrap_or(0));
        assert_eq!(self.qcodes.len(), n);
        assert_eq!(self.unusable, self.norms.iter().filter(|x| !x.is_finite()).count());
        for row in 0..n {
            let mut q = vec![0i8; self.dim.unwrap_or(0)];
            let want = match self.embedding(row).filter(|_| self.norms[row].is_finite()) {
                Some(e) => kernel::quantize(e, &mut q),
                None => kernel::Quantized::default(),
            };
            assert_eq!(q, self.qvector(row));
            assert_eq!(*self.qcode(row), want);
        }
        assert_eq!(self.scope_of.len(), n);
        assert_eq!(self.created_ts.len(), n);
        let mut refs = vec![0u32; self.scopes.names.len()];
        for (row, rec) in self.records.iter().enumerate() {
            assert_eq!(self.by_id[&rec.id], row);
            assert_eq!(self.scopes.names[self.scope_of[row] as usize], rec.scope);
            assert_eq!(self.created_ts[row].to_bits(), rec.created_ts.to_bits());
            refs[self.scope_of[row] as usize] += 1;
        }
        assert_eq!(refs, self.scopes.refs);
        assert_eq!(self.scopes.ids.len() + self.scopes.free.len(), self.scopes.names.len());
        self.text.check();
    }
}
