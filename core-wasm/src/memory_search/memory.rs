//! Running out of the core's memory without trapping.
//!
//! The core's linear memory is capped (the host's
//! `FAST_CREWAI_MEMORY_LIMIT_MB`, at most 4 GiB), and Rust aborts, a trap,
//! when an allocation fails. So a call that grows the store first makes sure
//! that the memory its growth may take is there, with headroom for the reads
//! that follow, by allocating that much once and freeing it (wasi-libc's
//! allocator keeps freed memory for the next allocations, and wasm memory
//! never shrinks). When it is not there the call fails with `capacity`
//! before it changes anything, so a store never grows past what it can still
//! be read with. Loading a store probes the same way as it goes, so a store
//! that does not fit fails to open with `capacity` instead of trapping.
//!
//! The estimates are deliberately generous: they only ever bound what one
//! batch adds (or what a chunk of a load adds), never the whole store.

use super::codec::value_bound;
use super::index::Record;
use super::MemError;

/// Headroom kept free after every write, whatever the store's size: SQLite's
/// page cache (16 MiB) and the transient allocations of a call.
const HEADROOM_BYTES: usize = 24 << 20;
/// And per record: the per-row scratch of the widest read (BM25 scores and
/// hits, the int8 scan's candidates, the heaps), and the doubling of a
/// long posting list on the next save.
const HEADROOM_PER_ROW: usize = 64;
/// A load probes for this much at a time.
const LOAD_CHUNK_BYTES: usize = 8 << 20;

fn capacity(needed: usize, what: &str) -> MemError {
    MemError::Capacity(format!(
        "not enough memory in the core for {what} ({needed} bytes could not be had under the \
         core's memory limit); nothing was changed"
    ))
}

/// Fails with `capacity` unless `bytes` can be allocated now.
pub fn ensure(bytes: usize, what: &str) -> Result<(), MemError> {
    let mut probe: Vec<u8> = Vec::new();
    let got = probe.try_reserve_exact(bytes);
    // The allocation must really happen: an unused allocation may otherwise
    // be optimised away, and its success assumed.
    std::hint::black_box(probe.as_ptr());
    got.map_err(|_| capacity(bytes, what))
}

/// What must stay free once a store holds `rows` records.
pub fn headroom(rows: usize) -> usize {
    rows.saturating_mul(HEADROOM_PER_ROW).saturating_add(HEADROOM_BYTES)
}

/// A generous estimate of what a record takes in the index beyond its
/// vector (reserved separately): its strings, the parsed metadata, the id
/// map's copy of the id, and the BM25 postings of its content (at most one
/// token per two bytes), given the byte lengths of its content and of its
/// other text.
pub fn growth(content: usize, other_text: usize) -> usize {
    content
        .saturating_mul(14)
        .saturating_add(other_text.saturating_mul(16))
        .saturating_add(512)
}

/// [`growth`] of a record about to be saved.
pub fn record_growth(r: &Record) -> usize {
    let other = [&r.id, &r.scope, &r.created_at, &r.last_accessed]
        .into_iter()
        .chain(&r.categories)
        .chain(&r.source)
        .fold(value_bound(&r.metadata), |n, s| n.saturating_add(s.len() + 3));
    growth(r.content.len(), other)
}

/// Probes as a load goes: call [`Loading::add`] before building each record.
#[derive(Default)]
pub struct Loading {
    /// What the last probe covers and was not yet spent.
    covered: usize,
}

impl Loading {
    pub fn add(&mut self, bytes: usize) -> Result<(), MemError> {
        if bytes > self.covered {
            let chunk = bytes.max(LOAD_CHUNK_BYTES);
            ensure(chunk, "loading the store")?;
            self.covered = chunk;
        }
        self.covered -= bytes;
        Ok(())
    }
}
