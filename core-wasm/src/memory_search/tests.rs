use super::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "memsearch-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> String {
        self.0.join("memory.db").to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn b64(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How the store writes a vector it returns.
fn hex(v: &[f32]) -> String {
    v.iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn jstr(s: &str) -> String {
    let mut out = String::new();
    json::write_string(&mut out, s);
    out
}

/// A record's JSON with the given fields and defaults elsewhere.
fn rec(id: &str, content: &str, scope: &str, cats: &[&str], ts: f64, emb: Option<&[f32]>) -> String {
    let cats: Vec<String> = cats.iter().map(|c| jstr(c)).collect();
    let mut ts_text = String::new();
    json::write_float(&mut ts_text, ts);
    format!(
        "{{\"id\":{},\"content\":{},\"scope\":{},\"categories\":[{}],\"metadata\":{{}},\
         \"importance\":0.5,\"created_at\":\"t{ts}\",\"created_ts\":{ts_text},\
         \"last_accessed\":\"t{ts}\",\"source\":null,\"private\":false,\"embedding\":{}}}",
        jstr(id),
        jstr(content),
        jstr(scope),
        cats.join(","),
        emb.map_or("null".to_owned(), |e| jstr(&b64(e)))
    )
}

fn save(store: &mut Store, recs: &[String]) -> u32 {
    let n = store.save(&format!("[{}]", recs.join(","))).unwrap();
    store.check();
    n
}

fn ids_of(result: &str) -> Vec<String> {
    let Value::Array(items) = json::parse(result).unwrap() else {
        panic!("not an array: {result}")
    };
    items
        .iter()
        .map(|item| {
            let r = match item {
                Value::Array(pair) => &pair[0],
                other => other,
            };
            match r.get("id") {
                Some(Value::String(s)) => s.clone(),
                _ => panic!("no id in {result}"),
            }
        })
        .collect()
}

fn scores_of(result: &str) -> Vec<f64> {
    let Value::Array(items) = json::parse(result).unwrap() else {
        panic!()
    };
    items
        .iter()
        .map(|item| match item {
            Value::Array(pair) => pair[1].as_f64().unwrap(),
            _ => panic!(),
        })
        .collect()
}

fn open_temp(name: &str) -> (TempDir, Store) {
    let dir = TempDir::new(name);
    let store = Store::open(&dir.db()).unwrap();
    (dir, store)
}

fn search(store: &mut Store, q: &[f32], filter: &str, limit: u32) -> String {
    store.search(&b64(q), filter, limit, 0.0).unwrap()
}

#[test]
fn save_get_roundtrip_exact() {
    let (_dir, mut s) = open_temp("roundtrip");
    let emb = [0.1f32, -2.5, 3.0e-39, -0.0];
    let text = format!(
        "[{{\"id\":\"r1\",\"content\":\"héllo \\\"q\\\"\\n\",\"scope\":\"/crew/a\",\
         \"categories\":[\"x\",\"y\"],\"metadata\":{{\"b\":[1,2.5,null],\"a\":{{\"k\":true}}}},\
         \"importance\":1,\"created_at\":\"2026-01-01T00:00:00\",\"created_ts\":1767225600,\
         \"last_accessed\":\"2026-01-02T00:00:00\",\"source\":\"agent\",\"private\":true,\
         \"embedding\":\"{}\"}}]",
        b64(&emb)
    );
    assert_eq!(s.save(&text).unwrap(), 1);
    let expected = format!(
        "{{\"id\":\"r1\",\"content\":\"héllo \\\"q\\\"\\n\",\"scope\":\"/crew/a\",\
         \"categories\":[\"x\",\"y\"],\"metadata\":{{\"b\":[1,2.5,null],\"a\":{{\"k\":true}}}},\
         \"importance\":1.0,\"created_at\":\"2026-01-01T00:00:00\",\"created_ts\":1767225600.0,\
         \"last_accessed\":\"2026-01-02T00:00:00\",\"source\":\"agent\",\"private\":true,\
         \"embedding\":\"{}\"}}",
        hex(&emb)
    );
    assert_eq!(s.get("r1").unwrap().unwrap(), expected);
    assert_eq!(s.get("nope").unwrap(), None);
    assert_eq!(s.dimension(), Some(4));

    // Defaults for the optional fields.
    s.save("[{\"id\":\"r2\",\"content\":\"c\",\"created_at\":\"x\",\"created_ts\":0}]")
        .unwrap();
    assert_eq!(
        s.get("r2").unwrap().unwrap(),
        "{\"id\":\"r2\",\"content\":\"c\",\"scope\":\"/\",\"categories\":[],\"metadata\":{},\
         \"importance\":0.5,\"created_at\":\"x\",\"created_ts\":0.0,\"last_accessed\":\"x\",\
         \"source\":null,\"private\":false,\"embedding\":null}"
    );
    drop(s);
    // And the same after reopening.
    let mut s = Store::open(&_dir.db()).unwrap();
    assert_eq!(s.get("r1").unwrap().unwrap(), expected);
    s.check();
}

#[test]
fn vector_search_scores_ties_limit_min_score() {
    let (_dir, mut s) = open_temp("search");
    save(
        &mut s,
        &[
            rec("a", "", "/", &[], 1.0, Some(&[0.0, 0.0])),
            rec("b", "", "/", &[], 2.0, Some(&[1.0, 0.0])),
            rec("c", "", "/", &[], 3.0, Some(&[0.0, 2.0])),
            rec("d", "", "/", &[], 4.0, Some(&[1.0, 0.0])),
        ],
    );
    let r = search(&mut s, &[1.0, 0.0], "{}", 10);
    assert_eq!(ids_of(&r), ["b", "d", "a", "c"]);
    assert_eq!(scores_of(&r), [1.0, 1.0, 0.5, 1.0 / 6.0]);
    assert!(r.ends_with(",0.16666666666666666]]"), "{r}");
    assert_eq!(ids_of(&search(&mut s, &[1.0, 0.0], "{}", 3)), ["b", "d", "a"]);
    assert_eq!(ids_of(&search(&mut s, &[1.0, 0.0], "{}", 0)), Vec::<String>::new());
    let r = s.search(&b64(&[1.0, 0.0]), "{}", 10, 0.5).unwrap();
    assert_eq!(ids_of(&r), ["b", "d", "a"]);
    let r = s.search(&b64(&[1.0, 0.0]), "{}", 10, 0.50001).unwrap();
    assert_eq!(ids_of(&r), ["b", "d"]);
    assert_eq!(s.search(&b64(&[1.0, 0.0]), "{}", 10, 1.5).unwrap(), "[]");
    // Re-saving b makes it the later insertion of the tie.
    save(&mut s, &[rec("b", "", "/", &[], 2.0, Some(&[1.0, 0.0]))]);
    assert_eq!(ids_of(&search(&mut s, &[1.0, 0.0], "{}", 2)), ["d", "b"]);
    // Records saved without an embedding are zero vectors.
    save(&mut s, &[rec("z", "", "/", &[], 5.0, None)]);
    let r = search(&mut s, &[0.0, 0.0], "{}", 2);
    assert_eq!(ids_of(&r), ["a", "z"]);
    assert!(s.get("z").unwrap().unwrap().ends_with("\"embedding\":null}"));
}

#[test]
fn filters() {
    let (_dir, mut s) = open_temp("filters");
    let e = [1.0f32, 1.0];
    let mut recs = vec![
        rec("1", "", "/crew/agent_1", &["x"], 10.0, Some(&e)),
        rec("2", "", "/crew/agent_10", &["y"], 20.0, Some(&e)),
        rec("3", "", "/crew/agent_1/sub", &["x", "z"], 30.0, Some(&e)),
        rec("4", "", "/other", &[], 40.0, Some(&e)),
    ];
    recs[0] = recs[0].replace("\"metadata\":{}", "\"metadata\":{\"n\":1,\"t\":\"a\"}");
    recs[1] = recs[1].replace("\"metadata\":{}", "\"metadata\":{\"n\":1.0,\"b\":true}");
    recs[2] = recs[2].replace("\"metadata\":{}", "\"metadata\":{\"n\":2,\"o\":{\"p\":[1,2]}}");
    save(&mut s, &recs);
    let q = [1.0f32, 1.0];
    let mut f = |filter: &str| {
        let mut ids = ids_of(&search(&mut s, &q, filter, 10));
        ids.sort();
        ids
    };
    assert_eq!(f("{\"scope_prefix\":\"/crew/agent_1\"}"), ["1", "3"]);
    assert_eq!(f("{\"scope_prefix\":\"/crew/agent_1/\"}"), ["1", "3"]);
    assert_eq!(f("{\"scope_prefix\":\"/crew\"}"), ["1", "2", "3"]);
    assert_eq!(f("{\"scope_prefix\":\"/\"}"), ["1", "2", "3", "4"]);
    assert_eq!(f("{\"scope_prefix\":\"\"}"), ["1", "2", "3", "4"]);
    assert_eq!(f("{\"scope_prefix\":null}"), ["1", "2", "3", "4"]);
    assert_eq!(f("{\"scope_prefix\":\"/cr\"}"), Vec::<String>::new());
    assert_eq!(f("{\"categories\":[\"z\",\"y\"]}"), ["2", "3"]);
    assert_eq!(f("{\"categories\":[]}"), Vec::<String>::new());
    assert_eq!(f("{\"metadata\":{\"n\":1}}"), ["1", "2"]);
    assert_eq!(f("{\"metadata\":{\"n\":1.0}}"), ["1", "2"]);
    assert_eq!(f("{\"metadata\":{\"n\":1e0,\"t\":\"a\"}}"), ["1"]);
    assert_eq!(f("{\"metadata\":{\"b\":1}}"), Vec::<String>::new());
    assert_eq!(f("{\"metadata\":{\"b\":true}}"), ["2"]);
    assert_eq!(f("{\"metadata\":{\"o\":{\"p\":[1.0,2]}}}"), ["3"]);
    assert_eq!(f("{\"metadata\":{\"t\":null}}"), ["2", "3", "4"]);
    assert_eq!(f("{\"ids\":[\"4\",\"1\",\"1\",\"nope\"]}"), ["1", "4"]);
    assert_eq!(f("{\"ids\":[]}"), Vec::<String>::new());
    assert_eq!(f("{\"older_than\":30}"), ["1", "2"]);
    assert_eq!(
        f("{\"scope_prefix\":\"/crew\",\"categories\":[\"x\"],\"older_than\":25.5}"),
        ["1"]
    );
    for bad in [
        "",
        "[]",
        "{\"scope\":\"/\"}",
        "{\"categories\":\"x\"}",
        "{\"categories\":[1]}",
        "{\"metadata\":[]}",
        "{\"older_than\":\"2026\"}",
        "{\"ids\":[null]}",
        "{\"a\":1,\"a\":2}",
    ] {
        assert!(
            matches!(s.search(&b64(&q), bad, 10, 0.0), Err(MemError::InvalidInput(_))),
            "{bad}"
        );
    }
}

#[test]
fn number_equality_is_exact() {
    let n = |t: &str| json::parse(t).unwrap();
    assert!(json_eq(&n("9007199254740992"), &n("9007199254740992.0")));
    assert!(!json_eq(&n("9007199254740993"), &n("9007199254740992.0")));
    assert!(json_eq(&n("0"), &n("-0.0")));
    // 1e300 is not exactly 10**300 (Python agrees: `10**300 == 1e300` is False).
    assert!(!json_eq(&n("1e300"), &n(&format!("1{}", "0".repeat(300)))));
    assert!(json_eq(&n("1e300"), &n(&format!("{:.0}", 1e300f64))));
    assert!(!json_eq(&n("1"), &n("1.5")));
    assert!(!json_eq(&n("1"), &n("true")));
    assert!(json_eq(&n("{\"a\":1,\"b\":[2]}"), &n("{\"b\":[2.0],\"a\":1}")));
}

#[test]
fn delete_reset_count_touch() {
    let (_dir, mut s) = open_temp("delete");
    let e = [0.5f32; 3];
    save(
        &mut s,
        &[
            rec("1", "", "/a", &["x"], 1.0, Some(&e)),
            rec("2", "", "/a/b", &["y"], 2.0, Some(&e)),
            rec("3", "", "/ab", &["x"], 3.0, Some(&e)),
            rec("4", "", "/", &[], 4.0, None),
        ],
    );
    assert_eq!(s.count(None).unwrap(), 4);
    assert_eq!(s.count(Some("/")).unwrap(), 4);
    assert_eq!(s.count(Some("/a")).unwrap(), 2);
    assert_eq!(s.count(Some("/a/")).unwrap(), 2);
    assert_eq!(s.delete("{\"scope_prefix\":\"/a\",\"categories\":[\"x\"]}").unwrap(), 1);
    s.check();
    assert_eq!(s.get("1").unwrap(), None);
    assert_eq!(s.touch("[\"2\",\"2\",\"9\",\"4\"]", "later").unwrap(), 2);
    assert!(s.get("2").unwrap().unwrap().contains("\"last_accessed\":\"later\""));
    assert!(matches!(s.touch("[1]", "x"), Err(MemError::InvalidInput(_))));
    assert!(matches!(s.touch("{}", "x"), Err(MemError::InvalidInput(_))));
    s.reset(Some("/a")).unwrap();
    s.check();
    assert_eq!(s.count(None).unwrap(), 2);
    assert_eq!(s.delete("{\"ids\":[\"nope\"]}").unwrap(), 0);
    assert_eq!(s.delete("{}").unwrap(), 2);
    assert_eq!(s.count(None).unwrap(), 0);
    assert_eq!(s.dimension(), Some(3), "delete keeps the dimension");
    save(&mut s, &[rec("5", "", "/", &[], 1.0, Some(&e))]);
    s.reset(Some("/")).unwrap();
    assert_eq!(s.dimension(), None, "a full reset forgets it");
    assert_eq!(search(&mut s, &[1.0], "{}", 5), "[]");
    save(&mut s, &[rec("6", "", "/", &[], 1.0, Some(&[1.0]))]);
    assert_eq!(s.dimension(), Some(1));
    s.reset(None).unwrap();
    assert_eq!(s.dimension(), None);
    drop(s);
    let mut s = Store::open(&_dir.db()).unwrap();
    assert_eq!(s.dimension(), None);
    assert_eq!(s.count(None).unwrap(), 0);
}

#[test]
fn list_and_scope_queries() {
    let (_dir, mut s) = open_temp("list");
    save(
        &mut s,
        &[
            rec("1", "", "/crew/a", &["x"], 5.0, None),
            rec("2", "", "/crew/a/deep", &["y", "x"], 9.0, None),
            rec("3", "", "/crew/b", &["x"], 5.0, None),
            rec("4", "", "/crew", &["w", "w"], 1.0, None),
            rec("5", "", "/solo", &[], 7.0, None),
            rec("6", "", "/crew/ab", &[], 3.0, None),
        ],
    );
    assert_eq!(ids_of(&s.list(None, 100, 0).unwrap()), ["2", "5", "3", "1", "6", "4"]);
    assert_eq!(ids_of(&s.list(Some("/"), 2, 1).unwrap()), ["5", "3"]);
    assert_eq!(ids_of(&s.list(Some("/crew/a"), 10, 0).unwrap()), ["2", "1"]);
    assert_eq!(s.list(None, 0, 0).unwrap(), "[]");
    assert_eq!(s.list(None, 10, 100).unwrap(), "[]");
    assert_eq!(
        s.scope_info("/crew/").unwrap(),
        "{\"record_count\":5,\"categories\":[\"w\",\"x\",\"y\"],\"oldest\":\"t1\",\
         \"newest\":\"t9\",\"child_scopes\":[\"/crew/a\",\"/crew/ab\",\"/crew/b\"]}"
    );
    assert_eq!(
        s.scope_info("/").unwrap(),
        "{\"record_count\":6,\"categories\":[\"w\",\"x\",\"y\"],\"oldest\":\"t1\",\
         \"newest\":\"t9\",\"child_scopes\":[\"/crew\",\"/solo\"]}"
    );
    assert_eq!(
        s.scope_info("/nothing").unwrap(),
        "{\"record_count\":0,\"categories\":[],\"oldest\":null,\"newest\":null,\
         \"child_scopes\":[]}"
    );
    assert_eq!(s.list_scopes("/").unwrap(), "[\"/crew\",\"/solo\"]");
    assert_eq!(
        s.list_scopes("/crew").unwrap(),
        "[\"/crew/a\",\"/crew/ab\",\"/crew/b\"]"
    );
    assert_eq!(s.list_scopes("/crew/a/").unwrap(), "[\"/crew/a/deep\"]");
    assert_eq!(s.list_scopes("/solo").unwrap(), "[]");
    assert_eq!(s.list_categories(None).unwrap(), "{\"w\":1,\"x\":3,\"y\":1}");
    assert_eq!(s.list_categories(Some("/crew/a")).unwrap(), "{\"x\":2,\"y\":1}");
}

#[test]
fn bm25_ranking_matches_hand_computation() {
    let (_dir, mut s) = open_temp("bm25");
    save(
        &mut s,
        &[
            rec("d0", "The cat sat on the mat.", "/", &[], 1.0, None),
            rec("d1", "the DOG sat", "/x", &[], 2.0, None),
            rec("d2", "cat, cat; cat!", "/", &[], 3.0, None),
        ],
    );
    // N = 3, avgdl = 12 / 3 = 4, k1 = 1.2, b = 0.75.
    let idf_cat = (1.0f64 + 1.5 / 2.5).ln();
    let idf_sat = idf_cat;
    let idf_dog = (1.0f64 + 2.5 / 1.5).ln();
    let r = s.search_text("CAT", "{}", 10).unwrap();
    assert_eq!(ids_of(&r), ["d2", "d0"]);
    let sc = scores_of(&r);
    assert!((sc[0] - idf_cat * 3.0 * 2.2 / (3.0 + 1.2 * (0.25 + 0.75 * 0.75))).abs() < 1e-12);
    assert!((sc[1] - idf_cat * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 1.5))).abs() < 1e-12);
    let r = s.search_text("dog sat", "{}", 10).unwrap();
    assert_eq!(ids_of(&r), ["d1", "d0"]);
    let sc = scores_of(&r);
    let short = 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 0.75));
    assert!((sc[0] - (idf_dog + idf_sat) * short).abs() < 1e-12);
    assert!((sc[1] - idf_sat * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 1.5))).abs() < 1e-12);
    assert_eq!(
        ids_of(&s.search_text("dog sat", "{\"scope_prefix\":\"/\"}", 1).unwrap()),
        ["d1"]
    );
    assert_eq!(
        ids_of(&s.search_text("sat", "{\"scope_prefix\":\"/x\"}", 5).unwrap()),
        ["d1"]
    );
    assert_eq!(s.search_text("unknown words", "{}", 5).unwrap(), "[]");
    assert_eq!(s.search_text("", "{}", 5).unwrap(), "[]");
    assert_eq!(s.search_text("cat", "{}", 0).unwrap(), "[]");
    // Equal scores rank by insertion order.
    save(&mut s, &[rec("d3", "cat cat cat", "/", &[], 4.0, None)]);
    assert_eq!(ids_of(&s.search_text("cat", "{}", 2).unwrap()), ["d2", "d3"]);
    // Replacing and deleting keep the index consistent.
    save(&mut s, &[rec("d2", "no felines", "/", &[], 3.0, None)]);
    assert_eq!(ids_of(&s.search_text("cat", "{}", 5).unwrap()), ["d3", "d0"]);
    s.delete("{\"ids\":[\"d0\"]}").unwrap();
    s.check();
    assert_eq!(ids_of(&s.search_text("felines cat", "{}", 5).unwrap()), ["d3", "d2"]);
}

