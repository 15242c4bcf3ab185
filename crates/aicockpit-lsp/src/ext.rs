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
    /// The active AI service, request and completion counters, the last AI error.
    pub ai: aicockpit_engine::AiStats,
    /// The names of the configured AI services, for a client's service picker.
    #[serde(default)]
    pub services: Vec<String>,
}

/// `textDocument/inlineCompletion` parameters (LSP 3.18; lsp-types 0.94 lacks them).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionParams {
    pub text_document: tower_lsp::lsp_types::TextDocumentIdentifier,
    pub position: tower_lsp::lsp_types::Position,
    #[serde(default)]
    pub context: Option<serde_json::Value>,
}

/// `textDocument/inlineCompletion` result.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionList {
    pub items: Vec<InlineCompletionItem>,
}

/// One ghost-text suggestion.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineCompletionItem {
    pub insert_text: String,
    /// Absent for a pure insertion at the cursor, so clients draw the text
    /// inline instead of over the rest of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    /// `aicockpit.acceptCompletion` with `{id, length}`: the editor runs it when the item is accepted.
    pub command: tower_lsp::lsp_types::Command,
}

/// `aicockpit/chat` parameters.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParams {
    pub messages: Vec<ChatMessage>,
    /// The document the user is in.
    #[serde(default)]
    pub uri: Option<Url>,
    /// The selection; an empty one means "the symbol at this position".
    #[serde(default)]
    pub range: Option<Range>,
    /// When set, pieces of the reply are sent as `$/progress` with `{"delta": "…"}` values.
    #[serde(default)]
    pub partial_result_token: Option<tower_lsp::lsp_types::NumberOrString>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// `aicockpit/chat` result.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatResult {
    pub content: String,
    /// Project files the answer drew on, relative to the root.
    pub sources: Vec<String>,
}

/// `aicockpit/suggestCommand` parameters.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SuggestCommandParams {
    pub description: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub shell: Option<String>,
}

/// `textDocument/didShowCompletion` and `textDocument/didPartiallyAcceptCompletion`
/// (the Copilot language server's notifications).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionFeedback {
    #[serde(default)]
    pub item: Option<serde_json::Value>,
    #[serde(default)]
    pub accepted_length: Option<u64>,
}

/// `aicockpit/didChangeStatus` (server → client): AI working, failing or fine.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct AiStatusNotification {
    /// `working`, `ok`, `failing` or `inactive`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Why it is failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl tower_lsp::lsp_types::notification::Notification for AiStatusNotification {
    type Params = AiStatusNotification;
    const METHOD: &'static str = "aicockpit/didChangeStatus";
}

/// The `data` of an AI code action, resolved lazily by `codeAction/resolve`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CodeActionData {
    pub uri: Url,
    pub range: Range,
    pub action: aicockpit_engine::AiAction,
    #[serde(default)]
    pub diagnostic: Option<String>,
}
