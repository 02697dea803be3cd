use super::values::{parse_params, Params};
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

#[test]
fn no_form_of_attach_reaches_a_file() {
    let path = temp_db("attach");
    let dir = std::path::Path::new(&path).parent().unwrap().to_owned();
    let conn = Connection::open(&path, Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        .unwrap();
    let other = dir.join("other.db").to_string_lossy().into_owned();
    let named = serde_free_json_string(&other);
    for (sql, params) in [
        ("ATTACH ? AS e", format!("[{named}]")),
        ("ATTACH :f AS e", format!("{{\"f\": {named}}}")),
        ("ATTACH (? || '') AS e", format!("[{named}]")),
        ("ATTACH ('oth' || 'er.db') AS e", "[]".to_owned()),
        ("ATTACH 'other.db' AS e", "[]".to_owned()),
        ("VACUUM INTO ?", format!("[{named}]")),
        ("VACUUM INTO 'other.db'", "[]".to_owned()),
        ("DETACH main", "[]".to_owned()),
        ("PRAGMA temp_store_directory = '/tmp'", "[]".to_owned()),
    ] {
        let err = conn.execute(sql, &params);
        assert_eq!(err, Err(SqlError::Misuse(super::REFUSED.into())), "{sql}");
        assert!(!dir.join("other.db").exists(), "{sql} created a file");
    }
    // A private temporary database reaches no file; plain VACUUM attaches one.
    conn.execute("ATTACH '' AS scratch", "[]").unwrap();
    conn.execute("VACUUM", "[]").unwrap();
    assert!(conn.query("SELECT count(*) FROM t", "[]").unwrap().contains("[[1]]"));
}

fn serde_free_json_string(s: &str) -> String {
    let mut out = String::new();
    crate::json::write_string(&mut out, s);
    out
}

#[test]
fn values_past_the_length_limit_are_refused_at_write() {
    let conn = Connection::open(&temp_db("toobig"), Mode::Create).unwrap();
    conn.execute_script("CREATE TABLE t(b)").unwrap();
    let text = "x".repeat(MAX_VALUE_BYTES + 1);
    let err = conn.execute("INSERT INTO t VALUES (?)", &format!("[\"{text}\"]"));
    assert_eq!(
        err,
        Err(SqlError::TooLarge(super::values::value_too_large(MAX_VALUE_BYTES + 1)))
    );
    let err = conn.execute(
        "INSERT INTO t VALUES (zeroblob(?))",
        &format!("[{}]", MAX_VALUE_BYTES + 1),
    );
    assert!(matches!(err, Err(SqlError::TooLarge(_))), "{err:?}");
    // The limit bounds a whole row too, header included.
    let err = conn.execute("INSERT INTO t VALUES (zeroblob(?))", &format!("[{MAX_VALUE_BYTES}]"));
    assert!(matches!(err, Err(SqlError::TooLarge(_))), "{err:?}");
    let largest = MAX_VALUE_BYTES - 16;
    conn.execute("INSERT INTO t VALUES (zeroblob(?))", &format!("[{largest}]"))
        .unwrap();
    let err = conn.execute("UPDATE t SET b = b || zeroblob(16)", "[]");
    assert!(matches!(err, Err(SqlError::TooLarge(_))), "{err:?}");
    // The largest value reads back: its base64 fits in one result.
    let out = conn.query("SELECT b FROM t", "[]").unwrap();
    let envelope = r#"{"columns":["b"],"rows":[[{"$blob":""}]],"changes":0,"last-insert-rowid":1}"#;
    assert_eq!(out.len(), largest.div_ceil(3) * 4 + envelope.len());
}

#[test]
fn results_past_the_limit_are_a_typed_error() {
    let mut conn = Connection::open(&temp_db("result"), Mode::Create).unwrap();
    let sql = "SELECT printf('%.*c', 1000, 'x') FROM generate_series(1, 10)";
    let sql = if conn.execute(sql, "[]").is_ok() {
        sql
    } else {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) \
         SELECT printf('%.*c', 1000, 'x') FROM n"
    };
    let full = conn.execute(sql, "[]").unwrap();
    conn.result_limit = full.len();
    assert_eq!(conn.execute(sql, "[]").unwrap(), full);
    for limit in [full.len() - 1, 5000, 10] {
        conn.result_limit = limit;
        assert_eq!(
            conn.query(sql, "[]"),
            Err(SqlError::TooLarge(super::connection::result_too_large(limit))),
            "{limit}"
        );
    }
    conn.result_limit = full.len();
    assert!(conn.query("SELECT 1", "[]").is_ok(), "the connection stays usable");
}

#[test]
fn named_parameters_are_checked_and_found_in_linearithmic_time() {
    // SQLite's own handling of named parameters is quadratic in their count
    // (20k take seconds to prepare), so the codec's side is timed alone.
    let n = crate::json::MAX_MEMBERS;
    let members: Vec<String> = (0..n).rev().map(|i| format!("\"p{i}\": {i}")).collect();
    let started = std::time::Instant::now();
    let Params::Named(named) = parse_params(&format!("{{{}}}", members.join(","))).unwrap() else {
        panic!()
    };
    for i in 0..n {
        assert_eq!(named.position(&format!("p{i}")), Some(n - 1 - i));
    }
    assert_eq!(named.position("p"), None);
    let mut twice = members.clone();
    twice[n - 1] = format!("\":p{}\": 0", n / 2);
    let err = parse_params(&format!("{{{}}}", twice.join(",")));
    assert!(
        matches!(&err, Err(SqlError::Misuse(m)) if *m == format!("parameter p{} is given twice", n / 2)),
        "{:?}",
        err.err()
    );
    assert!(started.elapsed().as_secs_f64() < 1.0, "{:?}", started.elapsed());
    let conn = Connection::open(&temp_db("manynamed"), Mode::Create).unwrap();
    let out = conn
        .execute("SELECT :p3, @p70", &format!("{{{}}}", members.join(",")))
        .unwrap_err();
    assert!(
        matches!(out, SqlError::Misuse(ref m) if m.starts_with("unknown parameter p65535")),
        "{out:?}"
    );
}

#[test]
fn integers_are_written_in_decimal_at_both_ends_of_their_range() {
    for i in [0i64, 7, -7, 10, -10, 1_234_567_890, i64::MAX, i64::MIN] {
        let mut out = String::new();
        super::values::write_sql_value(&mut out, rusqlite::types::ValueRef::Integer(i));
        assert_eq!(out, i.to_string());
    }
}
