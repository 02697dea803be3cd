use super::*;

fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("fcw-sqlite-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db");
    let _ = std::fs::remove_file(&path);
    path.to_string_lossy().into_owned()
}

#[test]
fn values_round_trip_with_their_types() {
    let conn = Connection::open(&temp_db("types"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(a, b, c, d, e)").unwrap();
    conn.execute(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
        r#"[1, 1.0, "x\u00e9", null, {"$blob": "AAEC"}]"#,
    )
    .unwrap();
    let out = conn.execute("SELECT * FROM t", "[]").unwrap();
    assert!(out.contains(r#""rows":[[1,1e0,"xé",null,{"$blob":"AAEC"}]]"#), "{out}");
}

#[test]
fn named_parameters_and_errors() {
    let conn = Connection::open(&temp_db("named"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(k TEXT PRIMARY KEY, v)").unwrap();
    conn.execute("INSERT INTO t VALUES (:k, :v)", r#"{"k": "a", "v": 2}"#)
        .unwrap();
    let dup = conn.execute("INSERT INTO t VALUES (:k, :v)", r#"{"k": "a", "v": 3}"#);
    assert!(matches!(dup, Err(SqlError::Constraint(_))), "{dup:?}");
    assert!(matches!(conn.execute("SELEC 1", "[]"), Err(SqlError::Misuse(_))));
    assert!(matches!(conn.execute("SELECT ?", "[]"), Err(SqlError::Misuse(_))));
}

#[test]
fn execute_many_is_all_or_nothing() {
    let conn = Connection::open(&temp_db("many"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(k INTEGER PRIMARY KEY)").unwrap();
    assert_eq!(
        conn.execute_many("INSERT INTO t VALUES (?)", "[[1],[2],[3]]").unwrap(),
        3
    );
    assert!(conn.execute_many("INSERT INTO t VALUES (?)", "[[4],[1]]").is_err());
    let out = conn.execute("SELECT count(*) FROM t", "[]").unwrap();
    assert!(out.contains(r#""rows":[[3]]"#), "{out}");
}

#[test]
fn named_parameters_are_strict() {
    let conn = Connection::open(&temp_db("strict"), Mode::Create).unwrap();
    let out = conn.execute("SELECT :a, @b", r#"{":a": 1, "b": 2}"#).unwrap();
    assert!(out.contains(r#""rows":[[1,2]]"#), "{out}");
    for params in [
        r#"{"a": 1}"#,
        r#"{"a": 1, "b": 2, "c": 3}"#,
        r#"{"a": 1, ":a": 2, "b": 3}"#,
    ] {
        let err = conn.execute("SELECT :a, @b", params);
        assert!(matches!(err, Err(SqlError::Misuse(_))), "{params}: {err:?}");
    }
    assert!(matches!(
        conn.execute("SELECT ?", r#"{"a": 1}"#),
        Err(SqlError::Misuse(_))
    ));
}

#[test]
fn changes_count_only_this_statement() {
    let conn = Connection::open(&temp_db("changes"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(x)").unwrap();
    let out = conn.execute("INSERT INTO t VALUES (1), (2)", "[]").unwrap();
    assert!(out.contains(r#""changes":2,"last-insert-rowid":2"#), "{out}");
    let out = conn.execute("SELECT count(*) FROM t", "[]").unwrap();
    assert!(out.contains(r#""changes":0"#), "{out}");
    let out = conn.execute("-- nothing", "[]").unwrap();
    assert!(out.starts_with(r#"{"columns":[],"rows":[],"changes":0"#), "{out}");
}

#[test]
fn transaction_control_and_escapes_are_refused() {
    let conn = Connection::open(&temp_db("guard"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(x)").unwrap();
    for sql in [
        "BEGIN",
        "SAVEPOINT s",
        "ATTACH 'other.db' AS o",
        "PRAGMA journal_mode=WAL",
    ] {
        let err = conn.execute(sql, "[]");
        assert!(matches!(err, Err(SqlError::Misuse(_))), "{sql}: {err:?}");
        assert!(!conn.in_transaction(), "{sql}");
    }
    conn.execute_script("BEGIN").unwrap();
    assert!(matches!(conn.execute("COMMIT", "[]"), Err(SqlError::Misuse(_))));
    conn.execute("VACUUM", "[]").unwrap();
    conn.execute("PRAGMA journal_mode", "[]").unwrap();
}

#[test]
fn query_refuses_writes() {
    let conn = Connection::open(&temp_db("query"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(x)").unwrap();
    let err = conn.query("INSERT INTO t VALUES (1) RETURNING x", "[]");
    assert!(matches!(err, Err(SqlError::ReadOnly(_))), "{err:?}");
    assert!(conn.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
    conn.execute("INSERT INTO t VALUES (1)", "[]").unwrap();
    assert!(matches!(
        conn.execute_many("SELECT ?", "[[1]]"),
        Err(SqlError::Misuse(_))
    ));
}

#[test]
fn refresh_lets_a_reader_see_another_connections_commit() {
    let path = temp_db("refresh");
    let writer = Connection::open(&path, Mode::Create).unwrap();
    writer.execute_script("CREATE TABLE t(x)").unwrap();
    let reader = Connection::open(&path, Mode::ReadWrite).unwrap();
    assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
    assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[0]]"));
    reader.refresh().unwrap();
    writer.execute("INSERT INTO t VALUES (1)", "[]").unwrap();
    assert!(reader.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[1]]"));
    // Writing drops the held lock again, and the authorizer still refuses callers.
    reader.execute("INSERT INTO t VALUES (2)", "[]").unwrap();
    assert!(matches!(
        reader.execute("PRAGMA locking_mode=EXCLUSIVE", "[]"),
        Err(SqlError::Misuse(_))
    ));
}

#[test]
fn read_only_refuses_writes() {
    let path = temp_db("ro");
    Connection::open(&path, Mode::Create)
        .unwrap()
        .execute_script("CREATE TABLE t(x)")
        .unwrap();
    let conn = Connection::open(&path, Mode::ReadOnly).unwrap();
    assert!(matches!(
        conn.execute("INSERT INTO t VALUES (1)", "[]"),
        Err(SqlError::ReadOnly(_))
    ));
}
