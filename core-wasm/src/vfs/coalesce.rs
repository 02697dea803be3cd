//! Gathering a file's appended writes into one buffer, written out as one
//! call: the pure part of the journal VFS, over a [`Sink`] so it is tested
//! without SQLite.
//!
//! Only appends are held: the file's first write and each write that
//! starts where the previous one ended. Any other write (SQLite rewriting a
//! journal's header) sends the buffer out and then goes straight through,
//! so the file receives the same bytes in the same order as without the
//! buffer, and what the buffer holds at any moment is a run of appends
//! since the last write that was not one. The owner flushes before anything
//! that depends on the file's content or orders it (a read, a size, a sync,
//! a truncation, closing, and writes to the journal's database).

/// Where buffered bytes go: the wrapped file's write call.
pub trait Sink {
    /// Why a write failed (SQLite's result code in the VFS).
    type Error;
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), Self::Error>;
}

/// A run of appended bytes not yet written, and where it starts.
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    start: u64,
    /// Where the last write taken ended (none yet: the next is an append).
    next: Option<u64>,
    limit: usize,
}

impl Coalescer {
    /// A coalescer that never hands the sink more than `limit` bytes at once
    /// (SQLite's unix VFS writes at most `0x1ffff` bytes per call).
    pub fn new(limit: usize) -> Self {
        assert!(limit > 0, "a coalescer needs room for one byte");
        Coalescer {
            buf: Vec::new(),
            start: 0,
            next: None,
            limit,
        }
    }