#[test]
fn dimension_and_vector_validation() {
    let (_dir, mut s) = open_temp("dims");
    assert_eq!(search(&mut s, &[1.0, 2.0], "{}", 5), "[]");
    let e2 = [1.0f32, 2.0];
    let e3 = [1.0f32, 2.0, 3.0];
    assert_eq!(
        s.save(&format!(
            "[{},{}]",
            rec("a", "", "/", &[], 1.0, Some(&e2)),
            rec("b", "", "/", &[], 1.0, Some(&e3))
        )),
        Err(MemError::DimensionMismatch { stored: 2, given: 3 })
    );
    assert_eq!(s.dimension(), None);
    assert_eq!(s.count(None).unwrap(), 0);
    save(&mut s, &[rec("a", "", "/", &[], 1.0, Some(&e2))]);
    assert_eq!(
        s.save(&format!("[{}]", rec("b", "", "/", &[], 1.0, Some(&e3)))),
        Err(MemError::DimensionMismatch { stored: 2, given: 3 })
    );
    assert_eq!(
        s.search(&b64(&e3), "{}", 5, 0.0),
        Err(MemError::DimensionMismatch { stored: 2, given: 3 })
    );
    assert_eq!(
        s.search("", "{}", 5, 0.0),
        Err(MemError::DimensionMismatch { stored: 2, given: 0 })
    );
    let nan = b64(&[f32::NAN, 1.0]);
    let inf = b64(&[1.0, f32::INFINITY]);
    for q in [nan.as_str(), inf.as_str(), "AAAA", "AAA=", "!!!!", "AAAAAAA="] {
        assert!(
            matches!(s.search(q, "{}", 5, 0.0), Err(MemError::InvalidInput(_))),
            "{q}"
        );
        let bad = rec("c", "", "/", &[], 1.0, None).replace("\"embedding\":null", &format!("\"embedding\":\"{q}\""));
        assert!(
            matches!(s.save(&format!("[{bad}]")), Err(MemError::InvalidInput(_))),
            "{q}"
        );
    }
    assert!(matches!(
        s.search(&b64(&e2), "{}", 5, f64::NAN),
        Err(MemError::InvalidInput(_))
    ));
    assert_eq!(s.count(None).unwrap(), 1);
    s.check();
}

