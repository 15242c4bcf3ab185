//! Fuzzy symbol lookup for `workspace/symbol` and `aicockpit symbols`.
//!
//! Ranking: exact (case-insensitive) names first, then prefixes, then
//! subsequence matches scored by how contiguous they are and how many start
//! at word boundaries. The subsequence bucket stops filling at a cap, so a
//! one-letter query costs one pass over the names and no more.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aicockpit_syntax::Symbol;

use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{TantivyDocument, Term};

use rayon::prelude::*;

use crate::{FileRecord, ProjectIndex};

/// How many subsequence candidates are ranked per result asked for.
const CANDIDATES_PER_RESULT: usize = 8;

/// A symbol and the file it is in.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SymbolHit {
    /// Relative to the project root.
    pub path: String,
    pub symbol: Symbol,
}

/// The lower-cased names of a file's definitions in one buffer, so a scan
/// over hundreds of thousands of symbols reads a few megabytes, not the
/// symbol structs: two allocations per file, read front to back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameTable {
    /// One entry per definition, in source order.
    entries: Vec<NameEntry>,
    /// The lower-cased names, then the same names as written (ranking reads
    /// them here rather than chasing each symbol's own allocation).
    bytes: Vec<u8>,
    /// The byte classes of all names together: a file whose names lack one
    /// of the query's classes is skipped without reading its entries.
    any_mask: u64,
    /// The byte classes the names start with: once the subsequence bucket
    /// is full only prefixes count, and a file none of whose names starts
    /// like the query is skipped.
    first_mask: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NameEntry {
    /// Which byte classes the name holds (see [`byte_mask`]): a name that
    /// lacks one of the query's cannot match it at all. The top byte holds
    /// the name's first byte, lower-cased ([`FIRST_SHIFT`]), so a prefix
    /// test needs no read of the name.
    mask: u64,
    /// End of the lower-cased name in `bytes`.
    end: u32,
    /// Index of the symbol in the file's record.
    ordinal: u32,
}

impl NameTable {
    pub fn new(symbols: &[Symbol]) -> NameTable {
        // Sized exactly: a project's tables live as long as its index.
        let definitions = symbols.iter().filter(|s| s.kind.is_definition());
        let bytes: usize = definitions.clone().map(|s| s.name.len()).sum();
        let mut table = NameTable {
            entries: Vec::with_capacity(definitions.count()),
            bytes: Vec::with_capacity(bytes * 2),
            ..NameTable::default()
        };
        for (ordinal, symbol) in symbols.iter().enumerate() {
            if symbol.kind.is_definition() {
                table
                    .bytes
                    .extend(symbol.name.bytes().map(|b| b.to_ascii_lowercase()));
                let classes = byte_mask(symbol.name.as_bytes());
                let first = symbol.name.bytes().next().unwrap_or(0);
                table.any_mask |= classes;
                table.first_mask |= byte_mask(&[first]);
                table.entries.push(NameEntry {
                    mask: classes | u64::from(first.to_ascii_lowercase()) << FIRST_SHIFT,
                    end: table.bytes.len() as u32,
                    ordinal: ordinal as u32,
                });
            }
        }
        for entry in &table.entries {
            let name = &symbols[entry.ordinal as usize].name;
            table.bytes.extend_from_slice(name.as_bytes());
        }
        table
    }

    /// Where the names as written start in `bytes`.
    fn original_offset(&self) -> usize {
        self.entries.last().map_or(0, |entry| entry.end as usize)
    }
}

/// Where a [`NameEntry`]'s mask keeps the name's first byte (the classes
/// take the low 38 bits).
const FIRST_SHIFT: u32 = 56;

/// One bit per byte class of a case-insensitive name: letters, digits, `_`,
/// and one bit shared by everything else.
fn byte_mask(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |mask, &b| {
        let bit = match b.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'0'..=b'9' => 26 + (c - b'0'),
            b'_' => 36,
            _ => 37,
        };
        mask | 1 << bit
    })
}

/// A candidate: (class, score, file number, symbol ordinal); class 0 exact, 1 prefix, 2 subsequence.
type Candidate = (u8, i64, u32, u32);

impl ProjectIndex {
    /// Symbols matching `query` fuzzily, best first, at most `limit`.
    /// Whitespace in the query is ignored (`http request` matches `parse_http_request`).
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<SymbolHit> {
        self.workspace_symbols_with(query, limit, &BTreeMap::new())
    }

