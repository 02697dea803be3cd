//! An incrementally maintained inverted index over record contents, scored
//! with BM25.
//!
//! Documents are addressed by the row they occupy in the vector index, and
//! rows move when a record is removed (swap-remove), so each posting records
//! where it sits in its document's term list and each document records where
//! each of its postings sits in its term's posting list. Adding, replacing and
//! removing a document then costs time proportional to the number of distinct
//! terms it has, whatever the corpus size.

use std::collections::HashMap;

use super::constants::constants;

/// Calls `f` with each token of `text`: maximal runs of alphanumeric
/// characters (`char::is_alphanumeric`), lowercased with `str::to_lowercase`.
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut buf = String::new();
    for token in text.split(|c: char| !c.is_alphanumeric()) {
        if token.is_empty() {
            continue;
        }
        if token.is_ascii() {
            buf.clear();
            buf.push_str(token);
            buf.make_ascii_lowercase();
            f(&buf);
        } else {
            f(&token.to_lowercase());
        }
    }
}

#[derive(Clone, Copy)]
struct Posting {
    /// The document's row.
    row: u32,
    /// Occurrences of the term in the document.
    tf: u32,
    /// Index of this term in the document's term list.
    slot: u32,
}

#[derive(Default)]
struct Term {
    text: String,
    postings: Vec<Posting>,
}

#[derive(Default)]
struct Doc {
    /// Token count.
    len: u32,
    /// `(term id, index of the posting in that term's list)`, one per
    /// distinct term.
    terms: Vec<(u32, u32)>,
}

/// The inverted index; document `i` is row `i`.
#[derive(Default)]
pub struct TextIndex {
    dict: HashMap<String, u32>,
    terms: Vec<Term>,
    free_terms: Vec<u32>,
    docs: Vec<Doc>,
    total_len: u64,
}

impl TextIndex {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Appends `content` as the document of row `self.len()`.
    pub fn push(&mut self, content: &str) {
        let row = self.docs.len();
        self.docs.push(Doc::default());
        self.fill(row, content);
    }

    /// Replaces the document of `row`.
    pub fn replace(&mut self, row: usize, content: &str) {
        self.unlink(row);
        self.fill(row, content);
    }

    /// Removes the document of `row`; the last document takes its row.
    pub fn swap_remove(&mut self, row: usize) {
        self.unlink(row);
        self.docs.swap_remove(row);
        if let Some(doc) = self.docs.get(row) {
            for &(term, pos) in &doc.terms {
                self.terms[term as usize].postings[pos as usize].row = row as u32;
            }
        }
    }

