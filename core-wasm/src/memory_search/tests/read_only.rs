//! Stores opened read-only: every read as the writer answers it, every
//! write refused with `ReadOnly`, and the file never written.

use super::persistence::version_1_file;
use super::*;
use crate::memory_search::persist::{read_only_version, HOT_JOURNAL};

/// The bytes of the database and whether its journal exists.
fn file_state(dir: &TempDir) -> (Vec<u8>, bool) {
    let db = dir.db();
    (
        std::fs::read(&db).unwrap(),
        std::path::Path::new(&format!("{db}-journal")).exists(),
    )
}

/// Every read of the contract, as one comparable list.
fn reads(s: &mut Store) -> Vec<String> {
    vec![
        search(s, &[1.0, 0.0, 0.0], "{}", 10),
        search(s, &[0.0, 1.0, 0.5], "{\"scope_prefix\":\"/a\"}", 2),
        s.search_hits(&b64(&[1.0, 0.0, 0.0]), "{}", 10, 0.0)
            .map(|hits| ids_of_hits(&hits).join(","))
            .unwrap(),
        s.search_text("common", "{}", 10).unwrap(),
        s.search_text_hits("alpha", "{}", 10)
            .map(|hits| ids_of_hits(&hits).join(","))
            .unwrap(),
        s.get("r1").unwrap().unwrap(),
        format!("{:?}", s.get("missing").unwrap()),
        s.list(None, 100, 0).unwrap(),
        s.list(Some("/a"), 2, 1).unwrap(),
        s.scope_info("/a").unwrap(),
        s.list_scopes("/").unwrap(),
        s.list_categories(None).unwrap(),
        s.count(None).unwrap().to_string(),
        s.count(Some("/b")).unwrap().to_string(),
        format!("{:?}", s.dimension()),
        unversioned(&s.records("[\"r0\",\"missing\",\"r2\"]").unwrap()),
    ]
}

/// `[[version, record] | null, ...]` without the versions, which differ
/// between stores.
fn unversioned(records: &str) -> String {
    let Value::Array(items) = json::parse(records).unwrap() else {
        panic!("not an array: {records}")
    };
    let records: Vec<String> = items
        .iter()
        .map(|item| match item {
            Value::Array(pair) => json::to_string(&pair[1]),
            other => json::to_string(other),
        })
        .collect();
    records.join(",")
}