    /// [`Self::workspace_symbols`], with some files' records replaced (or
    /// added) by `overrides`, keyed by relative path: editors' text the
    /// index does not hold yet ([`FileRecord::of_symbols`]).
    pub fn workspace_symbols_with(
        &self,
        query: &str,
        limit: usize,
        overrides: &BTreeMap<String, Arc<FileRecord>>,
    ) -> Vec<SymbolHit> {
        let trimmed: String = query.chars().filter(|c| !c.is_whitespace()).collect();
        let needle: Vec<u8> = trimmed.bytes().map(|b| b.to_ascii_lowercase()).collect();
        let files = self.files_read();
        let records: Vec<(&String, &FileRecord)> = files
            .iter()
            .map(|(path, record)| (path, overrides.get(path).unwrap_or(record).as_ref()))
            .chain(
                overrides
                    .iter()
                    .filter(|(path, _)| !files.contains_key(*path))
                    .map(|(path, record)| (path, record.as_ref())),
            )
            .collect();
        let symbol = |file: u32, ordinal: u32| &records[file as usize].1.symbols[ordinal as usize];
        let cap = limit.saturating_mul(CANDIDATES_PER_RESULT).max(64);
        // Scan the packed names on the index's parser pool, a slice of files per task.
        let slice = records
            .len()
            .div_ceil(self.pool.current_num_threads() * 4)
            .max(256);
        let found_so_far = Found::default();
        let mut found: Vec<Candidate> = if needle.is_empty() {
            scan(&records, 0, &needle, &trimmed, cap, limit, &found_so_far)
        } else {
            self.pool.install(|| {
                records
                    .par_chunks(slice)
                    .enumerate()
                    .map(|(n, chunk)| {
                        let first = (n * slice) as u32;
                        scan(chunk, first, &needle, &trimmed, cap, limit, &found_so_far)
                    })
                    .reduce(Vec::new, |mut a, b| {
                        a.extend(b);
                        a
                    })
            })
        };
        // Scores already prefer shorter names; ties go to path order, then
        // source order (ordinals follow it). No symbol is touched while sorting.
        let order = |a: &Candidate, b: &Candidate| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        };
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, order);
            found.truncate(limit);
        }
        found.sort_by(order);
        found
            .into_iter()
            .take(limit)
            .map(|(_, _, file, ordinal)| SymbolHit {
                path: records[file as usize].0.clone(),
                symbol: symbol(file, ordinal).clone(),
            })
            .collect()
    }

    /// Definitions named exactly `name` (case-sensitive), at most `limit`,
    /// in path order: one exact term lookup in tantivy, not a scan.
    pub fn definitions(&self, name: &str, limit: usize) -> Vec<SymbolHit> {
        let f = self.fields;
        let query = TermQuery::new(
            Term::from_field_text(f.name_exact, name),
            IndexRecordOption::Basic,
        );
        // A few more than asked for: `impl` blocks share their type's name.
        let depth = limit.saturating_mul(2).max(4);
        let (overlay, disk) = self.searchers();
        let mut docs: Vec<TantivyDocument> = Vec::new();
        if let Some(view) = &overlay {
            docs.extend(
                view.docs_with(f.name_exact, name, depth)
                    .into_iter()
                    .cloned(),
            );
        }
        let Ok(top) = disk.search(&query, &TopDocs::with_limit(depth)) else {
            return self.definitions_by_scan(name, limit);
        };
        for (_, address) in top {
            let Ok(doc) = disk.doc::<TantivyDocument>(address) else {
                continue;
            };
            if crate::search::live_on_disk(overlay.as_ref(), &doc, f.path) {
                docs.push(doc);
            }
        }
        let files = self.files_read();
        let mut out: Vec<SymbolHit> = Vec::new();
        for doc in docs {
            let Some(path) = doc.get_first(f.path).and_then(|v| v.as_str()) else {
                continue;
            };
            let Some(ordinal) = doc.get_first(f.ordinal).and_then(|v| v.as_u64()) else {
                continue;
            };
            let Some(symbol) = files
                .get(path)
                .and_then(|record| record.symbols.get(ordinal as usize))
            else {
                continue;
            };
            if *symbol.name == *name && symbol.kind.is_definition() {
                out.push(SymbolHit {
                    path: path.to_string(),
                    symbol: symbol.clone(),
                });
            }
        }
        out.sort_by(|a, b| {
            // Library code before tests, then by path.
            crate::walk::is_test_path(&a.path)
                .cmp(&crate::walk::is_test_path(&b.path))
                .then(a.path.cmp(&b.path))
                .then(a.symbol.range.start.line.cmp(&b.symbol.range.start.line))
        });
        out.truncate(limit);
        out
    }

    /// The same, by scanning every symbol (for names the tokenizer does not keep whole).
    fn definitions_by_scan(&self, name: &str, limit: usize) -> Vec<SymbolHit> {
        let files = self.files_read();
        let mut out = Vec::new();
        for (path, record) in files.iter() {
            for symbol in &record.symbols {
                if *symbol.name == *name && symbol.kind.is_definition() {
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

/// Exact and prefix matches found so far by all the scan's slices together.
/// Exact matches rank before prefixes and prefixes before subsequences, so
/// once `limit` of a better class are found no weaker candidate can make the
/// results, and the slices stop reading names that could only be one: a
/// query such as `__init__` (ten thousand exact matches in the Python
/// library) then costs a length comparison per name.
#[derive(Default)]
struct Found {
    exact: AtomicUsize,
    /// Exact and prefix matches.
    strong: AtomicUsize,
}

/// Candidates among `records` (numbered from `first`): exact and prefix
/// matches all (but only exact ones once `limit` are found anywhere),
/// subsequence matches up to `cap` (none once `limit` exact or prefix
/// matches are found anywhere); with an empty needle, the first `limit`
/// top-level symbols.
fn scan(
    records: &[(&String, &FileRecord)],
    first: u32,
    needle: &[u8],
    trimmed: &str,
    cap: usize,
    limit: usize,
    so_far: &Found,
) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    if needle.is_empty() {
        for (n, (_, record)) in records.iter().enumerate() {
            for ordinal in record.names.entries.iter().map(|entry| entry.ordinal) {
                if found.len() >= limit {
                    return found;
                }
                if record.symbols[ordinal as usize].parent.is_none() {
                    found.push((0, 0, first + n as u32, ordinal));
                }
            }
        }
        return found;
    }
    // One pass over the packed names: the byte-class masks reject most
    // names before their bytes are read; exact and prefix matches are all
    // kept, subsequence matches up to the cap.
    let needle_mask = byte_mask(needle);
    let needle_first = needle[0];
    let first_class = byte_mask(&needle[..1]);
    let mut subsequences = 0usize;
    // What this slice found and has not yet added to `so_far`.
    let (mut exact, mut strong) = (0usize, 0usize);
    for (n, (_, record)) in records.iter().enumerate() {
        let table = &record.names;
        if exact > 0 || strong > 0 {
            so_far.exact.fetch_add(exact, Ordering::Relaxed);
            so_far.strong.fetch_add(strong, Ordering::Relaxed);
            (exact, strong) = (0, 0);
        }
        let exact_only = so_far.exact.load(Ordering::Relaxed) >= limit;
        let no_subsequences = subsequences >= cap || so_far.strong.load(Ordering::Relaxed) >= limit;
        if table.any_mask & needle_mask != needle_mask
            || (no_subsequences && table.first_mask & first_class == 0)
        {
            continue;
        }
        let original = table.original_offset();
        let mut start = 0usize;
        for entry in &table.entries {
            let range = start..entry.end as usize;
            start = entry.end as usize;
            if range.len() < needle.len()
                || (exact_only && range.len() != needle.len())
                || entry.mask & needle_mask != needle_mask
            {
                continue;
            }
            // With no room for subsequences only a prefix can still count.
            if no_subsequences && (entry.mask >> FIRST_SHIFT) as u8 != needle_first {
                continue;
            }
            let name = &table.bytes[range.clone()];
            let as_written = &table.bytes[original + range.start..original + range.end];
            if name.starts_with(needle) {
                let class = if name.len() == needle.len() { 0 } else { 1 };
                exact += usize::from(class == 0);
                strong += 1;
                let exact_case = as_written.starts_with(trimmed.as_bytes());
                found.push((
                    class,
                    i64::from(exact_case) * 100 - name.len() as i64,
                    first + n as u32,
                    entry.ordinal,
                ));
            } else if !no_subsequences && subsequences < cap && is_subsequence(name, needle) {
                if let Some(score) = subsequence_score(as_written, needle) {
                    subsequences += 1;
                    found.push((2, score, first + n as u32, entry.ordinal));
                }
            }
        }
    }
    found
}

fn is_subsequence(name: &[u8], needle: &[u8]) -> bool {
    let mut wanted = needle.iter();
    let mut next = wanted.next();
    for byte in name {
        if Some(byte) == next {
            next = wanted.next();
            if next.is_none() {
                return true;
            }
        }
    }
    next.is_none()
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