#[test]
fn records_before_the_dimension_become_zero_vectors() {
    let (dir, mut s) = open_temp("predim");
    save(&mut s, &[rec("plain", "no vector", "/", &[], 1.0, None)]);
    assert_eq!(s.dimension(), None);
    assert_eq!(search(&mut s, &[1.0, 1.0], "{}", 5), "[]");
    save(&mut s, &[rec("v", "", "/", &[], 2.0, Some(&[3.0, 4.0]))]);
    assert_eq!(s.dimension(), Some(2));
    // |q - 0|^2 = 2, |q - (3,4)|^2 = 4 + 9 = 13.
    let r = search(&mut s, &[1.0, 1.0], "{}", 5);
    assert_eq!(ids_of(&r), ["plain", "v"]);
    assert_eq!(scores_of(&r), [1.0 / 3.0, 1.0 / 14.0]);
    // A mixed batch is judged against the store's dimension.
    assert_eq!(
        s.save(&format!(
            "[{},{}]",
            rec("x", "", "/", &[], 1.0, Some(&[1.0, 2.0, 3.0])),
            rec("y", "", "/", &[], 1.0, Some(&[1.0, 2.0]))
        )),
        Err(MemError::DimensionMismatch { stored: 2, given: 3 })
    );
    drop(s);
    let mut s = Store::open(&dir.db()).unwrap();
    s.check();
    assert_eq!(search(&mut s, &[1.0, 1.0], "{}", 5), r);
}