/// The ids of `[id, version, score]` triples.
fn ids_of_hits(hits: &str) -> Vec<String> {
    let Value::Array(items) = json::parse(hits).unwrap() else {
        panic!("not an array: {hits}")
    };
    items
        .iter()
        .map(|item| match item {
            Value::Array(triple) => match &triple[0] {
                Value::String(id) => id.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect()
}

fn written_store(name: &str) -> (TempDir, Store) {
    let (dir, mut s) = open_temp(name);
    let recs: Vec<String> = (0..6)
        .map(|i| {
            let e = [i as f32, 1.0 - i as f32 * 0.1, 0.5];
            let scope = if i % 2 == 0 { "/a/x" } else { "/b" };
            rec(
                &format!("r{i}"),
                &format!("alpha common {i}"),
                scope,
                &["c"],
                f64::from(i),
                Some(&e),
            )
        })
        .collect();
    save(&mut s, &recs);
    s.touch("[\"r1\"]", "touched").unwrap();
    (dir, s)
}

#[test]
fn a_read_only_store_reads_what_the_writer_reads_and_refuses_every_write() {
    let (dir, mut writer) = written_store("ro-reads");
    let expected = reads(&mut writer);
    drop(writer);
    let before = file_state(&dir);
    let mut s = Store::open_read_only(&dir.db()).unwrap();
    s.check();
    assert_eq!(reads(&mut s), expected);
    let record = rec("new", "x", "/", &[], 9.0, Some(&[1.0, 2.0, 3.0]));
    let refused: Vec<(&str, Result<(), MemError>)> = vec![
        ("save", s.save(&format!("[{record}]")).map(drop)),
        ("save", s.save("not even JSON").map(drop)),
        ("save", s.save("[]").map(drop)),
        ("save", s.save_packed("[]", "").map(drop)),
        ("delete", s.delete("{}").map(drop)),
        ("delete", s.delete("{\"ids\":[\"r1\"]}").map(drop)),
        ("reset", s.reset(None)),
        ("reset", s.reset(Some("/a"))),
        ("touch", s.touch("[\"r1\"]", "later").map(drop)),
        ("touch", s.touch("[]", "later").map(drop)),
    ];
    for (what, result) in refused {
        match result {
            Err(MemError::ReadOnly(m)) => assert_eq!(m, format!("{what} would write to a store opened read-only")),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(!s.refresh().unwrap());
    assert_eq!(reads(&mut s), expected);
    drop(s);
    assert_eq!(file_state(&dir), before, "the file was written");
}

#[test]
fn a_read_only_store_sees_a_writers_commits_at_its_refresh() {
    let (dir, mut writer) = written_store("ro-refresh");
    let mut reader = Store::open_read_only(&dir.db()).unwrap();
    save(
        &mut writer,
        &[rec("late", "beta", "/b", &[], 7.0, Some(&[0.0, 0.0, 1.0]))],
    );
    writer.delete("{\"ids\":[\"r0\"]}").unwrap();
    assert_eq!(reader.count(None).unwrap(), 6, "reads serve the index until a refresh");
    assert!(reader.refresh().unwrap());
    assert_eq!(
        (reader.loads, reader.updates),
        (1, 1),
        "from the change log, not a reload"
    );
    assert_eq!(reader.count(None).unwrap(), 6);
    assert!(reader.get("late").unwrap().is_some());
    assert_eq!(reader.get("r0").unwrap(), None);
    assert_eq!(reads(&mut reader), reads(&mut writer));
    reader.check();
}

#[test]
fn a_read_only_open_never_creates_a_file() {
    let dir = TempDir::new("ro-missing");
    match Store::open_read_only(&dir.db()) {
        Err(MemError::ReadOnly(m)) => assert!(m.contains("does not create it"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(!std::path::Path::new(&dir.db()).exists());
    // An empty file (or any SQLite file) without the store's tables.
    std::fs::write(dir.db(), b"").unwrap();
    match Store::open_read_only(&dir.db()) {
        Err(MemError::ReadOnly(m)) => {
            assert!(m.contains("no table memories, store_meta, memory_changes"), "{m}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::metadata(dir.db()).unwrap().len(), 0);
}

#[test]
fn an_older_schema_is_refused_read_only_and_migrated_by_a_writable_open() {
    let dir = TempDir::new("ro-old");
    version_1_file(&dir);
    let before = file_state(&dir);
    match Store::open_read_only(&dir.db()) {
        Err(MemError::ReadOnly(m)) => assert!(m.contains("schema version 1") && m.contains("writable once"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(file_state(&dir), before);
    drop(Store::open(&dir.db()).unwrap());
    let mut s = Store::open_read_only(&dir.db()).unwrap();
    assert_eq!(ids_of(&s.list(Some("/crew"), 10, 0).unwrap()), ["rooted", "old"]);
    // A newer file is refused as by a writable open.
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute("UPDATE store_meta SET value = 3 WHERE key = 'schema_version'", [])
        .unwrap();
    match Store::open_read_only(&dir.db()) {
        Err(MemError::Storage(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn only_the_current_schema_version_is_read_without_writing() {
    assert!(matches!(read_only_version(1, 2), Err(MemError::ReadOnly(_))));
    assert_eq!(read_only_version(2, 2), Ok(()));
}

#[test]
fn a_crashed_writers_journal_is_refused_read_only() {
    let (dir, writer) = written_store("ro-hot");
    drop(writer);
    // The file and its journal as a writer left them mid-transaction.
    let conn = Connection::open(dir.db()).unwrap();
    // Larger than the page cache, so that it spills: the journal is synced
    // (its header made valid) and pages are written to the file.
    conn.execute_batch("PRAGMA cache_size=10; BEGIN IMMEDIATE; UPDATE memories SET content = hex(randomblob(100000));")
        .unwrap();
    let crashed = TempDir::new("ro-hot-copy");
    let db = dir.db();
    std::fs::copy(&db, crashed.db()).unwrap();
    std::fs::copy(format!("{db}-journal"), format!("{}-journal", crashed.db())).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    let before = file_state(&crashed);
    assert!(before.1, "no journal was copied");
    match Store::open_read_only(&crashed.db()) {
        Err(MemError::ReadOnly(m)) => assert_eq!(m, HOT_JOURNAL),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(file_state(&crashed), before);
    // A writable open rolls it back; then it reads read-only.
    drop(Store::open(&crashed.db()).unwrap());
    let mut s = Store::open_read_only(&crashed.db()).unwrap();
    assert!(s.get("r1").unwrap().unwrap().contains("alpha common 1"));
}
