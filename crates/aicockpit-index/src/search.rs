//! Full-text and symbol search over the tantivy index.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use aicockpit_syntax::{Pos, Span, Symbol, SymbolKind};
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{Searcher, TantivyDocument, Term};

use crate::overlay::{Combined, OverlayView};
use crate::schema::NO_SYMBOL;
use crate::tokenizer::tokenize;
use crate::{FileRecord, IndexError, ProjectIndex};

/// Boosts: a hit on a symbol's name counts most, then its signature, its doc, chunk text.
const BOOST_NAME: f32 = 4.0;
const BOOST_SIGNATURE: f32 = 1.5;
const BOOST_DOC: f32 = 1.0;
const BOOST_CHUNK_NAME: f32 = 2.0;
const BOOST_CONTENT: f32 = 1.0;
/// The most hits one search returns, whatever the caller asks for.
pub const MAX_LIMIT: usize = 1000;
/// The most distinct query tokens a search uses (the first ones).
const MAX_QUERY_TOKENS: usize = 64;
/// Lines of context in a snippet around the best line.
const SNIPPET_CONTEXT: usize = 1;

/// A search request.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    pub text: String,
    pub limit: usize,
    /// Relative paths (files or folders) to search within; empty means everywhere.
    pub paths: Vec<String>,
    /// Only symbols of these kinds; empty means symbols and chunks alike.
    pub kinds: Vec<SymbolKind>,
}

impl SearchQuery {
    pub fn new(text: impl Into<String>) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            limit: 20,
            paths: Vec::new(),
            kinds: Vec::new(),
        }
    }
}

/// One ranked hit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SearchHit {
    /// Relative to the project root.
    pub path: String,
    /// The symbol's name, or the best-matching line of the chunk.
    pub span: Span,
    pub score: f32,
    /// A few lines around the match (a symbol's signature for symbol hits).
    pub snippet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<Symbol>,
}

