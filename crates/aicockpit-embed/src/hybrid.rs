//! Search in three modes over the project index and the vector store: text
//! (BM25 alone), semantic (the dense ranking alone) and hybrid (both, fused;
//! text alone where no vectors exist). Every hit names its retrievers.

use std::collections::HashSet;

use aicockpit_config::SearchMode;
use aicockpit_index::{ProjectIndex, SearchHit, SearchQuery};
use aicockpit_syntax::Span;

use crate::fusion::{fuse, Fusion, Retriever};
use crate::store::{DenseHit, VectorStore};
use crate::{EmbedError, Embedder};

/// The most hits (and list depth) a search gives, as the text index bounds its own.
const MAX_HITS: usize = 1000;

/// Lines of a chunk shown as the snippet of a hit only the dense list found.
const SNIPPET_LINES: usize = 3;

/// One search result with the retrievers that found it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RankedHit {
    #[serde(flatten)]
    pub hit: SearchHit,
    pub retrievers: Vec<Retriever>,
}

/// The dense side of a search: the store and the model that embeds queries.
pub struct Semantic<'a> {
    pub store: &'a VectorStore,
    pub embedder: &'a dyn Embedder,
}

/// What can stop a search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Index(#[from] aicockpit_index::IndexError),
    #[error("embedding the query: {0}")]
    Embed(#[from] EmbedError),
    #[error("semantic search needs vectors: {0}")]
    NoVectors(String),
}

/// Search `index` in `mode`. `semantic` is `None` when no embedder or no
/// vectors are available; `unavailable` then says why, for semantic mode's
/// error (hybrid quietly falls back to text).
pub fn search(
    index: &ProjectIndex,
    semantic: Option<Semantic<'_>>,
    unavailable: &str,
    query: &SearchQuery,
    mode: SearchMode,
    fusion: &Fusion,
) -> Result<Vec<RankedHit>, SearchError> {
    let semantic = semantic.filter(|s| s.store.has_vectors());
    let text_only = |hits: Vec<SearchHit>| {
        hits.into_iter()
            .map(|hit| RankedHit {
                hit,
                retrievers: vec![Retriever::Text],
            })
            .collect()
    };
    let semantic = match (mode, semantic) {
        (SearchMode::Text, _) => return Ok(text_only(index.search(query)?)),
        (SearchMode::Semantic, None) => {
            return Err(SearchError::NoVectors(unavailable.to_string()))
        }
        (SearchMode::Hybrid, None) => return Ok(text_only(index.search(query)?)),
        (_, Some(semantic)) => semantic,
    };
    // Bounded as the text index bounds its own lists.
    let limit = query.limit.clamp(1, MAX_HITS);
    let depth = fusion.depth.max(limit).min(MAX_HITS);
    let vector = semantic
        .embedder
        .embed(&[query.text.as_str()])?
        .into_iter()
        .next()
        .unwrap_or_default();
    let dense = semantic.store.search(&vector, depth, &query.paths);
    if mode == SearchMode::Semantic {
        let mut hits = Vec::new();
        for found in dense.into_iter().take(limit) {
            let score = found.score;
            hits.push(RankedHit {
                hit: dense_hit(index, found, score),
                retrievers: vec![Retriever::Semantic],
            });
        }
        return Ok(hits);
    }
    let text = index.search(&SearchQuery {
        limit: depth,
        ..query.clone()
    })?;
    // Both rankings speak of chunks: a text hit is keyed by the stored chunk
    // that holds its line (or by its own line when no chunk does).
    let text_keys: Vec<Key> = text
        .iter()
        .map(|hit| key_of(semantic.store, &hit.path, hit.span.start.line))
        .collect();
    let dense_keys: Vec<Key> = dense
        .iter()
        .map(|hit| key_of(semantic.store, &hit.path, hit.span.start.line))
        .collect();
    let fused = fuse(&text_keys, &dense_keys, fusion);
    let mut text_hits: Vec<Option<SearchHit>> = text.into_iter().map(Some).collect();
    let mut dense_hits: Vec<Option<DenseHit>> = dense.into_iter().map(Some).collect();
    let mut seen = HashSet::new();
    let mut hits = Vec::new();
    for fused in fused.into_iter().take(limit) {
        if !seen.insert(fused.key.clone()) {
            continue;
        }
        let retrievers = fused.retrievers();
        let from_text = fused
            .text_rank
            .and_then(|rank| text_hits.get_mut(rank - 1))
            .and_then(Option::take);
        let hit = match from_text {
            Some(mut hit) => {
                hit.score = fused.score;
                hit
            }
            None => match fused
                .semantic_rank
                .and_then(|rank| dense_hits.get_mut(rank - 1))
                .and_then(Option::take)
            {
                Some(found) => dense_hit(index, found, fused.score),
                None => continue,
            },
        };
        hits.push(RankedHit { hit, retrievers });
    }
    Ok(hits)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Chunk(String, u32, u32),
    Line(String, u32),
}

fn key_of(store: &VectorStore, path: &str, line: u32) -> Key {
    // The innermost stored chunk holding the line.
    store
        .chunks_of(path)
        .iter()
        .filter(|c| c.span.start.line <= line && line <= c.span.end.line)
        .min_by_key(|c| c.span.end.line - c.span.start.line)
        .map_or_else(
            || Key::Line(path.to_string(), line),
            |c| Key::Chunk(path.to_string(), c.span.start.line, c.span.end.line),
        )
}

/// A search hit for a chunk only the dense list found: its span, its first
/// lines as the snippet, and its symbol when the index knows it.
fn dense_hit(index: &ProjectIndex, found: DenseHit, score: f32) -> SearchHit {
    let snippet = index
        .read(&found.path)
        .map(|text| snippet(&text, found.span))
        .unwrap_or_default();
    let symbol = found.symbol.as_ref().and_then(|name| {
        index.file(&found.path).and_then(|record| {
            record
                .symbols
                .iter()
                .filter(|s| *s.name == **name)
                .min_by_key(|s| s.range.start.line.abs_diff(found.span.start.line))
                .cloned()
        })
    });
    SearchHit {
        path: found.path,
        span: found.span,
        score,
        snippet,
        symbol,
    }
}

fn snippet(text: &str, span: Span) -> String {
    text.lines()
        .skip(span.start.line as usize)
        .take(SNIPPET_LINES.min((span.end.line - span.start.line) as usize + 1))
        .collect::<Vec<_>>()
        .join("\n")
}
