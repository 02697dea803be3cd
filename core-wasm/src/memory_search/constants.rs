//! What both backends must agree on, written once: the schema
//! (`schema.sql`) and the constants (`constants.json`) live in the Python
//! package `fast_crewai/memory_search/`, which the Python reference reads at
//! import; the core embeds the same files at compile time.

use std::sync::OnceLock;

use crate::json::{self, Value};

/// The statements that create the store's tables (idempotent).
pub const SCHEMA: &str = include_str!("../../../python/fast_crewai/memory_search/schema.sql");
/// The migrations of older files: each brings a file whose
/// `schema_version` is below its number up to it.
pub const MIGRATIONS: [(i64, &str); 1] = [(
    2,
    include_str!("../../../python/fast_crewai/memory_search/migrate_2.sql"),
)];
const CONSTANTS: &str = include_str!("../../../python/fast_crewai/memory_search/constants.json");

/// The shared constants; see `constants.json` and the Python package's
/// `_contract.py` for what each means.
#[derive(Debug)]
pub struct Constants {
    /// The `schema_version` this version writes and reads.
    pub schema_version: i64,
    /// `PRAGMA journal_mode` of every connection.
    pub journal_mode: String,
    /// `PRAGMA page_size` of a new file.
    pub page_size: u32,
    /// `PRAGMA synchronous` of every connection.
    pub synchronous: String,
    /// `PRAGMA cache_size` of every connection (negative: KiB).
    pub cache_size: i64,
    /// `PRAGMA temp_store` of every connection: temporary data (statement
    /// journals, sorts) stays in memory, where the component has no
    /// temporary directory.
    pub temp_store: String,
    /// How many rows the change log keeps.
    pub change_log_rows: i64,
    /// How long a connection waits for another's lock.
    pub busy_timeout_ms: u64,
    /// BM25 term-frequency saturation.
    pub bm25_k1: f64,
    /// BM25 length normalisation.
    pub bm25_b: f64,
    /// The most vector data a store may hold, counted at
    /// `bytes_per_element` per vector element.
    pub max_vector_bytes: u64,
    /// Per vector element: the float32 value and its int8 copy.
    pub bytes_per_element: u64,
    /// The most one record may take as the store returns it (JSON, the
    /// embedding as hex); saves refuse larger ones.
    pub max_record_bytes: u64,
    /// The most one call may return: wasmtime refuses to copy more than
    /// 128 MiB from the guest to the host in one call (a trap), so reads
    /// past this fail with `result-too-large` instead.
    pub max_result_bytes: u64,
}

impl Constants {
    /// The pragmas every writable connection sets after choosing its
    /// journal mode.
    pub fn pragmas(&self) -> String {
        format!(
            "PRAGMA page_size={}; PRAGMA synchronous={}; {}",
            self.page_size,
            self.synchronous,
            self.connection_pragmas()
        )
    }

    /// The pragmas that only set up the connection, never write the file:
    /// all a read-only connection sets.
    pub fn connection_pragmas(&self) -> String {
        format!(
            "PRAGMA cache_size={}; PRAGMA temp_store={};",
            self.cache_size, self.temp_store
        )
    }
}

/// The constants, parsed once.
pub fn constants() -> &'static Constants {
    static PARSED: OnceLock<Constants> = OnceLock::new();
    PARSED.get_or_init(|| parse(CONSTANTS).expect("constants.json is well formed (its test parses it)"))
}

fn parse(text: &str) -> Result<Constants, String> {
    let value = json::parse(text).map_err(|e| e.message)?;
    let member = |key: &str| value.get(key).ok_or(format!("constants.json lacks {key:?}"));
    let text_of = |key: &str| match member(key)? {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("constants.json: {key:?} is not a string")),
    };
    let number = |key: &str| {
        member(key)?
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or(format!("constants.json: {key:?} is not a number"))
    };
    let integer = |key: &str| match member(key)? {
        Value::Number(json::Number::Integer(digits)) => digits
            .parse::<i64>()
            .map_err(|_| format!("constants.json: {key:?} is out of range")),
        _ => Err(format!("constants.json: {key:?} is not an integer")),
    };
    let unsigned = |key: &str| u64::try_from(integer(key)?).map_err(|_| format!("constants.json: {key:?} is negative"));
    Ok(Constants {
        schema_version: integer("schema_version")?,
        journal_mode: text_of("journal_mode")?,
        page_size: u32::try_from(unsigned("page_size")?).map_err(|_| "constants.json: page_size".to_owned())?,
        synchronous: text_of("synchronous")?,
        cache_size: integer("cache_size")?,
        temp_store: text_of("temp_store")?,
        change_log_rows: integer("change_log_rows")?,
        busy_timeout_ms: unsigned("busy_timeout_ms")?,
        bm25_k1: number("bm25_k1")?,
        bm25_b: number("bm25_b")?,
        max_vector_bytes: unsigned("max_vector_bytes")?,
        bytes_per_element: unsigned("bytes_per_element")?,
        max_record_bytes: unsigned("max_record_bytes")?,
        max_result_bytes: unsigned("max_result_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_files_parse() {
        let c = parse(CONSTANTS).unwrap();
        assert!(c.page_size.is_power_of_two() && (512..=65536).contains(&c.page_size));
        assert!(c.bm25_k1 > 0.0 && (0.0..=1.0).contains(&c.bm25_b));
        assert!(c.max_vector_bytes < 4 << 30);
        assert!(c.max_record_bytes <= c.max_result_bytes && c.max_result_bytes < 128 << 20);
        assert!(SCHEMA.contains("CREATE TABLE IF NOT EXISTS memories"));
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(c.schema_version));
    }
}
