//! AiCockpit's own LSP methods (namespaced `aicockpit/…`), documented in `docs/lsp.md`.

use serde::{Deserialize, Serialize};
use tower_lsp::lsp_types::{Range, SymbolKind, Url};

/// `aicockpit/search` parameters.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    pub query: String,
    /// Maximum hits; defaults to `search.max_results`.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Files or folders to search within: paths relative to the root, absolute paths or `file://` URIs.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Only symbols of these kinds (`function`, `class`, `method`, …).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
}

/// One `aicockpit/search` hit.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub uri: Url,
    pub range: Range,
    pub score: f32,
    pub snippet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<SearchSymbol>,
}

/// The symbol a search hit is, or is inside.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchSymbol {
    pub name: String,
    pub kind: SymbolKind,
    /// Our own kind name (`impl`, `macro`, `type` have no exact LSP kind).
    pub kind_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub signature: String,
}

/// `aicockpit/status` result.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: String,
    /// The project root, if the client sent one.
    pub root: Option<String>,
    pub index_dir: Option<String>,
    /// True while the index is being built or refreshed.
    pub indexing: bool,
    pub files: usize,
    pub symbols: usize,
    pub chunks: usize,
    /// Set when another process holds the index's writer lock.
    pub read_only: bool,
    pub open_documents: usize,
    /// `utf-16` or `utf-8`.
    pub position_encoding: String,
    /// Duration of the last full index refresh, in milliseconds.
    pub last_index_ms: Option<f64>,
    /// The last error the server met, if any.
    pub last_error: Option<String>,
}
