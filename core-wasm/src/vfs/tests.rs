//! The VFS under real SQLite transactions: what reaches the files (and
//! when) against what SQLite wrote, databases against ones written without
//! it, and transactions cut short rolled back from their journals.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rusqlite::{Connection, OpenFlags};

use super::{register, register_as, Options, Wrapped, BASE, MAX_WRITE, NAME};

/// A call a test VFS received.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Open(String),
    Write(i64, Vec<u8>),
    Truncate(i64),
    Sync,
    Close,
}

/// The calls a test VFS received, with the address of the file each was
/// made on (files of all tests, told apart by their paths).
#[derive(Default)]
pub(super) struct Log(Mutex<Vec<(usize, Event)>>);

pub(super) fn record(file: &Wrapped, event: impl FnOnce() -> Event) {
    if let Some(log) = file.options().log {
        log.0.lock().unwrap().push((file as *const Wrapped as usize, event()));
    }
}

/// What SQLite asked for (`GATHER`, the VFS under test, receives it) and
/// what reached the files below (`DIRECT`, a write-through instance of the
/// same VFS wrapped by `GATHER`, receives it).
const GATHER: &CStr = c"fcw-test-gather";
const DIRECT: &CStr = c"fcw-test-direct";

fn logs() -> &'static (Log, Log) {
    static LOGS: OnceLock<&'static (Log, Log)> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static (Log, Log) = Box::leak(Box::default());
        // SAFETY: static names; DIRECT wraps the real VFS, GATHER wraps DIRECT.
        unsafe {
            let direct = Options {
                write_through: true,
                log: Some(&logs.1),
                room: None,
            };
            assert_eq!(register_as(DIRECT, BASE, direct), rusqlite::ffi::SQLITE_OK);
            let gather = Options {
                write_through: false,
                log: Some(&logs.0),
                room: None,
            };
            assert_eq!(register_as(GATHER, DIRECT, gather), rusqlite::ffi::SQLITE_OK);
        }
        logs
    })
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fcw-vfs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(path: &Path, vfs: &str) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags_and_vfs(path, flags, vfs).unwrap()
}

/// One file's history replayed: its content at each sync, and the writes
/// that reached it.
#[derive(Debug, Default, PartialEq)]
struct Replay {
    /// (file name, content) at every sync, in order, across files.
    syncs: Vec<(String, Vec<u8>)>,
    /// (file name, length) of every write.
    writes: Vec<(String, usize)>,
}

/// Replays the calls made on files under `dir` (all new when the log
/// starts) on files in memory.
fn replay(log: &Log, dir: &Path) -> Replay {
    replay_from(log, dir, 0)
}

/// The same from the `start`th call on (files opened before are left out).
fn replay_from(log: &Log, dir: &Path, start: usize) -> Replay {
    let dir = dir.to_string_lossy();
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Replay::default();
    for (file, event) in log.0.lock().unwrap().iter().skip(start) {
        if let Event::Open(path) = event {
            if path.starts_with(&*dir) {
                names.insert(*file, path[dir.len()..].to_string());
            } else {
                names.remove(file);
            }
            continue;
        }
        let Some(name) = names.get(file) else { continue };
        let content = files.entry(name.clone()).or_default();
        match event {
            Event::Write(offset, data) => {
                let (start, end) = (*offset as usize, *offset as usize + data.len());
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(data);
                out.writes.push((name.clone(), data.len()));
            }
            Event::Truncate(size) => content.truncate(*size as usize),
            Event::Sync => out.syncs.push((name.clone(), content.clone())),
            // A deleted journal starts again empty when re-created.
            Event::Close if name.ends_with("-journal") => {
                files.remove(name);
            }
            Event::Open(_) | Event::Close => {}
        }
    }
    out
}

