//! Reopening, other connections, failed writes and the capacity limit.

use super::*;

#[test]
fn negative_zero_numbers_read_back_the_same_after_reopening() {
    let (dir, mut s) = open_temp("negzero");
    s.save("[{\"id\":\"z\",\"content\":\"c\",\"created_at\":\"x\",\"created_ts\":-0.0,\"importance\":-0.0}]")
        .unwrap();
    let live = s.get("z").unwrap().unwrap();
    assert!(
        live.contains("\"created_ts\":0.0") && live.contains("\"importance\":0.0"),
        "{live}"
    );
    drop(s);
    let mut s = Store::open(&dir.db()).unwrap();
    assert_eq!(s.get("z").unwrap().unwrap(), live);
}

/// A version-1 file (scopes stored as given) with one unrooted scope.
pub(super) fn version_1_file(dir: &TempDir) {
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute_batch(super::super::constants::SCHEMA).unwrap();
    conn.execute_batch(
        "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, \
         created_ts, last_accessed, private) VALUES \
         ('old', 'c', 'crew/a', '[]', '{}', 0.5, 't', 1.0, 't', 0), \
         ('rooted', 'c', '/crew/b', '[]', '{}', 0.5, 't', 2.0, 't', 0);",
    )
    .unwrap();
}

