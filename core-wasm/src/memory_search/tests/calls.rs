//! The calls of the store, one behaviour at a time.

use super::*;

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
fn scopes_without_a_leading_slash_are_rooted() {
    let (_dir, mut s) = open_temp("rooted");
    save(
        &mut s,
        &[
            rec("1", "", "a/b", &["x"], 1.0, None),
            rec("2", "", "", &[], 2.0, None),
            rec("3", "", "/a", &[], 3.0, None),
        ],
    );
    let scope_of = |s: &mut Store, id: &str| match json::parse(&s.get(id).unwrap().unwrap()).unwrap().get("scope") {
        Some(Value::String(scope)) => scope.clone(),
        other => panic!("scope {other:?}"),
    };
    assert_eq!(scope_of(&mut s, "1"), "/a/b");
    assert_eq!(scope_of(&mut s, "2"), "/");
    for prefix in ["a", "/a", "a/", "/a/"] {
        assert_eq!(ids_of(&s.list(Some(prefix), 10, 0).unwrap()), ["3", "1"], "{prefix}");
        assert_eq!(s.count(Some(prefix)).unwrap(), 2, "{prefix}");
    }
    assert_eq!(ids_of(&s.list(Some("a/b"), 10, 0).unwrap()), ["1"]);
    assert_eq!(s.list_scopes("a").unwrap(), "[\"/a/b\"]");
    assert_eq!(s.list_scopes("").unwrap(), "[\"/a\"]");
    assert!(s.scope_info("a").unwrap().starts_with("{\"record_count\":2,"));
    assert_eq!(s.list_categories(Some("a/b")).unwrap(), "{\"x\":1}");
    assert_eq!(s.delete("{\"scope_prefix\":\"a/b\"}").unwrap(), 1);
    s.reset(Some("a")).unwrap();
    assert_eq!(ids_of(&s.list(None, 10, 0).unwrap()), ["2"]);
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
fn records_too_large_to_read_back_are_refused() {
    let (_dir, mut s) = open_temp("large");
    let limit = super::super::constants::constants().max_record_bytes as usize;
    save(&mut s, &[rec("x", "", "/", &[], 1.0, Some(&[1.0, 2.0]))]);
    let base = s.get("x").unwrap().unwrap().len();
    let content = "a".repeat(limit - base);
    save(&mut s, &[rec("x", &content, "/", &[], 1.0, Some(&[1.0, 2.0]))]);
    assert_eq!(s.get("x").unwrap().unwrap().len(), limit);
    // One byte more, or one escaped character more, is refused, and the
    // batch saves nothing.
    for content in [format!("{content}a"), format!("{}\"", &content[1..])] {
        let batch = [
            rec("y", "fine", "/", &[], 1.0, None),
            rec("x", &content, "/", &[], 1.0, Some(&[1.0, 2.0])),
        ];
        let err = s.save(&format!("[{}]", batch.join(","))).unwrap_err();
        assert!(
            matches!(&err, MemError::RecordTooLarge(m) if m.contains("records[1]")),
            "{err}"
        );
    }
    assert_eq!(s.count(None).unwrap(), 1);
    // Touching it with a longer timestamp would grow it past the limit too.
    assert!(matches!(s.touch("[\"x\"]", "t1+"), Err(MemError::RecordTooLarge(_))));
    assert_eq!(s.touch("[\"x\"]", "t2"), Ok(1));
}

#[test]
fn results_past_the_limit_are_refused_without_building_them() {
    let (_dir, mut s) = open_temp("results");
    let c = super::super::constants::constants();
    // Eight records just under the record limit: seven fit in one result,
    // eight do not.
    let content = "word ".repeat((c.max_record_bytes as usize - 400) / 5);
    let recs: Vec<String> = (0..8)
        .map(|i| rec(&format!("r{i}"), &content, "/", &[], i as f64, Some(&[i as f32])))
        .collect();
    for r in &recs {
        save(&mut s, std::slice::from_ref(r));
    }
    assert_eq!(ids_of(&s.list(None, 7, 0).unwrap()).len(), 7);
    assert_eq!(ids_of(&s.search_text("word", "{}", 7).unwrap()).len(), 7);
    assert!(matches!(s.list(None, 8, 0), Err(MemError::ResultTooLarge(_))));
    assert!(matches!(
        s.search_text("word", "{}", 8),
        Err(MemError::ResultTooLarge(_))
    ));
    assert!(matches!(search_result(&mut s, 8), Err(MemError::ResultTooLarge(_))));
    assert_eq!(s.delete("{\"ids\":[\"r0\"]}").unwrap(), 1);
    assert_eq!(ids_of(&s.list(None, 8, 0).unwrap()).len(), 7);
}

fn search_result(s: &mut Store, limit: u32) -> Result<String, MemError> {
    s.search(&b64(&[1.0]), "{}", limit, 0.0)
}

/// `[id, version, score]` triples as (id, version, score).
fn hit_triples(text: &str) -> Vec<(String, u64, f64)> {
    let Value::Array(items) = json::parse(text).unwrap() else {
        panic!("not an array: {text}")
    };
    items
        .iter()
        .map(|item| match item {
            Value::Array(t) => match (&t[0], &t[1], &t[2]) {
                (Value::String(id), Value::Number(json::Number::Integer(v)), score) => {
                    (id.clone(), v.parse().unwrap(), score.as_f64().unwrap())
                }
                _ => panic!("not a triple: {text}"),
            },
            _ => panic!("not a triple: {text}"),
        })
        .collect()
}

#[test]
fn hits_name_the_records_search_returns_and_records_fetches_them() {
    let (_dir, mut s) = open_temp("hits");
    let recs: Vec<String> = (0..40)
        .map(|i| {
            let v = [i as f32 * 0.25, 1.0 - i as f32 * 0.1, 0.5];
            rec(
                &format!("r{i}"),
                &format!("word{} common", i % 5),
                "/crew/a",
                &["c"],
                i as f64,
                Some(&v),
            )
        })
        .collect();
    save(&mut s, &recs);
    let q = b64(&[1.0, 0.0, 0.5]);
    for (filter, limit, min_score) in [("{}", 10, 0.0), ("{\"ids\":[\"r3\",\"r9\"]}", 5, 0.0), ("{}", 40, 0.3)] {
        let full = s.search(&q, filter, limit, min_score).unwrap();
        let hits = hit_triples(&s.search_hits(&q, filter, limit, min_score).unwrap());
        assert_eq!(hits.iter().map(|h| h.0.clone()).collect::<Vec<_>>(), ids_of(&full));
        assert_eq!(hits.iter().map(|h| h.2).collect::<Vec<_>>(), scores_of(&full));
        // records() gives the same records, with the same versions.
        let ids: Vec<String> = hits.iter().map(|h| jstr(&h.0)).collect();
        let fetched = s.records(&format!("[{},\"missing\"]", ids.join(","))).unwrap();
        let Value::Array(pairs) = json::parse(&fetched).unwrap() else {
            panic!()
        };
        assert_eq!(pairs.len(), hits.len() + 1);
        assert_eq!(pairs.last(), Some(&Value::Null));
        let Value::Array(full_pairs) = json::parse(&full).unwrap() else {
            panic!()
        };
        for ((pair, hit), full_pair) in pairs.iter().zip(&hits).zip(&full_pairs) {
            let (Value::Array(pair), Value::Array(full_pair)) = (pair, full_pair) else {
                panic!()
            };
            assert_eq!(pair[0].as_f64().unwrap() as u64, hit.1);
            assert_eq!(pair[1], full_pair[0]);
        }
    }
    let text = hit_triples(&s.search_text_hits("word3", "{}", 10).unwrap());
    assert_eq!(
        text.iter().map(|h| h.0.clone()).collect::<Vec<_>>(),
        ids_of(&s.search_text("word3", "{}", 10).unwrap())
    );
    assert!(s.records("[1]").is_err() && s.records("{}").is_err());
}

#[test]
fn a_records_version_changes_with_every_write_and_is_never_reused() {
    let (dir, mut s) = open_temp("versions");
    let v = [1.0f32, 0.0];
    save(
        &mut s,
        &[
            rec("a", "x", "/s", &[], 1.0, Some(&v)),
            rec("b", "y", "/s", &[], 2.0, Some(&v)),
        ],
    );
    let version = |s: &mut Store, id: &str| -> u64 {
        let text = s.records(&format!("[{}]", jstr(id))).unwrap();
        let Value::Array(pairs) = json::parse(&text).unwrap() else {
            panic!()
        };
        let Value::Array(pair) = &pairs[0] else { panic!() };
        pair[0].as_f64().unwrap() as u64
    };
    let mut seen = std::collections::HashSet::new();
    let (a0, b0) = (version(&mut s, "a"), version(&mut s, "b"));
    assert!(seen.insert(a0) && seen.insert(b0));
    // Reading changes nothing.
    s.search(&b64(&v), "{}", 2, 0.0).unwrap();
    assert_eq!(version(&mut s, "a"), a0);
    s.touch("[\"a\"]", "later").unwrap();
    let a1 = version(&mut s, "a");
    assert!(seen.insert(a1));
    assert_eq!(version(&mut s, "b"), b0);
    save(&mut s, &[rec("b", "y2", "/s", &[], 2.0, Some(&v))]);
    let b1 = version(&mut s, "b");
    assert!(seen.insert(b1));
    // Deleting a row moves another into its place: versions follow records.
    s.delete("{\"ids\":[\"a\"]}").unwrap();
    assert_eq!(version(&mut s, "b"), b1);
    // Another connection's commit: the record it wrote is new, the others
    // are as they were.
    let mut other = Store::open(&dir.db()).unwrap();
    save(&mut other, &[rec("c", "z", "/s", &[], 3.0, Some(&v))]);
    assert!(s.refresh().unwrap());
    assert_eq!(version(&mut s, "b"), b1);
    assert!(seen.insert(version(&mut s, "c")));
    // A reload makes every record new.
    s.reset(None).unwrap();
    save(&mut other, &[rec("d", "z", "/s", &[], 3.0, Some(&v))]);
    assert!(s.refresh().unwrap());
    assert!(seen.insert(version(&mut s, "d")));
}

#[test]
fn a_packed_batch_saves_what_the_same_batch_saves_as_json() {
    let (_a, mut json_store) = open_temp("unpacked");
    let (_b, mut packed_store) = open_temp("packed");
    let vectors: Vec<[f32; 3]> = (0..6).map(|i| [i as f32, 1.5, -0.25 * i as f32]).collect();
    let embedded = |i: usize| (i % 3 != 1).then(|| &vectors[i][..]);
    let recs: Vec<String> = (0..6)
        .map(|i| {
            rec(
                &format!("r{i}"),
                &format!("word{i}"),
                "/s",
                &["c"],
                i as f64,
                embedded(i),
            )
        })
        .collect();
    save(&mut json_store, &recs);
    // The same records, each embedding replaced by its count of values.
    let mut block: Vec<f32> = Vec::new();
    let counted: Vec<String> = (0..6)
        .map(|i| {
            let text = rec(&format!("r{i}"), &format!("word{i}"), "/s", &["c"], i as f64, None);
            match embedded(i) {
                Some(v) => {
                    block.extend_from_slice(v);
                    text.replace("\"embedding\":null", "\"embedding\":3")
                }
                None if i == 4 => text.replace("\"embedding\":null", "\"embedding\":0"),
                None => text,
            }
        })
        .collect();
    let batch = format!("[{}]", counted.join(","));
    assert_eq!(packed_store.save_packed(&batch, &b64(&block)).unwrap(), 6);
    packed_store.check();
    assert_eq!(
        packed_store.list(None, 100, 0).unwrap(),
        json_store.list(None, 100, 0).unwrap()
    );
    // Too few values, too many, a non-finite one, a count of the wrong
    // type, another dimension: refused, nothing written.
    let (_c, mut s) = open_temp("packed-errors");
    let one = rec("x", "w", "/s", &[], 0.0, None).replace("\"embedding\":null", "\"embedding\":2");
    let one = format!("[{one}]");
    for (records, vectors) in [
        (one.as_str(), b64(&[1.0])),
        (one.as_str(), b64(&[1.0, 2.0, 3.0])),
        (one.as_str(), b64(&[1.0, f32::NAN])),
        (
            &one.replace("\"embedding\":2", "\"embedding\":\"2\"") as &str,
            b64(&[1.0, 2.0]),
        ),
        (
            &one.replace("\"embedding\":2", "\"embedding\":-1") as &str,
            b64(&[1.0, 2.0]),
        ),
        (one.as_str(), "not base64".to_owned()),
    ] {
        assert!(
            matches!(s.save_packed(records, &vectors), Err(MemError::InvalidInput(_))),
            "{records} {vectors}"
        );
    }
    assert_eq!(s.count(None).unwrap(), 0);
    s.save_packed(&one, &b64(&[1.0, 2.0])).unwrap();
    let three = one
        .replace("\"embedding\":2", "\"embedding\":3")
        .replace("\"x\"", "\"y\"");
    assert!(matches!(
        s.save_packed(&three, &b64(&[1.0, 2.0, 3.0])),
        Err(MemError::DimensionMismatch { stored: 2, given: 3 })
    ));
}