/// Transactions that journal pages: inserts, updates and deletes, some
/// large enough to spill the page cache mid-transaction, a savepoint rolled
/// back and a transaction rolled back (both read the journal back).
fn workload(conn: &Connection, page_size: u32) {
    conn.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA cache_size=4;
         CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB);"
    ))
    .unwrap();
    let blob = |i: i64, n: usize| -> Vec<u8> { (0..n).map(|k| (i as usize * 31 + k * 7) as u8).collect() };
    for round in 0..4i64 {
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..40 {
            let id = round * 40 + i;
            tx.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                (id, blob(id, 700 + (id as usize % 5) * 300)),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    // One-row transactions, as task outputs and memory saves make.
    for id in 0..5i64 {
        conn.execute("UPDATE t SET body = ?2 WHERE id = ?1", (id * 7, blob(-id, 900)))
            .unwrap();
    }
    conn.execute_batch(
        "BEGIN; UPDATE t SET body = zeroblob(1500) WHERE id % 3 = 0;
         SAVEPOINT s; DELETE FROM t WHERE id > 100; ROLLBACK TO s; RELEASE s;
         DELETE FROM t WHERE id % 4 = 1; COMMIT;",
    )
    .unwrap();
    conn.execute_batch("BEGIN; DELETE FROM t; UPDATE t SET body = NULL; ROLLBACK;")
        .unwrap();
}

fn summary(conn: &Connection) -> (i64, i64) {
    conn.query_row("SELECT count(*), total(length(body)) FROM t", [], |r| {
        Ok((r.get(0)?, r.get::<_, f64>(1)? as i64))
    })
    .unwrap()
}

fn all_rows(conn: &Connection) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut stmt = conn.prepare("SELECT id, body FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_sync_finds_the_journal_sqlite_wrote_in_fewer_writes() {
    let (asked, reached) = logs();
    for page_size in [4096, 32768] {
        let dir = temp_dir(&format!("sync-{page_size}"));
        let conn = open(&dir.join("t.db"), GATHER.to_str().unwrap());
        workload(&conn, page_size);
        let expected = summary(&conn);
        drop(conn);
        let (asked, reached) = (replay(asked, &dir), replay(reached, &dir));
        // Same files with the same bytes at every sync, in the same order.
        assert!(asked.syncs.len() > 10, "{}", asked.syncs.len());
        assert_eq!(asked.syncs.len(), reached.syncs.len());
        for (i, (a, r)) in asked.syncs.iter().zip(&reached.syncs).enumerate() {
            assert_eq!(a.0, r.0, "sync {i}");
            assert!(
                a.1 == r.1,
                "page size {page_size}, sync {i} of {}: the contents differ",
                a.0
            );
        }
        let journal_writes = |r: &Replay| r.writes.iter().filter(|w| w.0.ends_with("-journal")).count();
        let database_writes = |r: &Replay| r.writes.iter().filter(|w| w.0.ends_with(".db")).count();
        eprintln!(
            "page size {page_size}: {} -> {}",
            journal_writes(&asked),
            journal_writes(&reached)
        );
        // Transactions spilling the cache sync and restart the journal often.
        assert!(
            journal_writes(&reached) * 5 < journal_writes(&asked) * 3,
            "{} journal writes became {}",
            journal_writes(&asked),
            journal_writes(&reached)
        );
        assert_eq!(database_writes(&asked), database_writes(&reached));
        assert!(reached.writes.iter().all(|w| w.1 <= MAX_WRITE));
        if page_size == 32768 {
            assert!(reached.writes.iter().any(|w| w.1 == MAX_WRITE), "a buffer filled up");
        }
        // The database on disk is the one replayed, and reads back.
        let replayed = reached.syncs.iter().rev().find(|s| s.0 == "/t.db").unwrap();
        assert!(std::fs::read(dir.join("t.db")).unwrap() == replayed.1);
        assert!(!dir.join("t.db-journal").exists());
        assert_eq!(summary(&open(&dir.join("t.db"), "unix")), expected);
    }
}

#[test]
fn a_one_row_transaction_writes_its_journal_in_one_call_before_the_first_sync() {
    let (asked, reached) = logs();
    let dir = temp_dir("one-row");
    let conn = open(&dir.join("t.db"), GATHER.to_str().unwrap());
    workload(&conn, 4096);
    // A cache the transactions fit in: no spill, one journal sync.
    conn.execute_batch("PRAGMA cache_size=100").unwrap();
    for rows in [1usize, 2, 3] {
        let (a, r) = (asked.0.lock().unwrap().len(), reached.0.lock().unwrap().len());
        // Rows on three leaves, changed (SQLite leaves a page alone when a
        // row is rewritten with the same bytes).
        let last = [2, 70, 140][rows - 1];
        conn.execute(
            "UPDATE t SET body = zeroblob(1000 + ?1) WHERE id IN (2, 70, 140) AND id <= ?2",
            [rows as i64, last],
        )
        .unwrap();
        let journal = |r: Replay| -> Vec<usize> {
            r.writes
                .into_iter()
                .filter(|w| w.0.ends_with("-journal"))
                .map(|w| w.1)
                .collect()
        };
        let (asked, reached) = (
            journal(replay_from(asked, &dir, a)),
            journal(replay_from(reached, &dir, r)),
        );
        // The header, three writes per page (the rows' leaves and page 1),
        // the record count after the first sync.
        let pages = 1 + rows;
        assert_eq!(asked.len(), 1 + 3 * pages + 1, "{asked:?}");
        assert_eq!(reached, vec![512 + pages * (4 + 4096 + 4), 12]);
    }
}

#[test]
fn the_database_is_byte_identical_to_one_written_without_the_vfs() {
    register().unwrap();
    let dir = temp_dir("identical");
    for (file, vfs) in [("plain.db", BASE.to_str().unwrap()), ("ours.db", NAME)] {
        workload(&open(&dir.join(file), vfs), 4096);
    }
    let (plain, ours) = (
        std::fs::read(dir.join("plain.db")).unwrap(),
        std::fs::read(dir.join("ours.db")).unwrap(),
    );
    assert!(plain.len() > 100_000);
    assert!(plain == ours, "the database files differ");
}

/// Leaves a transaction half done, database pages already overwritten (the
/// page cache spilled) and journal writes possibly still buffered, then
/// copies the files as a process killed at that moment would leave them.
fn cut_short(dir: &Path, synchronous: &str, reopen_with: &str) {
    register().unwrap();
    let conn = open(&dir.join("t.db"), NAME);
    workload(&conn, 4096);
    let committed = summary(&conn);
    let original = std::fs::read(dir.join("t.db")).unwrap();
    let rows = all_rows(&conn);
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous}; BEGIN; UPDATE t SET body = zeroblob(3000); DELETE FROM t WHERE id % 5 = 0;"
    ))
    .unwrap();
    let crashed = dir.join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::copy(dir.join("t.db"), crashed.join("t.db")).unwrap();
    std::fs::copy(dir.join("t.db-journal"), crashed.join("t.db-journal")).unwrap();
    assert!(
        std::fs::read(crashed.join("t.db")).unwrap() != original,
        "the transaction had overwritten database pages"
    );
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(summary(&conn), committed);
    drop(conn);
    // The next opener finds the hot journal and rolls the database back.
    let reopened = open(&crashed.join("t.db"), reopen_with);
    assert_eq!(summary(&reopened), committed);
    assert!(all_rows(&reopened) == rows);
    let check: String = reopened.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    assert!(!crashed.join("t.db-journal").exists());
    drop(reopened);
}

