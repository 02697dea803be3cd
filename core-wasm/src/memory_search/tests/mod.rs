use super::filter::Filter;
use super::index::Index;
use super::search::{vector_top_k, vector_top_k_exact, vector_top_k_quantized};
use super::*;
use crate::json::json_eq;
use rusqlite::Connection;
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

mod calls;
mod persistence;
mod read_only;
mod scan;