#[test]
fn malformed_records_are_rejected_without_side_effects() {
    let (_dir, mut s) = open_temp("malformed");
    let good = rec("ok", "x", "/", &[], 1.0, None);
    let cases = [
        "".to_owned(),
        "{}".to_owned(),
        "[1]".to_owned(),
        "[{\"id\":\"x\"}]".to_owned(),
        good.replace("\"id\":\"ok\"", "\"id\":1"),
        good.replace("\"scope\":\"/\"", "\"scope\":[]"),
        good.replace("\"categories\":[]", "\"categories\":[1]"),
        good.replace("\"metadata\":{}", "\"metadata\":[]"),
        good.replace("\"importance\":0.5", "\"importance\":\"high\""),
        good.replace("\"created_ts\":1.0", &format!("\"created_ts\":1{}", "0".repeat(400))),
        good.replace("\"private\":false", "\"private\":0"),
        good.replace("\"source\":null", "\"source\":3"),
        good.replace("\"private\":false", "\"private\":false,\"extra\":1"),
        good.replace("\"content\":\"x\",", ""),
        "[".to_owned() + &"[".repeat(10_000),
        "[\"\\ud800\"]".to_owned(),
    ];
    for case in &cases {
        let text = format!("[{good},{}]", case.trim_start_matches('[').trim_end_matches(']'));
        assert!(matches!(s.save(case), Err(MemError::InvalidInput(_))), "{case}");
        assert!(matches!(s.save(&text), Err(MemError::InvalidInput(_))), "{text}");
    }
    assert_eq!(s.count(None).unwrap(), 0);
    assert_eq!(s.save("[]").unwrap(), 0);
    // Odd but valid content is fine.
    let odd = "\u{0}\u{10FFFF}İ ΟΔΟΣ \u{200B}".repeat(1000);
    save(
        &mut s,
        &[rec("odd", &odd, "/ü/\u{1F600}", &["\u{1F600}"], -1e300, None)],
    );
    assert_eq!(ids_of(&s.search_text("οδος", "{}", 1).unwrap()), ["odd"]);
    assert!(s.get("odd").unwrap().unwrap().contains("\"created_ts\":-1e+300"));
    assert!(matches!(Store::open(""), Err(MemError::InvalidInput(_))));
    let not_db = _dir.0.join("not.db");
    std::fs::write(&not_db, b"this is not a database file at all, no, not at all").unwrap();
    assert!(matches!(
        Store::open(not_db.to_str().unwrap()),
        Err(MemError::Storage(_))
    ));
}

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
    let rows = (index::MAX_VECTOR_BYTES / (5 * 1536)) as usize;
    assert!(matches!(
        index.reserve(rows + 1, Some(1536)),
        Err(MemError::Capacity(_))
    ));
}