#[test]
fn a_transaction_cut_short_rolls_back_from_its_journal() {
    cut_short(&temp_dir("cut-full"), "FULL", BASE.to_str().unwrap());
    cut_short(&temp_dir("cut-full-ours"), "FULL", NAME);
}

#[test]
fn without_journal_syncs_the_journal_still_precedes_the_database_pages() {
    // synchronous=OFF: SQLite overwrites database pages without syncing the
    // journal first; only the flush before a database write puts the
    // journal's records in the file before their pages change.
    cut_short(&temp_dir("cut-off"), "OFF", BASE.to_str().unwrap());
}

#[test]
fn a_commit_that_keeps_its_journal_file_survives_a_kill_after_it() {
    // Exclusive locking mode and journal_mode=PERSIST end a transaction by
    // zeroing the journal's header instead of deleting the file; without a
    // sync (synchronous=OFF) that write is the commit as far as the next
    // opener is concerned, so it must not wait in a buffer.
    register().unwrap();
    for (name, pragmas) in [
        ("exclusive", "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=OFF;"),
        ("persist", "PRAGMA journal_mode=PERSIST; PRAGMA synchronous=OFF;"),
    ] {
        let dir = temp_dir(&format!("kept-{name}"));
        let conn = open(&dir.join("t.db"), NAME);
        workload(&conn, 4096);
        conn.execute_batch(pragmas).unwrap();
        conn.execute_batch("PRAGMA cache_size=100; UPDATE t SET body = zeroblob(10) WHERE id % 2 = 0;")
            .unwrap();
        let rows = all_rows(&conn);
        assert!(dir.join("t.db-journal").exists());
        let killed = dir.join("killed");
        std::fs::create_dir_all(&killed).unwrap();
        for file in ["t.db", "t.db-journal"] {
            std::fs::copy(dir.join(file), killed.join(file)).unwrap();
        }
        drop(conn);
        let reopened = open(&killed.join("t.db"), BASE.to_str().unwrap());
        assert!(
            all_rows(&reopened) == rows,
            "{name}: the committed transaction was rolled back"
        );
    }
}

