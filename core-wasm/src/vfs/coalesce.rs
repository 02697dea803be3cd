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
//!
//! Bytes that cannot be written out (a full disk) stay in the buffer: SQLite
//! was told they were written. Every later flush tries them again, so
//! nothing that needs them in the file (a read or size of it, a sync,
//! another write, the database's writes) happens while they are missing:
//! SQLite then cannot read the journal back, gives up on the transaction
//! and discards its page cache (its error state) instead of rolling back
//! from a journal that lacks pages, and the database file is never written
//! after a journal that lacks the pages it replaces.

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
    /// bytes (this write is then not made, like a failed write) or of this
    /// write's own; bytes of this write may then wait in the buffer, which
    /// is harmless: SQLite writes that offset again or never reads it.
    pub fn write<S: Sink>(&mut self, sink: &mut S, mut data: &[u8], mut offset: u64) -> Result<(), S::Error> {
        if self.next.is_some_and(|next| next != offset) {
            self.flush(sink)?;
            self.next = Some(offset + data.len() as u64);
            for chunk in data.chunks(self.limit) {
                sink.write_at(chunk, offset)?;
                offset += chunk.len() as u64;
            }
            return Ok(());
        }
        while !data.is_empty() {
            // A full buffer is one that could not be written out: again first.
            if self.buf.len() == self.limit {
                self.flush(sink)?;
            }
            if self.buf.is_empty() {
                self.start = offset;
            }
            let take = data.len().min(self.limit - self.buf.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            offset += take as u64;
            // Kept as the buffer's end, so that the buffer only ever holds
            // one run of bytes.
            self.next = Some(offset);
            if self.buf.len() == self.limit {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Writes out the waiting bytes. When that fails they stay, to be tried
    /// again by the next flush (writing the same bytes at the same place, so
    /// nothing is reordered): the file must not go on without them.
    pub fn flush<S: Sink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        sink.write_at(&self.buf, self.start)?;
        self.start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
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
        /// While set, every write fails.
        full: bool,
    }

    impl Sink for MemFile {
        type Error = &'static str;
        fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), &'static str> {
            if self.full {
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
    fn bytes_that_cannot_be_written_wait_and_go_out_first_once_there_is_room() {
        let mut file = MemFile::default();
        let mut c = Coalescer::new(1024);
        c.write(&mut file, b"abcd", 0).unwrap();
        c.write(&mut file, b"efgh", 4).unwrap();
        file.full = true;
        assert_eq!(c.flush(&mut file), Err("disk full"));
        // SQLite was told they were written: nothing that must follow them
        // goes out without them.
        assert_eq!(c.write(&mut file, b"XY", 0), Err("disk full"));
        assert_eq!(c.flush(&mut file), Err("disk full"));
        assert!(file.writes.is_empty());
        // Room again: they go out first, then what follows them.
        file.full = false;
        c.write(&mut file, b"XY", 0).unwrap();
        assert_eq!(file.writes, vec![(0, 8), (0, 2)]);
        assert_eq!(file.bytes, b"XYcdefgh");
        assert!(c.is_empty());
    }

    #[test]
    fn a_full_buffer_that_cannot_be_written_takes_no_more_and_stays_one_run() {
        let mut file = MemFile::default();
        let mut c = Coalescer::new(8);
        c.write(&mut file, b"abcdef", 0).unwrap();
        file.full = true;
        // Two bytes of this write fill the buffer, which cannot go out: the
        // write fails (SQLite writes it again, at the same offset, later).
        assert_eq!(c.write(&mut file, b"ghij", 6), Err("disk full"));
        assert_eq!(c.write(&mut file, b"ghij", 6), Err("disk full"));
        // An append to the full buffer tries it first, and fails too.
        assert_eq!(c.write(&mut file, b"kl", 8), Err("disk full"));
        assert!(file.writes.is_empty());
        file.full = false;
        c.write(&mut file, b"ghij", 6).unwrap();
        c.flush(&mut file).unwrap();
        assert_eq!(file.writes, vec![(0, 8), (6, 4)]);
        assert_eq!(file.bytes, b"abcdefghij");
        // A write going straight through reports its own failure.
        file.full = true;
        assert_eq!(c.write(&mut file, b"zz", 0), Err("disk full"));
        assert!(c.is_empty());
    }
}