    /// Takes `data` for `offset`. An append joins the buffer, which is
    /// written out whenever it holds `limit` bytes; any other write sends
    /// the buffer out, then itself. An error is that of writing out earlier
    /// bytes (this write is then dropped, like a failed write) or of this
    /// write's own.
    pub fn write<S: Sink>(&mut self, sink: &mut S, mut data: &[u8], mut offset: u64) -> Result<(), S::Error> {
        let appends = self.next.is_none_or(|next| next == offset);
        self.next = Some(offset + data.len() as u64);
        if !appends {
            self.flush(sink)?;
            for chunk in data.chunks(self.limit) {
                sink.write_at(chunk, offset)?;
                offset += chunk.len() as u64;
            }
            return Ok(());
        }
        while !data.is_empty() {
            if self.buf.is_empty() {
                self.start = offset;
            }
            let take = data.len().min(self.limit - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            offset += take as u64;
            if self.buf.len() == self.limit {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Writes out the waiting bytes. They are gone afterwards even when the
    /// write failed: SQLite then treats the file as failed, and retrying the
    /// write later would only reorder it.
    pub fn flush<S: Sink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let outcome = sink.write_at(&self.buf, self.start);
        self.start += self.buf.len() as u64;
        self.buf.clear();
        outcome
    }

    /// Whether bytes are waiting.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in memory that records every write it receives.
    #[derive(Default)]
    struct MemFile {
        bytes: Vec<u8>,
        writes: Vec<(u64, usize)>,
        fail_next: bool,
    }

    impl Sink for MemFile {
        type Error = &'static str;
        fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), &'static str> {
            if std::mem::take(&mut self.fail_next) {
                return Err("disk full");
            }
            self.writes.push((offset, data.len()));
            let end = offset as usize + data.len();
            if self.bytes.len() < end {
                self.bytes.resize(end, 0);
            }
            self.bytes[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
    }

    /// The writes of one small rollback-journal transaction: the header,
    /// then per page its number, its content and a checksum, then the
    /// header's record count rewritten after the first sync.
    fn journal_writes(pages: usize, page_size: usize) -> Vec<(u64, Vec<u8>)> {
        let mut writes = vec![(0, vec![0xA5; 512])];
        let mut at = 512u64;
        for page in 0..pages {
            writes.push((at, (page as u32 + 1).to_be_bytes().to_vec()));
            writes.push((at + 4, vec![page as u8; page_size]));
            writes.push((at + 4 + page_size as u64, vec![0xC0, 0xFF, 0xEE, page as u8]));
            at += 8 + page_size as u64;
        }
        writes
    }

    #[test]
    fn a_journal_transaction_reaches_the_file_in_one_write_with_the_same_bytes() {
        let mut writes = journal_writes(3, 4096);
        let mut direct = MemFile::default();
        for (offset, data) in &writes {
            direct.write_at(data, *offset).unwrap();
        }
        let mut file = MemFile::default();
        let mut c = Coalescer::new(0x1ffff);
        for (offset, data) in &writes {
            c.write(&mut file, data, *offset).unwrap();
        }
        assert!(file.writes.is_empty(), "nothing is written before a flush");
        c.flush(&mut file).unwrap();
        assert_eq!(file.writes, vec![(0, 512 + 3 * (4096 + 8))]);
        assert_eq!(file.bytes, direct.bytes);
        assert!(c.is_empty());
        // After the sync: the record count in the header goes straight out.
        writes.push((0, vec![1; 12]));
        direct.write_at(&writes[10].1, 0).unwrap();
        c.write(&mut file, &writes[10].1, 0).unwrap();
        assert_eq!(file.writes.len(), 2);
        assert_eq!(file.bytes, direct.bytes);
        assert!(c.is_empty());
    }

    #[test]
    fn no_write_exceeds_the_limit_and_large_records_split_across_writes() {
        let writes = journal_writes(9, 32768);
        let mut direct = MemFile::default();
        let mut file = MemFile::default();
        let mut c = Coalescer::new(0x1ffff);
        for (offset, data) in &writes {
            direct.write_at(data, *offset).unwrap();
            c.write(&mut file, data, *offset).unwrap();
        }
        c.flush(&mut file).unwrap();
        assert_eq!(file.bytes, direct.bytes);
        assert!(file.writes.iter().all(|&(_, len)| len <= 0x1ffff), "{:?}", file.writes);
        let total: usize = 512 + 9 * (32768 + 8);
        assert_eq!(file.writes.len(), total.div_ceil(0x1ffff));
        // Each write continues the previous one.
        for pair in file.writes.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1 as u64, pair[1].0);
        }
    }

    #[test]
    fn a_write_elsewhere_sends_the_buffer_first_so_the_order_is_kept() {
        let mut file = MemFile::default();
        let mut c = Coalescer::new(1024);
        c.write(&mut file, b"abcd", 0).unwrap();
        c.write(&mut file, b"efgh", 4).unwrap();
        // Rewrites bytes already buffered: must land after them, and is not
        // held (SQLite may rewrite a journal's header as its last write).
        c.write(&mut file, b"XY", 2).unwrap();
        assert_eq!(file.writes, vec![(0, 8), (2, 2)]);
        assert!(c.is_empty());
        // Appends to that write are held again.
        c.write(&mut file, b"zz", 4).unwrap();
        assert_eq!(file.writes.len(), 2);
        // A gap: the file's hole stays zero, as with direct writes.
        c.write(&mut file, b"q", 12).unwrap();
        assert_eq!(file.writes, vec![(0, 8), (2, 2), (4, 2), (12, 1)]);
        c.write(&mut file, b"r", 13).unwrap();
        c.flush(&mut file).unwrap();
        assert_eq!(file.writes, vec![(0, 8), (2, 2), (4, 2), (12, 1), (13, 1)]);
        assert_eq!(file.bytes, b"abXYzzgh\0\0\0\0qr");
    }

    #[test]
    fn random_writes_and_flushes_leave_the_file_as_direct_writes_do() {
        // A small deterministic generator: no dependency for a test.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for limit in [1, 7, 64, 0x1ffff] {
            let mut direct = MemFile::default();
            let mut file = MemFile::default();
            let mut c = Coalescer::new(limit);
            let mut end = 0u64;
            for step in 0..2000 {
                match next(10) {
                    0 => {
                        c.flush(&mut file).unwrap();
                        assert_eq!(file.bytes, direct.bytes, "limit {limit}, step {step}");
                    }
                    kind => {
                        // Mostly appends, sometimes rewrites or gaps.
                        let offset = if kind < 7 { end } else { next(end + 50) };
                        let len = 1 + next(200) as usize;
                        let data: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
                        direct.write_at(&data, offset).unwrap();
                        c.write(&mut file, &data, offset).unwrap();
                        end = end.max(offset + len as u64);
                    }
                }
                assert!(file.writes.iter().all(|&(_, len)| len <= limit));
            }
            c.flush(&mut file).unwrap();
            assert_eq!(file.bytes, direct.bytes, "limit {limit}");
        }
    }

    #[test]
    fn a_failed_flush_reports_the_error_and_drops_the_bytes() {
        let mut file = MemFile::default();
        let mut c = Coalescer::new(1024);
        c.write(&mut file, b"abcd", 0).unwrap();
        file.fail_next = true;
        assert_eq!(c.flush(&mut file), Err("disk full"));
        assert!(c.is_empty());
        c.flush(&mut file).unwrap();
        assert!(file.writes.is_empty());
        // The error of sending earlier bytes comes back from the write that
        // made them go, which is not made.
        c.write(&mut file, b"efgh", 4).unwrap();
        file.fail_next = true;
        assert_eq!(c.write(&mut file, b"zz", 100), Err("disk full"));
        assert!(c.is_empty());
        assert!(file.writes.is_empty());
        // A write going straight through reports its own failure.
        file.fail_next = true;
        assert_eq!(c.write(&mut file, b"zz", 0), Err("disk full"));
    }
}