impl ProjectIndex {
    /// Search symbols and chunks, best first, at most `query.limit` hits.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, IndexError> {
        let mut tokens = tokenize(&query.text);
        // Each token is a term per field on both sides; a pasted page of
        // text must not become thousands of them.
        tokens.truncate(MAX_QUERY_TOKENS);
        let limit = query.limit.min(MAX_LIMIT);
        if tokens.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let terms = |field: Field, boost: f32| -> Vec<(Occur, Box<dyn Query>)> {
            tokens
                .iter()
                .map(|token| {
                    let term = TermQuery::new(
                        Term::from_field_text(field, token),
                        IndexRecordOption::WithFreqs,
                    );
                    (
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(term), boost)) as Box<dyn Query>,
                    )
                })
                .collect()
        };
        // One flat disjunction over disjoint symbol and chunk fields (see the
        // schema), which tantivy prunes with block-max WAND.
        let mut should = terms(f.name, BOOST_NAME);
        should.extend(terms(f.signature, BOOST_SIGNATURE));
        should.extend(terms(f.doc, BOOST_DOC));
        if query.kinds.is_empty() {
            should.extend(terms(f.content, BOOST_CONTENT));
            should.extend(terms(f.chunk_name, BOOST_CHUNK_NAME));
        }
        let mut clauses = vec![
            (f.name, BOOST_NAME),
            (f.signature, BOOST_SIGNATURE),
            (f.doc, BOOST_DOC),
        ];
        if query.kinds.is_empty() {
            clauses.extend([(f.content, BOOST_CONTENT), (f.chunk_name, BOOST_CHUNK_NAME)]);
        }
        let disjunction: Box<dyn Query> = Box::new(BooleanQuery::new(should));
        // Filters add nothing to the score: a hit scores by its text alone,
        // as the overlay scores its docs.
        let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !query.kinds.is_empty() {
            let kinds = query
                .kinds
                .iter()
                .map(|kind| (Occur::Should, term_query(f.kind, kind.name())))
                .collect();
            filters.push((Occur::Must, unscored(BooleanQuery::new(kinds))));
        }
        let paths: Vec<String> = query
            .paths
            .iter()
            .map(|p| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if !paths.is_empty() {
            let scopes = paths
                .iter()
                .flat_map(|p| {
                    [
                        (Occur::Should, folder_query(f.path, p)),
                        (Occur::Should, term_query(f.path, p)),
                    ]
                })
                .collect();
            filters.push((Occur::Must, unscored(BooleanQuery::new(scopes))));
        }
        let tantivy_query: Box<dyn Query> = if filters.is_empty() {
            disjunction
        } else {
            filters.push((Occur::Must, disjunction));
            Box::new(BooleanQuery::new(filters))
        };

        let tantivy_error = |source| IndexError::Tantivy {
            path: self.dir().to_path_buf(),
            source,
        };
        // The overlay's hits (recent edits) and the disk index's, best first,
        // scored with the statistics of both together.
        let depth = limit * 3 + 8;
        let (overlay, disk) = self.searchers();
        // Overlay hits carry the record their ordinals refer to (the index's
        // record of the path may already be a newer edit's).
        let mut top: Vec<(f32, TantivyDocument, Option<Arc<FileRecord>>)> = Vec::new();
        let found = match &overlay {
            Some(view) => {
                let stats = Combined::new(&disk, view);
                let kinds: Vec<&str> = query.kinds.iter().map(|kind| kind.name()).collect();
                let keep = |doc: &TantivyDocument| {
                    let text = |field| doc.get_first(field).and_then(|v| v.as_str());
                    (kinds.is_empty() || text(f.kind).is_some_and(|kind| kinds.contains(&kind)))
                        && (paths.is_empty()
                            || text(f.path)
                                .is_some_and(|path| paths.iter().any(|scope| within(path, scope))))
                };
                top = view
                    .search(&clauses, &tokens, &stats, &keep, depth)
                    .map_err(tantivy_error)?
                    .into_iter()
                    .map(|(score, doc, record)| (score, doc, Some(record)))
                    .collect();
                disk.search_with_statistics_provider(
                    tantivy_query.as_ref(),
                    &TopDocs::with_limit(depth),
                    &stats,
                )
            }
            None => disk.search(tantivy_query.as_ref(), &TopDocs::with_limit(depth)),
        }
        .map_err(tantivy_error)?;
        for (score, address) in found {
            let doc: TantivyDocument = disk.doc(address).map_err(tantivy_error)?;
            if live_on_disk(overlay.as_ref(), &doc, f.path) {
                top.push((score, doc, None));
            }
        }
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        let files = self.files_read();
        let mut seen = HashSet::new();
        let mut hits = Vec::new();
        // Texts of the files hit, read once per search: the index does not store chunk text.
        let mut texts: HashMap<String, Option<Arc<str>>> = HashMap::new();
        for (score, doc, own) in &top {
            let score = *score;
            let Some(path) = doc.get_first(f.path).and_then(|v| v.as_str()) else {
                continue;
            };
            let ordinal = doc
                .get_first(f.ordinal)
                .and_then(|v| v.as_u64())
                .unwrap_or(NO_SYMBOL);
            let record = own.as_ref().or_else(|| files.get(path));
            let symbol = record.and_then(|record| record.symbols.get(ordinal as usize));
            // Only chunk docs have a line range.
            let lines = doc
                .get_first(f.start_line)
                .and_then(|v| v.as_u64())
                .map(|start| {
                    let end = doc
                        .get_first(f.end_line)
                        .and_then(|v| v.as_u64())
                        .unwrap_or(start);
                    (start as u32, end as u32)
                });
            let hit = match lines {
                None => {
                    // A symbol doc: its record must still be there.
                    let Some(symbol) = symbol else { continue };
                    if !seen.insert((path.to_string(), ordinal)) {
                        continue;
                    }
                    SearchHit {
                        path: path.to_string(),
                        span: symbol.selection_range,
                        score,
                        snippet: symbol.signature.to_string(),
                        symbol: Some(symbol.clone()),
                    }
                }
                Some((start_line, end_line)) => {
                    let key = if symbol.is_some() {
                        ordinal
                    } else {
                        NO_SYMBOL - 1 - u64::from(start_line)
                    };
                    if !seen.insert((path.to_string(), key)) {
                        continue;
                    }
                    let text = texts
                        .entry(path.to_string())
                        .or_insert_with(|| self.indexed_text(path));
                    let content = text
                        .as_deref()
                        .map_or("", |text| line_slice(text, start_line, end_line));
                    let (span, snippet) = best_lines(content, start_line, &tokens);
                    SearchHit {
                        path: path.to_string(),
                        span,
                        score,
                        snippet,
                        symbol: symbol.cloned(),
                    }
                }
            };
            hits.push(hit);
        }
        // Best first; at the same score, library code before tests (stable:
        // tantivy's order otherwise).
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(crate::walk::is_test_path(&a.path).cmp(&crate::walk::is_test_path(&b.path)))
        });
        hits.truncate(limit);
        Ok(hits)
    }

    /// Relative paths of files whose text contains `identifier` as a whole
    /// token (case-insensitive), at most `limit`: candidates for references.
    pub fn files_containing(
        &self,
        identifier: &str,
        limit: usize,
    ) -> Result<Vec<String>, IndexError> {
        let f = self.fields;
        // Only chunk docs have `content`.
        let query = TermQuery::new(
            Term::from_field_text(f.content, &identifier.to_lowercase()),
            IndexRecordOption::Basic,
        );
        let tantivy_error = |source| IndexError::Tantivy {
            path: self.dir().to_path_buf(),
            source,
        };
        let depth = limit.saturating_mul(4).max(16);
        let mut paths: Vec<String> = Vec::new();
        let mut add = |doc: &TantivyDocument| {
            if let Some(path) = doc.get_first(f.path).and_then(|v| v.as_str()) {
                if paths.len() < limit && !paths.iter().any(|p| p == path) {
                    paths.push(path.to_string());
                }
            }
        };
        let (overlay, disk) = self.searchers();
        if let Some(view) = &overlay {
            for doc in view.docs_with(f.content, &identifier.to_lowercase(), depth) {
                add(doc);
            }
        }
        let top = disk
            .search(&query, &TopDocs::with_limit(depth))
            .map_err(tantivy_error)?;
        for (_, address) in top {
            let doc: TantivyDocument = disk.doc(address).map_err(tantivy_error)?;
            if live_on_disk(overlay.as_ref(), &doc, f.path) {
                add(&doc);
            }
        }
        Ok(paths)
    }
}