    /// Indexes `content` as the (empty) document at `row`.
    fn fill(&mut self, row: usize, content: &str) {
        let mut ids: Vec<u32> = Vec::new();
        for_each_token(content, |token| ids.push(self.intern(token)));
        let len = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        ids.sort_unstable();
        let mut terms: Vec<(u32, u32)> = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let term = ids[i];
            let mut j = i + 1;
            while j < ids.len() && ids[j] == term {
                j += 1;
            }
            let postings = &mut self.terms[term as usize].postings;
            let pos = postings.len() as u32;
            postings.push(Posting {
                row: row as u32,
                tf: (j - i) as u32,
                slot: terms.len() as u32,
            });
            terms.push((term, pos));
            i = j;
        }
        terms.shrink_to_fit();
        self.total_len += u64::from(len);
        self.docs[row] = Doc { len, terms };
    }

    /// Removes the postings of `row`'s document and leaves it empty.
    fn unlink(&mut self, row: usize) {
        let doc = std::mem::take(&mut self.docs[row]);
        self.total_len -= u64::from(doc.len);
        for (term, pos) in doc.terms {
            let entry = &mut self.terms[term as usize];
            entry.postings.swap_remove(pos as usize);
            if let Some(moved) = entry.postings.get(pos as usize).copied() {
                self.docs[moved.row as usize].terms[moved.slot as usize].1 = pos;
            } else if entry.postings.is_empty() {
                let text = std::mem::take(&mut entry.text);
                entry.postings = Vec::new();
                self.dict.remove(&text);
                self.free_terms.push(term);
            }
        }
    }

    fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.dict.get(token) {
            return id;
        }
        let term = Term {
            text: token.to_owned(),
            postings: Vec::new(),
        };
        let id = match self.free_terms.pop() {
            Some(id) => {
                self.terms[id as usize] = term;
                id
            }
            None => {
                self.terms.push(term);
                (self.terms.len() - 1) as u32
            }
        };
        self.dict.insert(token.to_owned(), id);
        id
    }

    /// BM25 scores of every document containing at least one query token,
    /// as `(row, score)` in no particular order. Each query token counts once
    /// per occurrence in the query (as separate clauses do in Lucene and
    /// FTS5); the collection statistics are those of the whole store.
    pub fn score(&self, query: &str) -> Vec<(usize, f64)> {
        let n = self.docs.len();
        if n == 0 || self.total_len == 0 {
            return Vec::new();
        }
        let mut query_terms: Vec<u32> = Vec::new();
        for_each_token(query, |token| {
            if let Some(&id) = self.dict.get(token) {
                query_terms.push(id);
            }
        });
        if query_terms.is_empty() {
            return Vec::new();
        }
        let avgdl = self.total_len as f64 / n as f64;
        let (k1, b) = (constants().bm25_k1, constants().bm25_b);
        let mut scores = vec![0.0f64; n];
        let mut touched: Vec<usize> = Vec::new();
        for term in query_terms {
            let postings = &self.terms[term as usize].postings;
            let df = postings.len() as f64;
            let idf = (1.0 + (n as f64 - df + 0.5) / (df + 0.5)).ln();
            for p in postings {
                let row = p.row as usize;
                let tf = f64::from(p.tf);
                let dl = f64::from(self.docs[row].len);
                let part = idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl));
                if scores[row] == 0.0 {
                    touched.push(row);
                }
                scores[row] += part;
            }
        }
        touched.into_iter().map(|row| (row, scores[row])).collect()
    }

    /// Checks every cross-reference (tests only).
    #[cfg(test)]
    pub fn check(&self) {
        let mut total = 0u64;
        for (row, doc) in self.docs.iter().enumerate() {
            total += u64::from(doc.len);
            for (slot, &(term, pos)) in doc.terms.iter().enumerate() {
                let p = self.terms[term as usize].postings[pos as usize];
                assert_eq!(p.row as usize, row);
                assert_eq!(p.slot as usize, slot);
            }
        }
        assert_eq!(total, self.total_len);
        for (text, &id) in &self.dict {
            assert_eq!(&self.terms[id as usize].text, text);
            assert!(!self.terms[id as usize].postings.is_empty());
        }
        let live = self.terms.iter().filter(|t| !t.postings.is_empty()).count();
        assert_eq!(live, self.dict.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, |t| out.push(t.to_owned()));
        out
    }

    #[test]
    fn tokenizer() {
        assert_eq!(tokens("Hello, WORLD! x_y 42"), ["hello", "world", "x", "y", "42"]);
        assert_eq!(tokens("Straße ΟΔΟΣ naïve 東京"), ["straße", "οδος", "naïve", "東京"]);
        assert!(tokens(" ,.;\u{0} ").is_empty());
    }

    #[test]
    fn incremental_matches_rebuild() {
        let texts = [
            "the cat sat",
            "the dog",
            "cat and dog",
            "bird",
            "",
            "the the the",
            "dog dog cat",
        ];
        let mut idx = TextIndex::default();
        for t in texts {
            idx.push(t);
        }
        idx.check();
        idx.swap_remove(1);
        idx.check();
        idx.replace(0, "a new cat");
        idx.check();
        idx.swap_remove(idx.len() - 1);
        idx.check();
        idx.swap_remove(0);
        idx.check();
        while idx.len() > 0 {
            idx.swap_remove(0);
            idx.check();
        }
        assert!(idx.dict.is_empty());
        idx.push("cat");
        idx.check();
        assert_eq!(idx.score("CAT").len(), 1);
    }
}
