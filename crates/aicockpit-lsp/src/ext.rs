//! AiCockpit's own LSP methods (namespaced `aicockpit/…`), documented in
//! `docs/lsp.md`. Everything sent to a client is a type of this module,
//! converted from the engine's plain types here: the engine's structs never
//! go on the wire as they are, so changing one cannot change the protocol.

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
    /// `text`, `semantic` or `hybrid`; defaults to `search.mode`.
    #[serde(default)]
    pub mode: Option<String>,
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
    /// Which retrievers found the hit: `text`, `semantic`, or both.
    #[serde(default)]
    pub retrievers: Vec<String>,
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
    /// Why search is text-only, with the command to run; `null` when
    /// semantic search has (or may have) vectors.
    #[serde(default)]
    pub semantic_unavailable: Option<String>,
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
    pub ai: AiStats,
    /// The names of the configured AI services, for a client's service picker.
    #[serde(default)]
    pub services: Vec<String>,
    /// This session: shared with others, read-only, its open documents.
    #[serde(default)]
    pub session: SessionInfo,
}

/// The session a status is asked in.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The project is shared with other sessions (the web server's WebSockets).
    pub shared: bool,
    /// A viewer's session: edits are not applied and AI edits not offered.
    pub read_only: bool,
    /// Documents this session has open (`openDocuments` counts every session's).
    pub documents: usize,
}

/// AI counters in `aicockpit/status`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiStats {
    /// The active service, if one is configured.
    pub service: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    pub failures: u64,
    pub completions_shown: u64,
    pub completions_accepted: u64,
    pub accepted_chars: u64,
    pub last_error: Option<String>,
    /// How the last inline completion asked the model: `template`, `infill`, `suffix` or `chat`.
    pub inline_method: Option<String>,
    /// The context size the service says it serves (llama.cpp's `/props`).
    pub served_context_tokens: Option<usize>,
    /// The prompt budget (tokens) the last inline completion used.
    pub prompt_budget_tokens: Option<usize>,
    /// The last answered inline completion, in milliseconds…
    pub last_inline_ms: Option<f64>,
    /// …of which waiting for the service.
    pub last_inline_service_ms: Option<f64>,
}

impl From<aicockpit_engine::AiStats> for AiStats {
    fn from(stats: aicockpit_engine::AiStats) -> AiStats {
        use aicockpit_engine::fim::FimMethod;
        AiStats {
            service: stats.service,
            model: stats.model,
            requests: stats.requests,
            failures: stats.failures,
            completions_shown: stats.completions_shown,
            completions_accepted: stats.completions_accepted,
            accepted_chars: stats.accepted_chars,
            last_error: stats.last_error,
            inline_method: stats.inline_method.map(|method| {
                match method {
                    FimMethod::Template => "template",
                    FimMethod::Infill => "infill",
                    FimMethod::Suffix => "suffix",
                    FimMethod::Chat => "chat",
                }
                .to_string()
            }),
            served_context_tokens: stats.served_context_tokens,
            prompt_budget_tokens: stats.prompt_budget_tokens,
            last_inline_ms: stats.last_inline_ms,
            last_inline_service_ms: stats.last_inline_service_ms,
        }
    }
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

/// `aicockpit/suggestCommand` result: a shell command, never run by us.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SuggestedCommand {
    pub command: String,
    pub explanation: String,
}

impl From<aicockpit_engine::SuggestedCommand> for SuggestedCommand {
    fn from(suggested: aicockpit_engine::SuggestedCommand) -> SuggestedCommand {
        SuggestedCommand {
            command: suggested.command,
            explanation: suggested.explanation,
        }
    }
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
    pub action: AiActionKind,
    #[serde(default)]
    pub diagnostic: Option<String>,
}

/// What an AI code action does, as its `data` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AiActionKind {
    Explain,
    Refactor,
    Document,
    Fix,
}

impl From<AiActionKind> for aicockpit_engine::AiAction {
    fn from(kind: AiActionKind) -> aicockpit_engine::AiAction {
        use aicockpit_engine::AiAction;
        match kind {
            AiActionKind::Explain => AiAction::Explain,
            AiActionKind::Refactor => AiAction::Refactor,
            AiActionKind::Document => AiAction::Document,
            AiActionKind::Fix => AiAction::Fix,
        }
    }
}
