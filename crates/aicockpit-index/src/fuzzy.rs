//! Fuzzy symbol lookup for `workspace/symbol` and `aicockpit symbols`.
//!
//! Ranking: exact (case-insensitive) names first, then prefixes, then
//! subsequence matches scored by how contiguous they are and how many start
//! at word boundaries. The subsequence bucket stops filling at a cap, so a
//! one-letter query costs one pass over the names and no more.

use aicockpit_syntax::Symbol;

use crate::ProjectIndex;

/// How many subsequence candidates are ranked per result asked for.
const CANDIDATES_PER_RESULT: usize = 8;

/// A symbol and the file it is in.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SymbolHit {
    /// Relative to the project root.
    pub path: String,
    pub symbol: Symbol,
}

impl ProjectIndex {
    /// Symbols matching `query` fuzzily, best first, at most `limit`.
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<SymbolHit> {
        let needle: Vec<u8> = query
            .trim()
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .collect();
        let files = self.files_read();
        // (class, score, path, symbol): class 0 exact, 1 prefix, 2 subsequence.
        let mut found: Vec<(u8, i64, &str, &Symbol)> = Vec::new();
        let mut subsequences = 0usize;
        let cap = limit.saturating_mul(CANDIDATES_PER_RESULT).max(64);
        for (path, record) in files.iter() {
            for symbol in &record.symbols {
                if !symbol.kind.is_definition() {
                    continue;
                }
                let name = symbol.name.as_bytes();
                if needle.is_empty() {
                    if symbol.parent.is_none() && found.len() < limit {
                        found.push((0, 0, path, symbol));
                    }
                    continue;
                }
                if name.len() < needle.len() {
                    continue;
                }
                let prefix = name[..needle.len()].eq_ignore_ascii_case(&needle);
                if prefix {
                    let class = if name.len() == needle.len() { 0 } else { 1 };
                    let exact_case = symbol.name.starts_with(query.trim());
                    let score = i64::from(exact_case) * 100 - name.len() as i64;
                    found.push((class, score, path, symbol));
                } else if subsequences < cap {
                    if let Some(score) = subsequence_score(name, &needle) {
                        subsequences += 1;
                        found.push((2, score, path, symbol));
                    }
                }
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(a.3.name.len().cmp(&b.3.name.len()))
                .then(a.2.cmp(b.2))
                .then(a.3.range.start.line.cmp(&b.3.range.start.line))
        });
        found
            .into_iter()
            .take(limit)
            .map(|(_, _, path, symbol)| SymbolHit {
                path: path.to_string(),
                symbol: symbol.clone(),
            })
            .collect()
    }

    /// Definitions named exactly `name` (case-sensitive), in path order.
    pub fn definitions(&self, name: &str, limit: usize) -> Vec<SymbolHit> {
        let files = self.files_read();
        let mut out = Vec::new();
        for (path, record) in files.iter() {
            for symbol in &record.symbols {
                if symbol.name == name && symbol.kind.is_definition() {
                    out.push(SymbolHit {
                        path: path.clone(),
                        symbol: symbol.clone(),
                    });
                    if out.len() >= limit {
                        return out;
                    }
                }
            }
        }
        out
    }
}

/// Score a case-insensitive subsequence match, or `None` when `needle` is not
/// a subsequence of `name`. Contiguous runs and matches at word starts score higher.
fn subsequence_score(name: &[u8], needle: &[u8]) -> Option<i64> {
    let mut score = 0i64;
    let mut at = 0usize;
    let mut previous: Option<usize> = None;
    for &wanted in needle {
        let offset = name[at..]
            .iter()
            .position(|&b| b.to_ascii_lowercase() == wanted)?;
        let index = at + offset;
        if previous.is_some_and(|p| p + 1 == index) {
            score += 8;
        }
        let word_start = index == 0
            || matches!(name[index - 1], b'_' | b'-' | b'$' | b'.')
            || (name[index].is_ascii_uppercase() && name[index - 1].is_ascii_lowercase());
        if word_start {
            score += 10;
        }
        score -= offset as i64;
        previous = Some(index);
        at = index + 1;
    }
    Some(score - name.len() as i64 / 4)
}

#[cfg(test)]
mod tests {
    use super::subsequence_score;

    #[test]
    fn word_starts_and_runs_beat_scattered_matches() {
        let humps = subsequence_score(b"parseHttpRequest", b"phr").unwrap();
        let scattered = subsequence_score(b"prophecyHelper", b"phr").unwrap();
        assert!(humps > scattered, "{humps} vs {scattered}");
        assert_eq!(subsequence_score(b"abc", b"abd"), None);
    }
}
