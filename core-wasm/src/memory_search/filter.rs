//! Scope prefixes and the filter object shared by search, delete and the
//! listing calls.

use super::index::Index;
use super::{invalid, parse_json, MemError};
use crate::json::{json_eq, Value};

/// A scope as the store keeps it: rooted, with a leading `/` added when it
/// lacks one (`a/b` is `/a/b`), so that rooted prefixes reach it.
pub(super) fn rooted_scope(scope: String) -> String {
    if scope.starts_with('/') {
        scope
    } else {
        format!("/{scope}")
    }
}

/// A scope prefix as it is compared: trailing `/` removed, rooted as
/// [`rooted_scope`] roots scopes; empty for the root (everything).
pub(super) fn rooted_prefix(prefix: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() || p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

/// The effective form of a scope prefix: [`rooted_prefix`], `None` for the
/// root (no scope constraint).
pub(super) fn scope_prefix(prefix: Option<&str>) -> Option<String> {
    let p = rooted_prefix(prefix?);
    (!p.is_empty()).then_some(p)
}

/// Whether `scope` is `prefix` or lies below it (by path segment).
pub(super) fn in_scope(scope: &str, prefix: &str) -> bool {
    scope.starts_with(prefix) && (scope.len() == prefix.len() || scope.as_bytes()[prefix.len()] == b'/')
}

#[derive(Debug, Default)]
pub(super) struct Filter {
    scope: Option<String>,
    categories: Option<Vec<String>>,
    metadata: Vec<(String, Value)>,
    ids: Option<Vec<String>>,
    older_than: Option<f64>,
}

pub(super) fn string_list(value: Value, what: &str) -> Result<Vec<String>, MemError> {
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "filter.{what} must be an array of strings, not {}",
            value.type_name()
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(j, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(invalid(format!(
                "filter.{what}[{j}] must be a string, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

impl Filter {
    pub(super) fn parse(text: &str) -> Result<Filter, MemError> {
        let Value::Object(members) = parse_json(text, "filter")? else {
            return Err(invalid("filter must be a JSON object"));
        };
        let mut f = Filter::default();
        for (key, value) in members {
            if value == Value::Null {
                continue;
            }
            match key.as_str() {
                "scope_prefix" => match value {
                    Value::String(s) => f.scope = scope_prefix(Some(&s)),
                    other => {
                        return Err(invalid(format!(
                            "filter.scope_prefix must be a string, not {}",
                            other.type_name()
                        )))
                    }
                },
                "categories" => f.categories = Some(string_list(value, "categories")?),
                "ids" => f.ids = Some(string_list(value, "ids")?),
                "metadata" => match value {
                    Value::Object(m) => f.metadata = m,
                    other => {
                        return Err(invalid(format!(
                            "filter.metadata must be an object, not {}",
                            other.type_name()
                        )))
                    }
                },
                "older_than" => {
                    f.older_than = Some(value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        invalid(format!(
                            "filter.older_than must be a number (seconds since the epoch), \
                                 not {}",
                            value.type_name()
                        ))
                    })?)
                }
                other => return Err(invalid(format!("filter has an unknown member {other:?}"))),
            }
        }
        Ok(f)
    }

    pub(super) fn scope(scope: Option<&str>) -> Filter {
        Filter {
            scope: scope_prefix(scope),
            ..Filter::default()
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.scope.is_none()
            && self.categories.is_none()
            && self.metadata.is_empty()
            && self.ids.is_none()
            && self.older_than.is_none()
    }

    /// The filter prepared against `index`: the scope prefix is decided
    /// once per distinct scope.
    pub(super) fn matcher<'a>(&'a self, index: &'a Index) -> Matcher<'a> {
        Matcher {
            filter: self,
            index,
            scope_ok: self
                .scope
                .as_ref()
                .map(|p| index.scope_names().iter().map(|s| in_scope(s, p)).collect()),
            check_record: self.categories.is_some() || !self.metadata.is_empty(),
        }
    }

    /// The matching rows, ascending.
    pub(super) fn rows(&self, index: &Index) -> Vec<usize> {
        let m = self.matcher(index);
        match self.candidate_rows(index) {
            Some(rows) => rows.into_iter().filter(|&row| m.matches(row)).collect(),
            None => (0..index.len()).filter(|&row| m.matches(row)).collect(),
        }
    }

    /// The rows `ids` allows (ascending), `None` for all; the other members
    /// are applied by [`Matcher::matches`].
    pub(super) fn candidate_rows(&self, index: &Index) -> Option<Vec<usize>> {
        self.ids.as_ref().map(|ids| {
            let mut rows: Vec<usize> = ids.iter().filter_map(|id| index.row_of(id)).collect();
            rows.sort_unstable();
            rows.dedup();
            rows
        })
    }
}

/// A [`Filter`] prepared for one pass over an index.
pub(super) struct Matcher<'a> {
    filter: &'a Filter,
    index: &'a Index,
    /// Per scope id, whether the scope lies under the prefix.
    scope_ok: Option<Vec<bool>>,
    /// Whether `categories` or `metadata` need the record itself.
    check_record: bool,
}

impl Matcher<'_> {
    /// Every member but `ids` (see [`Filter::candidate_rows`]).
    pub(super) fn matches(&self, row: usize) -> bool {
        if let Some(ok) = &self.scope_ok {
            if !ok[self.index.scope_id(row)] {
                return false;
            }
        }
        if let Some(t) = self.filter.older_than {
            if self.index.created_ts(row) >= t {
                return false;
            }
        }
        if !self.check_record {
            return true;
        }
        let r = self.index.record(row);
        if let Some(cats) = &self.filter.categories {
            if !cats.iter().any(|c| r.categories.contains(c)) {
                return false;
            }
        }
        self.filter.metadata.iter().all(|(k, want)| match r.metadata.get(k) {
            Some(have) => json_eq(have, want),
            None => *want == Value::Null,
        })
    }
}