/// Random operations against a brute-force float64 model.
#[test]
fn randomized_against_reference() {
    let (_dir, mut s) = open_temp("random");
    let mut seed = 42u64;
    let mut rnd = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let dim = 19;
    let mut model: std::collections::HashMap<String, (Vec<f32>, String, f64)> = std::collections::HashMap::new();
    for round in 0..30 {
        let mut recs = Vec::new();
        for _ in 0..20 {
            let id = format!("id{}", rnd(120));
            let scale = [0.01f32, 1.0, 100.0][rnd(3) as usize];
            let e: Vec<f32> = (0..dim).map(|_| (rnd(2001) as f32 - 1000.0) / 1000.0 * scale).collect();
            let scope = format!("/s{}", rnd(4));
            let ts = rnd(50) as f64;
            recs.push(rec(
                &id,
                &format!("w{} w{}", rnd(10), rnd(10)),
                &scope,
                &[],
                ts,
                Some(&e),
            ));
            model.insert(id, (e, scope, ts));
        }
        save(&mut s, &recs);
        if round % 3 == 2 {
            let scope = format!("/s{}", rnd(4));
            let n = s
                .delete(&format!("{{\"scope_prefix\":\"{scope}\",\"older_than\":25}}"))
                .unwrap();
            let before = model.len();
            model.retain(|_, (_, sc, ts)| !(*sc == scope && *ts < 25.0));
            assert_eq!(n as usize, before - model.len());
            s.check();
        }
        let q: Vec<f32> = (0..dim).map(|_| (rnd(2001) as f32 - 1000.0) / 1000.0).collect();
        let filter_scope = format!("/s{}", rnd(4));
        for (filter, scope) in [
            ("{}".to_owned(), None),
            (format!("{{\"scope_prefix\":\"{filter_scope}\"}}"), Some(&filter_scope)),
        ] {
            let got = search(&mut s, &q, &filter, 7);
            let mut want: Vec<(f64, &String)> = model
                .iter()
                .filter(|(_, (_, sc, _))| scope.is_none_or(|p| sc == p))
                .map(|(id, (e, _, _))| {
                    let d: f64 = e
                        .iter()
                        .zip(&q)
                        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                        .sum();
                    (1.0 / (1.0 + d), id)
                })
                .collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0));
            want.truncate(7);
            let got_scores = scores_of(&got);
            assert_eq!(got_scores.len(), want.len());
            for (g, (w, _)) in got_scores.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
    }
    assert_eq!(s.count(None).unwrap() as usize, model.len());
}

