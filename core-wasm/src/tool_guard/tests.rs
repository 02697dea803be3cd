//! The reader's contract, case by case.

use super::read::read;
use super::write::write_value;
use super::{canonicalize, repair, GuardError};

/// The value read (compact, document order) and the repair names.
fn ok(text: &str) -> (String, Vec<&'static str>) {
    let read = read(text).unwrap_or_else(|e| panic!("{text:?} was rejected: {e:?}"));
    let mut out = String::new();
    write_value(&mut out, &read.value, false);
    (out, read.repairs.iter().map(|r| r.name()).collect())
}

fn value(text: &str) -> String {
    ok(text).0
}

fn rejected(text: &str) -> (String, Option<usize>) {
    match read(text) {
        Err(GuardError::Unreadable { message, position }) => (message, position),
        other => panic!("{text:?} was read: {other:?}"),
    }
}

#[test]
fn valid_json_is_returned_unchanged_without_repairs() {
    for text in [
        r#"{"a":1}"#,
        r#"  {"query": "weather in Paris", "limit": 5}  "#,
        r#"[1, 2.5, -0.0, 1e5, true, false, null]"#,
        r#""a string""#,
        "42",
        "null",
        r#"{"nested": {"list": [{"x": "y"}]}}"#,
        r#"{"esc": "\n\t\"\\\/\u00e9\ud83d\ude00"}"#,
    ] {
        let (_, repairs) = ok(text);
        assert!(repairs.is_empty(), "{text:?}: {repairs:?}");
    }
    assert_eq!(value("[1, 2.5, -0.0, 1e5, -0]"), "[1,2.5,-0.0,100000.0,0]");
    assert_eq!(value(r#""é""#), r#""é""#);
}

#[test]
fn what_python_json_accepts_beyond_strict_json_needs_no_repair() {
    // Repeated keys (the last value, the first place), NaN, Infinity and
    // doubles that overflow are all read by Python's json.loads.
    assert_eq!(ok(r#"{"a": 1, "b": 2, "a": 3}"#), (r#"{"a":3,"b":2}"#.into(), vec![]));
    assert_eq!(ok(r#"{"a": NaN, "b": -Infinity, "c": Infinity}"#).1, Vec::<&str>::new());
    assert_eq!(
        value(r#"{"a": NaN, "b": -Infinity, "c": Infinity}"#),
        r#"{"a":NaN,"b":-Infinity,"c":Infinity}"#
    );
    assert_eq!(ok("[1e400, -1e400]"), ("[Infinity,-Infinity]".into(), vec![]));
}

#[test]
fn many_repeated_keys_take_the_last_value() {
    let members: Vec<String> = (0..40).map(|i| format!("\"k{}\": {i}", i % 20)).collect();
    let text = format!("{{{}}}", members.join(","));
    let expected: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{}", i + 20)).collect();
    assert_eq!(value(&text), format!("{{{}}}", expected.join(",")));
}

#[test]
fn python_literals() {
    assert_eq!(
        ok("{'a': None, 'b': True, 'c': False, 'd': 'x'}"),
        (
            r#"{"a":null,"b":true,"c":false,"d":"x"}"#.into(),
            vec!["single-quotes", "python-literal"]
        )
    );
    assert_eq!(ok(r#"{"a": None}"#), (r#"{"a":null}"#.into(), vec!["python-literal"]));
    assert_eq!(ok("[None, True]"), ("[null,true]".into(), vec!["python-literal"]));
    assert_eq!(
        value(r#"{'q': "it's", 'r': 'say "hi"'}"#),
        r#"{"q":"it's","r":"say \"hi\""}"#
    );
    assert_eq!(value(r"{'a': 'it\'s'}"), r#"{"a":"it's"}"#);
    assert_eq!(value(r"{'a': '\x41\n'}"), r#"{"a":"A\n"}"#);
}

#[test]
fn json5_habits() {
    assert_eq!(ok("{a: 1, b_2: 'x'}").1, vec!["unquoted-key", "single-quotes"]);
    assert_eq!(value("{a: 1, b_2: 'x', $c-d: 2}"), r#"{"a":1,"b_2":"x","$c-d":2}"#);
    assert_eq!(ok(r#"{"a": 1,}"#), (r#"{"a":1}"#.into(), vec!["trailing-comma"]));
    assert_eq!(ok("[1, 2, ]"), ("[1,2]".into(), vec!["trailing-comma"]));
    assert_eq!(
        ok("{\n  // the city\n  \"city\": \"Paris\", /* block */ \"n\": 2\n}"),
        (r#"{"city":"Paris","n":2}"#.into(), vec!["comment"])
    );
    assert_eq!(
        ok("[+1, .5, 5., 007, -0.]"),
        ("[1,0.5,5.0,7,-0.0]".into(), vec!["number"])
    );
    assert_eq!(ok("[+Infinity]"), ("[Infinity]".into(), vec!["number"]));
}

#[test]
fn fenced_and_prose_wrapped() {
    let fenced = "Here you go:\n```json\n{\"a\": 1}\n```\nAnything else?";
    assert_eq!(ok(fenced), (r#"{"a":1}"#.into(), vec!["fence"]));
    assert_eq!(ok("```\n[1, 2]\n```"), ("[1,2]".into(), vec!["fence"]));
    assert_eq!(ok("```json {\"a\": 1}```"), (r#"{"a":1}"#.into(), vec!["fence"]));
    assert_eq!(
        ok("```json\n{\"a\": 1"),
        (r#"{"a":1}"#.into(), vec!["fence", "truncated"])
    );
    assert_eq!(
        ok("Sure! The arguments are {\"q\": \"x\"}. Hope that helps."),
        (r#"{"q":"x"}"#.into(), vec!["extract"])
    );
    assert_eq!(ok(r#"{"a": 1} trailing words"#), (r#"{"a":1}"#.into(), vec!["extract"]));
    // A bracket in prose that does not read is skipped.
    assert_eq!(value(r#"I think [see below] is {"a": 1}"#), r#"{"a":1}"#);
    // A fence inside a string of an object is not a fence.
    assert_eq!(
        value("{'code': '```json\\n{\"x\": 1}\\n```'}"),
        r#"{"code":"```json\n{\"x\": 1}\n```"}"#
    );
}

#[test]
fn truncated_input_is_closed() {
    for (text, expected) in [
        (r#"{"a": 1"#, r#"{"a":1}"#),
        (r#"{"a": "abc"#, r#"{"a":"abc"}"#),
        (r#"{"a": [1, 2"#, r#"{"a":[1,2]}"#),
        (r#"{"a": {"b": {"c": "d"#, r#"{"a":{"b":{"c":"d"}}}"#),
        (r#"{"a": 1, "b"#, r#"{"a":1}"#),
        (r#"{"a": 1, "b":"#, r#"{"a":1}"#),
        (r#"{"a": 1, "b": "#, r#"{"a":1}"#),
        (r#"{"a": 1, "#, r#"{"a":1}"#),
        (r#"{"a": tru"#, r#"{"a":true}"#),
        (r#"{"a": Non"#, r#"{"a":null}"#),
        (r#"{"a": -"#, "{}"),
        (r#"{"a": 1.5e"#, r#"{"a":1.5}"#),
        (r#"{"a": "x\"#, r#"{"a":"x"}"#),
        (r#"{"a": "\u00"#, r#"{"a":""}"#),
        ("[1, 2, ", "[1,2]"),
        ("[", "[]"),
        ("{", "{}"),
        ("[tr", "[true]"),
    ] {
        let (got, repairs) = ok(text);
        assert_eq!(got, expected, "{text:?}");
        assert!(repairs.contains(&"truncated"), "{text:?}: {repairs:?}");
    }
}

#[test]
fn strings_with_llm_mistakes() {
    assert_eq!(
        ok(r#"{"a": "He said "hi" to me"}"#),
        (r#"{"a":"He said \"hi\" to me"}"#.into(), vec!["inner-quote"])
    );
    assert_eq!(
        ok("{\"a\": \"line1\nline2\"}"),
        (r#"{"a":"line1\nline2"}"#.into(), vec!["escape"])
    );
    assert_eq!(
        ok(r#"{"a": "C:\path"}"#),
        (r#"{"a":"C:\\path"}"#.into(), vec!["escape"])
    );
    assert_eq!(
        ok(r#"{"a": "\ud800x"}"#),
        ("{\"a\":\"\u{FFFD}x\"}".into(), vec!["lone-surrogate"])
    );
    assert_eq!(ok(r#"{"a": "\udc00\ud83d\ude00"}"#).0, "{\"a\":\"\u{FFFD}😀\"}");
}

#[test]
fn unquoted_values_and_missing_commas() {
    assert_eq!(
        ok("{name: John Smith, age: 30}"),
        (
            r#"{"name":"John Smith","age":30}"#.into(),
            vec!["unquoted-key", "unquoted-value"]
        )
    );
    assert_eq!(value("{a: True story}"), r#"{"a":"True story"}"#);
    assert_eq!(value("{a: 5 apples}"), r#"{"a":"5 apples"}"#);
    assert_eq!(value("{url: http://x.org/a}"), r#"{"url":"http://x.org/a"}"#);
    assert_eq!(value("{a: None , b: 1}"), r#"{"a":null,"b":1}"#);
    assert_eq!(
        ok("{\"a\": 1\n\"b\": 2}"),
        (r#"{"a":1,"b":2}"#.into(), vec!["missing-comma"])
    );
    assert_eq!(ok(r#"{"a": "x" "b": 2}"#).0, r#"{"a":"x","b":2}"#);
    assert_eq!(
        ok("[1 2 {\"a\": 3}]"),
        (r#"[1,2,{"a":3}]"#.into(), vec!["missing-comma"])
    );
}

#[test]
fn what_cannot_be_read_says_where() {
    assert_eq!(rejected("hello world"), ("no JSON object or array found".into(), None));
    assert_eq!(rejected(""), ("no JSON object or array found".into(), None));
    assert_eq!(rejected("NaN"), ("no JSON object or array found".into(), None));
    let (message, position) = rejected(r#"{"a" 1}"#);
    assert_eq!(
        (message.as_str(), position),
        ("expecting ':' after a property name", Some(5))
    );
    // Code points, not bytes.
    assert_eq!(rejected(r#"{"é" 1}"#).1, Some(5));
    assert_eq!(rejected("{: 1}").0, "expecting a property name");
    assert_eq!(rejected("[1, }").0, "expecting a value");
    assert_eq!(rejected("{\"a\": }").0, "expecting a value");
    assert_eq!(rejected("[1e+]").0, "expecting a digit in the exponent");
    // The first candidate's failure is the one reported.
    assert_eq!(rejected("[x] and [y]"), ("expecting a value".into(), Some(1)));
}

#[test]
fn limits_are_errors_not_crashes() {
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    assert!(rejected(&deep).0.contains("nesting deeper than 256"));
    let deep_open = "{\"a\":".repeat(100_000);
    assert!(read(&deep_open).is_err());
    let long_int = format!("[{}]", "7".repeat(4301));
    assert!(rejected(&long_int).0.contains("4300 digits"));
    // Leading zeros do not count.
    assert_eq!(value(&format!("[0{}]", "7".repeat(4300))).len(), 4302);
    // A text full of brackets that never read costs a bounded number of tries.
    let noisy = "[x ".repeat(50_000);
    assert!(read(&noisy).is_err());
}

#[test]
fn huge_inputs_read_in_one_pass() {
    let big: Vec<String> = (0..20_000).map(|i| format!("'k{i}': 'v{i}'")).collect();
    let text = format!("{{{}}}", big.join(", "));
    let (out, repairs) = ok(&text);
    assert_eq!(repairs, vec!["single-quotes"]);
    assert!(out.starts_with(r#"{"k0":"v0","k1":"v1""#));
}

#[test]
fn canonical_form_sorts_keys_at_every_level() {
    assert_eq!(
        canonicalize(r#"{"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": 1.0}}"#).unwrap(),
        r#"{"a":{"c":1.0,"d":[{"y":2,"z":1}]},"b":1}"#
    );
    assert_eq!(
        canonicalize("{b: 1, 'a': None}").unwrap(),
        canonicalize(r#"{"a":null,"b":1}"#).unwrap()
    );
    // Code-point order: "Z" < "a" < "é" < "😀".
    assert_eq!(
        canonicalize(r#"{"😀":1,"é":2,"a":3,"Z":4}"#).unwrap(),
        r#"{"Z":4,"a":3,"é":2,"😀":1}"#
    );
    assert!(canonicalize("nothing here").is_err());
}

#[test]
fn repair_result_is_one_json_object() {
    assert_eq!(
        repair("{'a': None}", None).unwrap(),
        r#"{"value":{"a":null},"repairs":["single-quotes","python-literal"]}"#
    );
    assert_eq!(repair(r#"{"a":1}"#, None).unwrap(), r#"{"value":{"a":1},"repairs":[]}"#);
    assert_eq!(
        repair(r#"{"a":"x"}"#, Some(r#"{"properties":{"a":{"type":"integer"}}}"#)).unwrap(),
        r#"{"value":{"a":"x"},"repairs":[],"errors":[{"path":"/a","message":"expected integer, got string"}]}"#
    );
    assert_eq!(
        repair("{a: 1}", Some("{}")).unwrap(),
        r#"{"value":{"a":1},"repairs":["unquoted-key"],"errors":[]}"#
    );
}

#[test]
fn the_reader_never_panics_on_mangled_input() {
    // Every prefix and every one-byte deletion of a set of messy texts.
    let samples = [
        "Thought: ok\n```json\n{'a': [1, 2.5e3, None], \"b\": {c: \"x\\u00e9\\ud83d\\ude00\"}, // c\n d: True,}\n```",
        "{\"q\": \"He said \"hi\"\", n: +.5, /* x */ 'k': '\\x4', e: 1e}",
        "prose [x] {a: b c, \"d\": [1 2 3] 'e' : 'f\\'g'} tail",
    ];
    for sample in samples {
        let chars: Vec<(usize, char)> = sample.char_indices().collect();
        for (i, _) in &chars {
            let _ = read(&sample[..*i]);
            let mut cut = sample[..*i].to_owned();
            let rest: String = sample[*i..].chars().skip(1).collect();
            cut.push_str(&rest);
            let _ = read(&cut);
        }
    }
}

/// A small deterministic generator of JSON texts with awkward strings.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn string(&mut self) -> String {
        const PIECES: [&str; 14] = [
            "a",
            "Z",
            " ",
            "\\\"",
            "\\\\",
            "\\n",
            "\\u00e9",
            "é",
            "😀",
            "\\ud83d\\ude00",
            "'",
            ",",
            "}",
            ": ",
        ];
        let len = self.next(6);
        let body: String = (0..len).map(|_| PIECES[self.next(14) as usize]).collect();
        format!("\"{body}\"")
    }

    fn value(&mut self, depth: u32) -> String {
        let ws = [" ", "", "\n  ", "\t"][self.next(4) as usize];
        match self.next(if depth > 3 { 6 } else { 8 }) {
            0 => "null".into(),
            1 => ["true", "false"][self.next(2) as usize].into(),
            2 => [
                "0",
                "-0",
                "17",
                "-12345678901234567890",
                "1.5",
                "-0.0",
                "2.5e-7",
                "1E+20",
            ][self.next(8) as usize]
                .into(),
            3 | 4 => self.string(),
            5 => format!("{}", self.next(1000)),
            6 => {
                let items: Vec<String> = (0..self.next(4)).map(|_| self.value(depth + 1)).collect();
                format!("[{ws}{}{ws}]", items.join(&format!(",{ws}")))
            }
            _ => {
                let members: Vec<String> = (0..self.next(4))
                    .map(|_| format!("{}{ws}:{ws}{}", self.string(), self.value(depth + 1)))
                    .collect();
                format!("{{{ws}{}{ws}}}", members.join(&format!(",{ws}")))
            }
        }
    }
}

#[test]
fn the_lenient_path_reads_valid_json_exactly_as_python_does() {
    // A NaN member sends a valid document down the lenient path (strict
    // JSON refuses NaN, Python accepts it); the rest must read unchanged.
    let mut gen = Gen(7);
    for _ in 0..3000 {
        let inner = gen.value(0);
        let doc = format!("{{\"a\": {inner}, \"n\": NaN}}");
        let strict = crate::json::parse(&format!("{{\"a\": {inner}}}"));
        let Ok(crate::json::Value::Object(expected)) = strict else {
            continue; // repeated keys: not strict JSON, nothing to compare
        };
        let read = read(&doc).unwrap_or_else(|e| panic!("{doc}: {e:?}"));
        assert!(read.repairs.is_empty(), "{doc}: {:?}", read.repairs);
        let crate::json::Value::Object(members) = read.value else {
            panic!()
        };
        assert_eq!(members[0], expected[0], "{doc}");
    }
}

#[test]
fn fenced_or_wrapped_valid_json_reads_to_the_same_value() {
    let mut gen = Gen(11);
    for _ in 0..2000 {
        let inner = gen.value(0);
        let doc = format!("{{\"a\": {inner}}}");
        let Ok(expected) = crate::json::parse(&doc) else {
            continue;
        };
        for wrapped in [
            format!("```json\n{doc}\n```"),
            format!("Here are the arguments:\n{doc}\nLet me know."),
            format!("{doc} // done"),
        ] {
            let read = read(&wrapped).unwrap_or_else(|e| panic!("{wrapped}: {e:?}"));
            assert_eq!(read.value, expected, "{wrapped}");
        }
    }
}

#[test]
fn a_comment_after_an_unquoted_value_ends_it() {
    assert_eq!(ok("{\"a\": 1 // one\n}"), (r#"{"a":1}"#.into(), vec!["comment"]));
    assert_eq!(value("{a: some text /* why */}"), r#"{"a":"some text"}"#);
    assert_eq!(value("{a: http://x.org//b}"), r#"{"a":"http://x.org//b"}"#);
}
