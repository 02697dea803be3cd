use std::fmt::Write as _;

use super::read::needs_care;
use super::*;

fn canon(text: &str) -> String {
    to_string(&parse(text).unwrap())
}

#[test]
fn floats_are_written_like_python_repr() {
    for (input, expected) in [
        ("1.0", "1.0"),
        ("1.50", "1.5"),
        ("1e16", "1e+16"),
        ("1E15", "1000000000000000.0"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("-0.0", "-0.0"),
        ("123456789.125", "123456789.125"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("5e-324", "5e-324"),
        ("0.1", "0.1"),
        ("2.5e-7", "2.5e-07"),
    ] {
        assert_eq!(canon(input), expected, "{input}");
    }
}

#[test]
fn integers_keep_their_digits() {
    let big = "123456789012345678901234567890";
    assert_eq!(canon(big), big);
    assert_eq!(canon("-0"), "0");
    assert!(parse(&"9".repeat(MAX_INT_DIGITS + 1)).is_err());
}

#[test]
fn strings_escape_like_python() {
    assert_eq!(
        canon(r#""a\u0001\n\"\\\/é\ud83d\ude00""#),
        "\"a\\u0001\\n\\\"\\\\/é😀\""
    );
}

#[test]
fn rejects_what_strict_json_rejects() {
    for bad in [
        "",
        "[1,]",
        "{\"a\":1,\"a\":2}",
        "NaN",
        "[Infinity]",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\ud800\\u0041\"",
        "01",
        "1.",
        "1e",
        "\"a\u{1}\"",
        "[1] 2",
        "{a:1}",
        "1e400",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn positions_count_code_points() {
    let err = parse("[\"é😀\", x]").unwrap_err();
    assert_eq!(err.position, 7);
}

#[test]
fn the_word_scan_flags_exactly_the_bytes_that_need_care() {
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    for b in 0..=255u8 {
        for at in 0..8 {
            let mut word = [b'a'; 8];
            word[at] = b;
            assert_eq!(needs_care(u64::from_le_bytes(word)), special(b), "byte {b} at {at}");
        }
    }
    let mut seed = 99u64;
    for _ in 0..100_000 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let word = seed.to_le_bytes();
        assert_eq!(needs_care(seed), word.iter().any(|&b| special(b)));
    }
    let long = format!("\"{}\\n{}\"", "x".repeat(37), "é".repeat(9));
    assert_eq!(
        parse(&long).unwrap(),
        Value::String(format!("{}\n{}", "x".repeat(37), "é".repeat(9)))
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = "[".repeat(100_000);
    let err = parse(&text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooDeep);
    assert_eq!(err.position, MAX_DEPTH);
}

#[test]
fn depth_limit_edges() {
    let nested = |n: usize, inner: &str| format!("{}{inner}{}", "[".repeat(n), "]".repeat(n));
    assert!(parse(&nested(MAX_DEPTH, "1")).is_ok());
    assert!(parse(&nested(MAX_DEPTH, "")).is_ok());
    let err = parse(&nested(MAX_DEPTH + 1, "")).unwrap_err();
    assert_eq!((err.kind, err.position), (ErrorKind::TooDeep, MAX_DEPTH));
    let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    assert!(parse(&objects).is_ok());
    let objects = format!("[{objects}]");
    assert_eq!(parse(&objects).unwrap_err().kind, ErrorKind::TooDeep);
    // A fault before the bracket that goes too deep is reported first.
    let early = format!("{}x[", "[".repeat(MAX_DEPTH));
    assert_eq!(parse(&early).unwrap_err().kind, ErrorKind::Syntax);
}

fn object_of(n: usize, key: impl Fn(usize) -> String) -> String {
    let mut text = String::from("{");
    for i in 0..n {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(text, "\"{}\":{i}", key(i));
    }
    text.push('}');
    text
}

#[test]
fn member_limit_edges() {
    let Value::Object(members) = parse(&object_of(MAX_MEMBERS, |i| format!("k{i}"))).unwrap() else {
        panic!()
    };
    assert_eq!(members.len(), MAX_MEMBERS);
    let err = parse(&format!("[{}]", object_of(MAX_MEMBERS + 1, |i| format!("k{i}")))).unwrap_err();
    assert_eq!((err.kind, err.position), (ErrorKind::TooLarge, 1));
}

#[test]
fn huge_objects_are_linearithmic() {
    // 200k keys compared pairwise took ~90 s in the core; sorted, a few ms.
    let text = object_of(200_000, |i| format!("key-{i}"));
    let started = std::time::Instant::now();
    assert_eq!(parse(&text).unwrap_err().kind, ErrorKind::TooLarge);
    let text = object_of(MAX_MEMBERS, |i| format!("key-{}", (i * 7919) % MAX_MEMBERS));
    assert!(parse(&text).is_ok());
    let mut dup = object_of(MAX_MEMBERS - 1, |i| format!("key-{i}"));
    dup.insert_str(dup.len() - 1, ",\"key-5\":0");
    let err = parse(&dup).unwrap_err();
    assert_eq!(err.message, "duplicate key \"key-5\"");
    assert_eq!(err.position, dup.rfind("\"key-5\"").unwrap());
    assert!(started.elapsed().as_secs_f64() < 1.0, "{:?}", started.elapsed());
}

#[test]
fn the_first_repeated_key_in_document_order_is_reported() {
    let keys = [
        "q", "b", "a", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "a", "b",
    ];
    let text = object_of(keys.len(), |i| keys[i].to_owned());
    let err = parse(&text).unwrap_err();
    assert_eq!(err.message, "duplicate key \"a\"");
    assert_eq!(err.position, text.find("\"a\":17").unwrap());
    assert_eq!(parse(r#"{"b":1,"a":2,"b":3,"a":4}"#).unwrap_err().position, 13);
    // Keys are checked when the object closes, as Python's object_pairs_hook sees them.
    let err = parse(r#"{"a":1,"a":2,"#).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Syntax);
    assert!(!err.message.contains("duplicate"), "{err:?}");
    assert!(parse(r#"{"a":{"b":1},"b":{"a":2},"c":{"a":{"a":3}}}"#).is_ok());
}

#[test]
fn size_limit() {
    let err = parse_limited("[1, 2]", 5).unwrap_err();
    assert_eq!((err.kind, err.position), (ErrorKind::TooLarge, 0));
    assert!(parse_limited("[1,2]", 5).is_ok());
}