#[test]
fn opening_a_version_1_file_roots_its_scopes() {
    let dir = TempDir::new("migrate");
    version_1_file(&dir);
    let mut s = Store::open(&dir.db()).unwrap();
    assert_eq!(ids_of(&s.list(Some("/crew"), 10, 0).unwrap()), ["rooted", "old"]);
    assert_eq!(s.list_scopes("/crew").unwrap(), "[\"/crew/a\",\"/crew/b\"]");
    drop(s);
    let conn = Connection::open(dir.db()).unwrap();
    let version: i64 = conn
        .query_row("SELECT value FROM store_meta WHERE key = 'schema_version'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, 2);
    let scopes: Vec<String> = conn
        .prepare("SELECT scope FROM memories ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(scopes, ["/crew/a", "/crew/b"]);
}

#[test]
fn a_file_from_a_newer_version_is_refused() {
    let dir = TempDir::new("newer");
    drop(Store::open(&dir.db()).unwrap());
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute("UPDATE store_meta SET value = 3 WHERE key = 'schema_version'", [])
        .unwrap();
    match Store::open(&dir.db()) {
        Err(MemError::Storage(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn persistence_across_reopen() {
    let dir = TempDir::new("reopen");
    let mut expected = Vec::new();
    {
        let mut s = Store::open(&dir.db()).unwrap();
        let mut recs = Vec::new();
        for i in 0..50 {
            let e: Vec<f32> = (0..7).map(|j| ((i * 7 + j) % 11) as f32 - 5.0).collect();
            recs.push(rec(
                &format!("r{i}"),
                &format!("word{} common", i % 5),
                &format!("/s{}", i % 3),
                &["c"],
                i as f64,
                Some(&e),
            ));
        }
        save(&mut s, &recs);
        s.delete("{\"scope_prefix\":\"/s1\"}").unwrap();
        s.touch("[\"r0\"]", "touched").unwrap();
        save(&mut s, &[rec("r3", "replaced", "/s0", &[], 3.0, None)]);
        for q in [
            [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [-5.0, 2.0, 1.0, 0.0, 3.0, 1.0, 1.0],
        ] {
            expected.push(search(&mut s, &q, "{}", 10));
        }
        expected.push(s.search_text("common word2", "{}", 10).unwrap());
        expected.push(s.list(None, 100, 0).unwrap());
    }
    let mut s = Store::open(&dir.db()).unwrap();
    s.check();
    let mut got = Vec::new();
    for q in [
        [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-5.0, 2.0, 1.0, 0.0, 3.0, 1.0, 1.0],
    ] {
        got.push(search(&mut s, &q, "{}", 10));
    }
    got.push(s.search_text("common word2", "{}", 10).unwrap());
    got.push(s.list(None, 100, 0).unwrap());
    assert_eq!(got, expected);
    assert_eq!(s.count(None).unwrap(), 33);
    assert!(s.get("r0").unwrap().unwrap().contains("touched"));
}

#[test]
fn data_version_reload_between_two_stores() {
    let dir = TempDir::new("twoproc");
    let mut s1 = Store::open(&dir.db()).unwrap();
    let mut s2 = Store::open(&dir.db()).unwrap();
    assert_eq!((s1.loads, s2.loads), (1, 1));
    save(&mut s1, &[rec("a", "alpha", "/", &[], 1.0, Some(&[1.0, 0.0]))]);
    save(&mut s1, &[rec("a2", "alpha", "/", &[], 1.0, Some(&[1.0, 0.0]))]);
    s1.delete("{\"ids\":[\"a2\"]}").unwrap();
    assert_eq!(s1.count(None).unwrap(), 1);
    assert_eq!(s1.loads, 1, "a store's own writes do not reload it");
    assert!(!s1.refresh().unwrap());
    assert_eq!(s2.count(None).unwrap(), 0, "reads serve the index until a refresh");
    assert!(s2.refresh().unwrap());
    assert_eq!(s2.count(None).unwrap(), 1);
    assert_eq!(s2.loads, 2, "another connection's writes do");
    assert!(!s2.refresh().unwrap());
    assert_eq!(s2.loads, 2);
    assert_eq!(s2.dimension(), Some(2));
    assert_eq!(ids_of(&s2.search_text("alpha", "{}", 5).unwrap()), ["a"]);
    // s2 writes; s1 sees it and keeps its own write order.
    save(&mut s2, &[rec("b", "beta", "/", &[], 2.0, Some(&[1.0, 0.0]))]);
    assert!(s1.refresh().unwrap());
    assert_eq!(ids_of(&search(&mut s1, &[1.0, 0.0], "{}", 5)), ["a", "b"]);
    // A write validates against the other's dimension.
    s2.reset(None).unwrap();
    save(&mut s2, &[rec("c", "", "/", &[], 3.0, Some(&[1.0, 0.0, 0.0]))]);
    s1.refresh().unwrap();
    assert_eq!(s1.get("a").unwrap(), None);
    save(&mut s1, &[rec("d", "", "/", &[], 4.0, Some(&[0.0, 0.0, 1.0]))]);
    assert_eq!(
        s1.save(&format!("[{}]", rec("e", "", "/", &[], 5.0, Some(&[1.0])))),
        Err(MemError::DimensionMismatch { stored: 3, given: 1 })
    );
    s2.touch("[\"d\"]", "by-s2").unwrap();
    assert!(s1.refresh().unwrap());
    assert!(s1.get("d").unwrap().unwrap().contains("by-s2"));
    assert_eq!(s2.delete("{\"ids\":[\"c\"]}").unwrap(), 1);
    assert!(s1.refresh().unwrap());
    assert_eq!(ids_of(&s1.list(None, 10, 0).unwrap()), ["d"]);
    s1.check();
    s2.check();
}

#[test]
fn failed_write_changes_nothing() {
    let dir = TempDir::new("failed");
    let mut s = Store::open(&dir.db()).unwrap();
    save(&mut s, &[rec("a", "x", "/", &[], 1.0, Some(&[1.0]))]);
    // Another connection holds the write lock: the save fails and neither
    // the file nor the index changes.
    let other = Connection::open(dir.db()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    s.conn.busy_timeout(std::time::Duration::from_millis(10)).unwrap();
    let err = s.save(&format!("[{}]", rec("b", "y", "/", &[], 2.0, None)));
    assert!(matches!(err, Err(MemError::Storage(_))), "{err:?}");
    assert_eq!(s.count(None).unwrap(), 1);
    other.execute_batch("ROLLBACK").unwrap();
    save(&mut s, &[rec("b", "y", "/", &[], 2.0, None)]);
    assert_eq!(s.count(None).unwrap(), 2);
}

#[test]
fn capacity_limit_is_an_error() {
    let mut index = Index::new(None);
    assert!(matches!(
        index.reserve(1 << 20, Some(1 << 12)),
        Err(MemError::Capacity(_))
    ));
    assert!(index.reserve(10, Some(4)).is_ok());
    // The limit counts each vector's int8 copy too: 5 bytes per element.
    let c = super::super::constants::constants();
    let rows = (c.max_vector_bytes / (c.bytes_per_element * 1536)) as usize;
    assert!(matches!(
        index.reserve(rows + 1, Some(1536)),
        Err(MemError::Capacity(_))
    ));
}

/// Rows another tool wrote with NaN or infinite vector elements.
fn write_unusable_rows(dir: &TempDir, dim: usize) {
    let conn = Connection::open(dir.db()).unwrap();
    for (id, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY), ("neg", f32::NEG_INFINITY)] {
        let mut v = vec![0.5f32; dim];
        v[dim / 2] = bad;
        let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        conn.execute(
            "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, \
             created_ts, last_accessed, private, embedding) \
             VALUES (?1, 'odd row', '/', '[]', '{}', 0.5, 't', 0.0, 't', 0, ?2)",
            rusqlite::params![id, blob],
        )
        .unwrap();
    }
}

#[test]
fn vectors_with_nan_or_infinity_are_never_hits() {
    // 3 dimensions: the exact scan; 300 x 64: the int8 pre-scan first.
    for (rows, dim) in [(5usize, 3usize), (300, 64)] {
        let (dir, mut s) = open_temp("unusable");
        let recs: Vec<String> = (0..rows)
            .map(|i| {
                let e: Vec<f32> = (0..dim).map(|j| ((i + j) % 7) as f32).collect();
                rec(&format!("r{i}"), "plain", "/", &[], i as f64, Some(&e))
            })
            .collect();
        save(&mut s, &recs);
        write_unusable_rows(&dir, dim);
        assert!(s.refresh().unwrap());
        s.check();
        let q = vec![0.5f32; dim];
        for min_score in [-1.0, 0.0] {
            let found = ids_of(&s.search(&b64(&q), "{}", rows as u32 + 10, min_score).unwrap());
            assert_eq!(found.len(), rows, "{rows}x{dim}");
            assert!(found.iter().all(|id| id.starts_with('r')), "{found:?}");
        }
        let filtered = s
            .search(&b64(&q), "{\"ids\":[\"nan\",\"inf\",\"r0\"]}", 10, -1.0)
            .unwrap();
        assert_eq!(ids_of(&filtered), ["r0"]);
        // Everything else sees them as ordinary records.
        assert_eq!(s.count(None).unwrap() as usize, rows + 3);
        assert_eq!(ids_of(&s.search_text("odd", "{}", 10).unwrap()), ["nan", "inf", "neg"]);
        let got = s.get("nan").unwrap().unwrap();
        let mut nan = vec![0.5f32; dim];
        nan[dim / 2] = f32::NAN;
        assert!(got.contains(&hex(&nan)), "{got}");
        // Replacing one with a finite vector makes it a hit again.
        save(&mut s, &[rec("nan", "fixed", "/", &[], 0.0, Some(&q))]);
        assert_eq!(ids_of(&search(&mut s, &q, "{}", 1)), ["nan"]);
        assert_eq!(s.delete("{\"ids\":[\"inf\",\"neg\"]}").unwrap(), 2);
        s.check();
    }
}

#[test]
fn a_stored_record_too_large_to_return_is_an_error_not_a_trap() {
    let dir = TempDir::new("foreign-large");
    drop(Store::open(&dir.db()).unwrap());
    let limit = super::super::constants::constants().max_result_bytes as usize;
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute(
        "INSERT INTO memories (id, content, scope, categories, metadata, importance, created_at, \
         created_ts, last_accessed, private) VALUES ('big', ?1, '/', '[]', '{}', 0.5, 't', 1.0, 't', 0)",
        [("x ".repeat(limit / 2 + 1))],
    )
    .unwrap();
    drop(conn);
    let mut s = Store::open(&dir.db()).unwrap();
    assert!(matches!(s.get("big"), Err(MemError::ResultTooLarge(_))));
    assert!(matches!(s.list(None, 10, 0), Err(MemError::ResultTooLarge(_))));
    assert!(matches!(s.search_text("x", "{}", 10), Err(MemError::ResultTooLarge(_))));
    assert_eq!(s.count(None).unwrap(), 1);
    assert_eq!(s.delete("{\"ids\":[\"big\"]}").unwrap(), 1);
    assert_eq!(s.list(None, 10, 0).unwrap(), "[]");
}

/// What `list` returns for every record, the index's own view.
fn everything(s: &mut Store) -> String {
    s.list(None, 100_000, 0).unwrap()
}

#[test]
fn another_connections_commits_are_applied_from_the_change_log() {
    let dir = TempDir::new("changelog");
    let mut reader = Store::open(&dir.db()).unwrap();
    let mut writer = Store::open(&dir.db()).unwrap();
    let v = |i: usize| [i as f32, 1.0, -(i as f32)];
    let recs: Vec<String> = (0..200)
        .map(|i| {
            rec(
                &format!("r{i}"),
                &format!("word{} text", i % 7),
                &format!("/s/{}", i % 3),
                &["c"],
                i as f64,
                Some(&v(i)),
            )
        })
        .collect();
    save(&mut writer, &recs);
    assert!(reader.refresh().unwrap());
    let loads = reader.loads;
    // Saves, replacements, touches and deletes: each applied alone.
    save(
        &mut writer,
        &[rec("new", "fresh words", "/s/9", &["n"], 500.0, Some(&v(3)))],
    );
    save(&mut writer, &[rec("r5", "replaced", "/s/0", &[], 5.0, None)]);
    writer.touch("[\"r7\",\"r8\"]", "later").unwrap();
    writer.delete("{\"ids\":[\"r9\",\"r10\"]}").unwrap();
    writer.delete("{\"scope_prefix\":\"/s/2\"}").unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.loads, loads, "applied from the log, not reloaded");
    assert_eq!(reader.updates, 1);
    reader.check();
    assert_eq!(
        everything(&mut reader),
        everything(&mut Store::open(&dir.db()).unwrap())
    );
    let q = [3.0, 1.0, -3.0];
    assert_eq!(search(&mut reader, &q, "{}", 20), search(&mut writer, &q, "{}", 20));
    assert_eq!(
        reader.search_text("words", "{}", 10).unwrap(),
        writer.search_text("words", "{}", 10).unwrap()
    );
    // The reader's own writes are not applied again.
    save(&mut reader, &[rec("mine", "x", "/s", &[], 1.0, Some(&v(1)))]);
    assert!(!reader.refresh().unwrap());
    assert_eq!(reader.updates, 1);
    // A commit the log does not account for (here by plain SQLite, which
    // does not log) makes the reader read the whole store: the change
    // counter moved by more commits than were logged.
    let plain = Connection::open(dir.db()).unwrap();
    plain
        .execute("UPDATE memories SET content = 'by hand' WHERE id = 'r12'", [])
        .unwrap();
    save(&mut writer, &[rec("after", "x", "/s", &[], 1.0, Some(&v(2)))]);
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.loads, loads + 1);
    assert!(reader.get("r12").unwrap().unwrap().contains("\"by hand\""));
    // So do a log trimmed past the reader's position, a changed dimension
    // and a commit that logs nothing.
    save(&mut writer, &[rec("gap", "x", "/s", &[], 1.0, Some(&v(2)))]);
    plain
        .execute("DELETE FROM memory_changes WHERE id = 'gap'", [])
        .unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.loads, loads + 2);
    writer.reset(None).unwrap();
    save(&mut writer, &[rec("two", "x", "/s", &[], 1.0, Some(&[1.0, 2.0]))]);
    assert!(reader.refresh().unwrap());
    assert_eq!((reader.loads, reader.dimension()), (loads + 3, Some(2)));
    plain.execute_batch("VACUUM").unwrap();
    assert!(reader.refresh().unwrap());
    assert_eq!(reader.loads, loads + 4);
    // After all that, logged commits are applied alone again.
    save(&mut writer, &[rec("last", "x", "/s", &[], 1.0, Some(&[2.0, 1.0]))]);
    assert!(reader.refresh().unwrap());
    assert_eq!((reader.loads, reader.updates), (loads + 4, 2));
    reader.check();
    assert_eq!(everything(&mut reader), everything(&mut writer));
}

#[test]
fn the_change_log_keeps_its_last_ten_thousand_entries() {
    let dir = TempDir::new("changelog-trim");
    let mut s = Store::open(&dir.db()).unwrap();
    let recs: Vec<String> = (0..10_500)
        .map(|i| rec(&format!("r{i}"), "x", "/s", &[], i as f64, None))
        .collect();
    save(&mut s, &recs);
    let plain = Connection::open(dir.db()).unwrap();
    let (count, first, last): (i64, i64, i64) = plain
        .query_row("SELECT COUNT(*), MIN(seq), MAX(seq) FROM memory_changes", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((count, last - first + 1), (10_000, 10_000));
}