impl ProjectIndex {
    /// What to search: the overlay when it holds edits (its view names
    /// the paths whose disk hits to drop), and the disk index. (The overlay
    /// is looked at first: a persist reloads the disk reader before it
    /// empties the overlay.)
    pub(crate) fn searchers(&self) -> (Option<OverlayView>, Searcher) {
        let view = self.overlay.as_ref().and_then(|overlay| overlay.view());
        (view, self.reader.searcher())
    }

    /// The text a file was indexed from: the editor's when it came from one,
    /// the file on disk otherwise (which a watcher keeps in step with the index).
    fn indexed_text(&self, rel: &str) -> Option<Arc<str>> {
        if let Some(text) = self.editor_text(rel) {
            return Some(text);
        }
        self.read(rel).ok().map(Arc::from)
    }
}

/// Whether a doc of the disk index is still current: it names its path and
/// the overlay does not hold a newer version (or the removal) of that path.
pub(crate) fn live_on_disk(
    overlay: Option<&OverlayView>,
    doc: &TantivyDocument,
    path: Field,
) -> bool {
    doc.get_first(path)
        .and_then(|v| v.as_str())
        .is_some_and(|path| !overlay.is_some_and(|view| view.stale.contains(path)))
}

/// Lines `first..=last` (zero-based) of a text, without the last newline.
fn line_slice(text: &str, first: u32, last: u32) -> &str {
    let mut start = None;
    let mut offset = 0usize;
    for (line, piece) in (0u32..).zip(text.split_inclusive('\n')) {
        if line == first {
            start = Some(offset);
        }
        offset += piece.len();
        if line == last {
            break;
        }
    }
    match start {
        Some(start) => text[start..offset].trim_end_matches(['\n', '\r']),
        None => "",
    }
}

/// Docs of the files under a folder: the paths from `folder/` up to (not
/// including) `folder0`, `0` being the byte after `/`. A range over the
/// path terms instead of a term per ancestor folder on every doc.
fn folder_query(path: Field, folder: &str) -> Box<dyn Query> {
    Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_text(path, &format!("{folder}/"))),
        Bound::Excluded(Term::from_field_text(path, &format!("{folder}0"))),
    ))
}

/// Whether a relative path is a scope or lies under it (what the folder
/// and path filters of a search select).
fn within(path: &str, scope: &str) -> bool {
    path.strip_prefix(scope)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A filter that matches as `query` does and scores nothing.
fn unscored(query: impl Query) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), 0.0))
}

fn term_query(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::Basic,
    ))
}

/// The line of a chunk that holds the most query tokens, and a snippet around it.
fn best_lines(content: &str, start_line: u32, tokens: &[String]) -> (Span, String) {
    let lines: Vec<&str> = content.lines().collect();
    let mut best = (0usize, 0usize);
    for (index, line) in lines.iter().enumerate() {
        let lower = line.to_lowercase();
        let score = tokens
            .iter()
            .filter(|token| lower.contains(String::as_str(token)))
            .count();
        if score > best.1 {
            best = (index, score);
        }
    }
    let line = lines.get(best.0).copied().unwrap_or("");
    let trimmed = line.trim_end();
    // A blank line has no text to point at: an empty range at its end.
    let indent = (line.len() - line.trim_start().len()).min(trimmed.len());
    let line_number = start_line + best.0 as u32;
    let span = Span {
        start: Pos {
            line: line_number,
            col: indent as u32,
            col_utf16: line[..indent].encode_utf16().count() as u32,
        },
        end: Pos {
            line: line_number,
            col: trimmed.len() as u32,
            col_utf16: trimmed.encode_utf16().count() as u32,
        },
    };
    let from = best.0.saturating_sub(SNIPPET_CONTEXT);
    let to = (best.0 + SNIPPET_CONTEXT + 1).min(lines.len());
    let snippet = lines
        .get(from..to)
        .map(|l| l.join("\n"))
        .unwrap_or_default();
    (span, snippet)
}