/// The VFS under test over a disk of `ROOM` bytes left (a write-through
/// instance failing with `SQLITE_FULL` every write that would make a file
/// grow past it).
const OVER_FULL: &CStr = c"fcw-test-over-full";
const FULL_BELOW: &CStr = c"fcw-test-full-below";
static ROOM: AtomicU64 = AtomicU64::new(u64::MAX);

fn over_full_disk() -> &'static str {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: static names; FULL_BELOW wraps the real VFS, OVER_FULL wraps FULL_BELOW.
        unsafe {
            let below = Options {
                write_through: true,
                log: None,
                room: Some(&ROOM),
            };
            assert_eq!(register_as(FULL_BELOW, BASE, below), rusqlite::ffi::SQLITE_OK);
            assert_eq!(
                register_as(OVER_FULL, FULL_BELOW, Options::default()),
                rusqlite::ffi::SQLITE_OK
            );
        }
    });
    OVER_FULL.to_str().unwrap()
}

fn is_full(result: rusqlite::Result<impl std::fmt::Debug>) -> bool {
    matches!(
        result.as_ref().map_err(rusqlite::Error::sqlite_error_code),
        Err(Some(rusqlite::ErrorCode::DiskFull))
    ) || panic!("expected SQLITE_FULL, got {result:?}")
}

fn journal(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir.join("t.db-journal")).ok().map(|m| m.len())
}

#[test]
fn a_full_disk_fails_the_write_and_leaves_the_connection_and_the_file_whole() {
    // Journal records SQLite was told were written wait in the buffer; when
    // the disk is full they never reach the file. The rollback must not
    // trust that journal (it would keep the transaction's pages in the page
    // cache: "database disk image is malformed" from then on), nothing may
    // write the database after it, and no journal may be left behind.
    let dir = temp_dir("full");
    let conn = open(&dir.join("t.db"), over_full_disk());
    workload(&conn, 4096);
    let rows = all_rows(&conn);
    let cases = [
        // No room: one statement growing the file, in the page cache until
        // the commit, whose journal sync finds the disk full. SQLite gives
        // up on the transaction and leaves its journal, empty.
        (0, 1000, "INSERT INTO t VALUES (1000, zeroblob(100000))"),
        // Room for a part of the journal: its first writes reach the file,
        // not yet its header's first sync (the header starts with zeros).
        (
            150_000,
            1000,
            "BEGIN; UPDATE t SET body = zeroblob(1200); DELETE FROM t WHERE id % 3 = 0; COMMIT;",
        ),
        // A transaction spilling the page cache (4 pages): the spill's
        // journal sync finds the disk full.
        (
            0,
            4,
            "BEGIN; UPDATE t SET body = zeroblob(1200); DELETE FROM t WHERE id % 3 = 0; COMMIT;",
        ),
    ];
    for (room, cache, sql) in cases {
        conn.execute_batch(&format!("PRAGMA cache_size={cache}")).unwrap();
        ROOM.store(room, Ordering::Relaxed);
        assert!(is_full(conn.execute_batch(sql)), "{sql}");
        assert!(conn.is_autocommit());
        // A journal SQLite would not play back, removed.
        assert_eq!(journal(&dir), None, "room {room}, {sql}");
        assert!(all_rows(&conn) == rows, "reads work while the disk is full");
    }
    // The disk fills up in the middle of a transaction that has already
    // overwritten database pages (the cache spilled): the journal in the
    // file holds their originals and rolls them back.
    ROOM.store(u64::MAX, Ordering::Relaxed);
    conn.execute_batch("BEGIN; UPDATE t SET body = zeroblob(900) WHERE id % 2 = 0;")
        .unwrap();
    assert!(journal(&dir).unwrap() > 4096);
    ROOM.store(0, Ordering::Relaxed);
    assert!(is_full(
        conn.execute_batch("UPDATE t SET body = zeroblob(1100) WHERE id % 2 = 1;")
    ));
    // SQLite gave up on it, leaving its journal for the next statement:
    // `settle` plays it back at once.
    assert!(conn.is_autocommit());
    assert!(journal(&dir).unwrap() > 4096);
    super::settle(&conn);
    assert_eq!(journal(&dir), None);
    assert!(all_rows(&conn) == rows);
    // Room again: the same connection writes.
    ROOM.store(u64::MAX, Ordering::Relaxed);
    conn.execute("INSERT INTO t VALUES (1000, zeroblob(100000))", [])
        .unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    assert_eq!(journal(&dir), None);
    let reopened = open(&dir.join("t.db"), BASE.to_str().unwrap());
    assert_eq!(all_rows(&reopened).len(), rows.len() + 1);
    assert!(all_rows(&reopened)[..rows.len()] == rows[..]);
}