#[test]
fn quantized_scan_matches_exact_scan() {
    // Whole 16-element blocks only, and blocks plus a tail.
    for dim in [96, 101] {
        quantized_scan_matches_exact_scan_at(dim);
    }
}

fn quantized_scan_matches_exact_scan_at(dim: usize) {
    let (dir, mut store) = open_temp("quantized");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut recs = Vec::new();
    for i in 0..1600 {
        let kind = (next() * 10.0) as u32;
        let v: Option<Vec<f32>> = match kind {
            // Small integers: many exactly tied distances.
            0 | 1 => Some((0..dim).map(|_| (next() * 3.0).floor() as f32 - 1.0).collect()),
            // A duplicate or a near-duplicate of an earlier vector.
            2 if !vectors.is_empty() => {
                let base = vectors[(next() * vectors.len() as f64) as usize].clone();
                Some(base.iter().map(|x| x + if next() < 0.5 { 0.0 } else { 1e-6 }).collect())
            }
            3 => Some(vec![0.0; dim]),
            4 => None,
            // Large and tiny magnitudes.
            5 => Some((0..dim).map(|_| ((next() - 0.5) * 1e4) as f32).collect()),
            6 => Some((0..dim).map(|_| ((next() - 0.5) * 1e-30) as f32).collect()),
            _ => Some((0..dim).map(|_| (next() - 0.5) as f32).collect()),
        };
        if let Some(v) = &v {
            vectors.push(v.clone());
        }
        let scope = ["/a", "/a/b", "/c"][i % 3];
        let cats: &[&str] = if i % 4 == 0 { &["x"] } else { &["y"] };
        recs.push(rec(&format!("r{i}"), "text", scope, cats, i as f64, v.as_deref()));
    }
    save(&mut store, &recs);
    // Replace some records and delete others to move rows around.
    let again: Vec<String> = (0..200)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| (next() - 0.5) as f32).collect();
            vectors.push(v.clone());
            rec(
                &format!("r{}", i * 7),
                "text",
                "/a",
                &["x"],
                5000.0 + i as f64,
                Some(&v),
            )
        })
        .collect();
    save(&mut store, &again);
    store.delete(r#"{"older_than": 100}"#).unwrap();
    store.check();
    let reopened = Store::open(&dir.db()).unwrap();
    reopened.check();
    let filters = [
        "{}",
        r#"{"scope_prefix": "/a"}"#,
        r#"{"categories": ["x"]}"#,
        r#"{"ids": ["r101", "r102", "r700", "r7", "nope"]}"#,
        r#"{"scope_prefix": "/c", "categories": ["y"]}"#,
    ];
    let mut compared = 0;
    for t in 0..60 {
        let q: Vec<f32> = match t % 6 {
            0 => vec![0.0; dim],
            1 | 2 => vectors[(next() * vectors.len() as f64) as usize].clone(),
            3 => (0..dim).map(|_| (next() * 3.0).floor() as f32 - 1.0).collect(),
            4 => (0..dim).map(|_| ((next() - 0.5) * 1e3) as f32).collect(),
            _ => (0..dim).map(|_| (next() - 0.5) as f32).collect(),
        };
        for f in filters {
            let filter = Filter::parse(f).unwrap();
            for k in [1usize, 3, 10, 57, 5000] {
                for min_score in [0.0, -1.0, 0.01, 0.2, 0.999_999, 1.0] {
                    for s in [&store, &reopened] {
                        let exact = vector_top_k_exact(&s.index, &q, &filter, k, min_score);
                        let fast = vector_top_k_quantized(&s.index, &q, &filter, k, min_score).unwrap();
                        let bits = |h: &[(usize, f64)]| -> Vec<(String, u64)> {
                            h.iter()
                                .map(|&(r, sc)| (s.index.record(r).id.clone(), sc.to_bits()))
                                .collect()
                        };
                        assert_eq!(
                            bits(&exact),
                            bits(&fast),
                            "dim {dim}, query {t}, filter {f}, k {k}, min {min_score}"
                        );
                        assert_eq!(bits(&vector_top_k(&s.index, &q, &filter, k, min_score)), bits(&exact));
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 0);
}

#[test]
fn quantize_bounds_hold() {
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    };
    // Float32's own range too: the residual is measured in float32.
    for (dim, magnitude) in [1usize, 15, 16, 17, 384, 1536]
        .into_iter()
        .flat_map(|d| [(d, 3.0f32), (d, 1e-36), (d, 1e36)])
    {
        let x: Vec<f32> = (0..dim).map(|_| next() * magnitude).collect();
        let mut q = vec![0i8; dim];
        let z = kernel::quantize(&x, &mut q);
        let r: f64 = x
            .iter()
            .zip(&q)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b) * f64::from(z.scale)).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(r <= z.err);
        let dot: i64 = q.iter().map(|&v| i64::from(v) * i64::from(v)).sum();
        assert_eq!(i64::from(z.sq), dot);
        assert_eq!(i64::from(z.sum), q.iter().map(|&v| i64::from(v)).sum::<i64>());
        // The query's 14-bit code: its residual bound holds, and its dot
        // product with the row's int8 copy is exact.
        let y: Vec<f32> = (0..dim).map(|_| next() * 5.0).collect();
        let code = kernel::QueryCode::new(&y);
        let big: Vec<f64> = y.iter().map(|&v| (f64::from(v) / code.scale).round()).collect();
        let ry: f64 = y
            .iter()
            .zip(&big)
            .map(|(a, b)| (f64::from(*a) - b * code.scale).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(ry <= code.err, "dim {dim}: {ry} > {}", code.err);
        assert!(code.err <= 1e-3 * kernel::norm(&y), "dim {dim}: {}", code.err);
        assert_eq!(code.sq, big.iter().map(|b| b * b).sum::<f64>());
        let want: f64 = big.iter().zip(&q).map(|(b, &v)| b * f64::from(v)).sum();
        let high = code.dot_high(&q, &z);
        assert_eq!(code.dot(&q, &z, high), want);
        // The coarse code: the high digits, `Q_i / 126` rounded.
        let digits: Vec<f64> = big.iter().map(|b| ((b + 63.0) / 126.0).floor()).collect();
        assert!(digits.iter().all(|d| d.abs() <= 63.0));
        assert_eq!(code.high_sq, digits.iter().map(|d| d * d).sum::<f64>());
        let high_want: f64 = digits.iter().zip(&q).map(|(d, &v)| d * f64::from(v)).sum();
        assert_eq!(high as f64, high_want);
        let rh: f64 = y
            .iter()
            .zip(&digits)
            .map(|(a, d)| (f64::from(*a) - 126.0 * d * code.scale).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(rh <= code.high_err, "dim {dim}: {rh} > {}", code.high_err);
    }
}
