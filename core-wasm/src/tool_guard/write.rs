//! The texts that cross the boundary: values in document order or sorted,
//! exactly as Python's `json.dumps(v, ensure_ascii=False,
//! separators=(",", ":"))` (with `sort_keys=True` for the sorted form)
//! writes them, non-finite floats included.

use crate::json::{self, Number, Value};

/// Appends `value`; with `sorted`, object keys in code-point order.
pub fn write_value(out: &mut String, value: &Value, sorted: bool) {
    match value {
        Value::Number(Number::Float(f)) if !f.is_finite() => out.push_str(if f.is_nan() {
            "NaN"
        } else if *f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, sorted);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut order: Vec<&(String, Value)> = members.iter().collect();
            if sorted {
                // UTF-8 byte order is code-point order, Python's str order.
                order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (key, item)) in order.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, key);
                out.push(':');
                write_value(out, item, sorted);
            }
            out.push('}');
        }
        scalar => json::write_value(out, scalar),
    }
}
