//! The AI requests of the language server: inline completions, completion
//! items, chat with streamed partial results, code actions resolved lazily,
//! shell-command help, completion feedback, and the AI status notification.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aicockpit_engine::{AiActionOutcome, ChatParams, Engine, EngineError};
use tower_lsp::jsonrpc::{self, Result};
use tower_lsp::lsp_types::*;

use super::{engine_error, internal, Backend};
use crate::ext::{self, AiActionKind as AiAction};
use crate::{from_proto, to_proto};

/// The commands the server executes.
pub const ACCEPT_COMMAND: &str = "aicockpit.acceptCompletion";
pub const EXPLAIN_COMMAND: &str = "aicockpit.explain";
/// Computes an AI edit and applies it with `workspace/applyEdit`, for clients
/// that do not resolve a code action's `edit`.
pub const APPLY_COMMAND: &str = "aicockpit.applyAction";

impl Backend {
    /// Tell the client when AI starts working, fails (with the reason) or is fine again.
    async fn ai_status(&self, engine: &Engine, result: Option<&std::result::Result<(), String>>) {
        let stats = engine.ai_stats();
        let (state, message) = match result {
            None => ("working", None),
            Some(Ok(())) => ("ok", None),
            Some(Err(message)) => ("failing", Some(message.clone())),
        };
        let notification = ext::AiStatusNotification {
            state: state.into(),
            service: stats.service,
            message,
        };
        {
            let mut last = self
                .inner
                .last_ai_status
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.as_ref() == Some(&notification) {
                return;
            }
            *last = Some(notification.clone());
        }
        let announce = match notification.state.as_str() {
            "failing" => !self.inner.ai_failure_shown.swap(true, Ordering::SeqCst),
            "ok" => {
                self.inner.ai_failure_shown.store(false, Ordering::SeqCst);
                false
            }
            _ => false,
        };
        let failure = announce.then(|| {
            failure_message(
                &notification,
                &self.inner.options.paths,
                self.inner.is_shared(),
            )
        });
        self.client
            .send_notification::<ext::AiStatusNotification>(notification)
            .await;
        if let Some(message) = failure {
            self.client.show_message(MessageType::ERROR, message).await;
        }
    }

    /// Run one AI request with status notifications around it.
    async fn with_ai_status<T>(
        &self,
        engine: &Engine,
        work: impl std::future::Future<Output = std::result::Result<T, EngineError>>,
    ) -> Result<T> {
        self.ai_status(engine, None).await;
        // If this future is dropped (cancelled, superseded), "working" must not stay up.
        let mut reset = StatusReset {
            backend: Some(Backend {
                client: self.client.clone(),
                inner: self.inner.clone(),
            }),
        };
        let result = work.await;
        reset.backend = None;
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.ai_status(engine, Some(&outcome)).await;
        result.map_err(ai_error)
    }

    /// Whether `generation` is still the newest inline request for `uri`.
    fn is_latest_inline(&self, uri: &Url, generation: u64) -> bool {
        let generations = self
            .inner
            .inline_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        generations.get(uri).copied() == Some(generation)
    }

    pub(super) async fn inline_completion(
        &self,
        params: ext::InlineCompletionParams,
    ) -> Result<ext::InlineCompletionList> {
        let engine = self.engine()?;
        let uri = params.text_document.uri;
        let path = from_proto::path(&uri)?;
        let unit = self.inner.unit();
        // Debounce: a newer request for the same document supersedes this one, which still gets an (empty) answer.
        let generation = {
            let mut generations = self
                .inner
                .inline_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let generation = generations.entry(uri.clone()).or_insert(0);
            *generation += 1;
            *generation
        };
        self.inner.inline_changed.notify_waiters();
        tokio::time::sleep(Duration::from_millis(
            engine.config().completion.debounce_ms,
        ))
        .await;
        if !self.is_latest_inline(&uri, generation) {
            return Ok(ext::InlineCompletionList::default());
        }
        let Some((_, offset)) = engine.offset(&path, from_proto::position(params.position), unit)
        else {
            return Ok(ext::InlineCompletionList::default());
        };
        // A newer request for this document cancels this one even while its HTTP request is under way.
        let superseded = async {
            loop {
                let notified = self.inner.inline_changed.notified();
                if !self.is_latest_inline(&uri, generation) {
                    return;
                }
                notified.await;
            }
        };
        let completion = tokio::select! {
            result = self.with_ai_status(&engine, engine.inline_completion(&path, offset)) => result?,
            () = superseded => return Ok(ext::InlineCompletionList::default()),
        };
        Ok(ext::InlineCompletionList {
            items: completion
                .into_iter()
                .map(|completion| {
                    let length = completion.text.chars().count();
                    ext::InlineCompletionItem {
                        insert_text: completion.text,
                        range: None,
                        command: Command {
                            title: "Accept".into(),
                            command: ACCEPT_COMMAND.into(),
                            arguments: Some(vec![
                                serde_json::json!({"id": completion.id, "length": length}),
                            ]),
                        },
                    }
                })
                .collect(),
        })
    }

    pub(super) async fn completion_items(
        &self,
        params: CompletionParams,
    ) -> Result<Option<CompletionResponse>> {
        let engine = self.engine()?;
        let position = params.text_document_position;
        let path = from_proto::path(&position.text_document.uri)?;
        let unit = self.inner.unit();
        let Some((text, offset)) =
            engine.offset(&path, from_proto::position(position.position), unit)
        else {
            return Ok(None);
        };
        let start = text[..offset]
            .bytes()
            .rposition(|b| !aicockpit_engine::is_identifier_byte(b))
            .map_or(0, |i| i + 1);
        let word = &text[start..offset];
        let mut items: Vec<CompletionItem> = Vec::new();
        if !word.is_empty() {
            let mut seen = std::collections::HashSet::new();
            for (_, symbol) in engine.workspace_symbols(word, 50) {
                if symbol.name.len() >= word.len()
                    && symbol
                        .name
                        .get(..word.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(word))
                    && seen.insert(symbol.name.clone())
                {
                    items.push(CompletionItem {
                        label: symbol.name.to_string(),
                        kind: Some(completion_kind(symbol.kind)),
                        detail: Some(symbol.signature.to_string()),
                        documentation: symbol
                            .doc
                            .as_deref()
                            .map(|doc| Documentation::String(doc.into())),
                        ..CompletionItem::default()
                    });
                }
            }
        }
        // The AI item is asked for only when the user invokes completion: it is slow.
        let invoked = params
            .context
            .as_ref()
            .is_none_or(|c| c.trigger_kind == CompletionTriggerKind::INVOKED);
        if invoked {
            if let Ok(Some(completion)) = self
                .with_ai_status(&engine, engine.inline_completion(&path, offset))
                .await
            {
                let label = completion
                    .text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let cursor = position.position;
                let length = completion.text.chars().count();
                items.insert(
                    0,
                    CompletionItem {
                        label: format!("✦ {label}"),
                        kind: Some(CompletionItemKind::SNIPPET),
                        detail: Some("AiCockpit".into()),
                        filter_text: Some(format!("{word}{}", completion.text)),
                        sort_text: Some("0".into()),
                        text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                            range: Range {
                                start: cursor,
                                end: cursor,
                            },
                            new_text: completion.text,
                        })),
                        command: Some(Command {
                            title: "Accept".into(),
                            command: ACCEPT_COMMAND.into(),
                            arguments: Some(vec![
                                serde_json::json!({"id": completion.id, "length": length}),
                            ]),
                        }),
                        ..CompletionItem::default()
                    },
                );
            }
        }
        Ok(Some(CompletionResponse::List(CompletionList {
            is_incomplete: true,
            items,
        })))
    }

    pub(super) async fn chat(&self, params: ext::ChatParams) -> Result<ext::ChatResult> {
        let engine = self.engine()?;
        let unit = self.inner.unit();
        let mut messages = Vec::new();
        for message in params.messages {
            let role = match message.role.as_str() {
                "system" => aicockpit_engine::Role::System,
                "user" => aicockpit_engine::Role::User,
                "assistant" => aicockpit_engine::Role::Assistant,
                other => {
                    return Err(jsonrpc::Error::invalid_params(format!(
                        "unknown role {other:?}: use system, user or assistant"
                    )))
                }
            };
            messages.push(aicockpit_engine::ChatMessage::new(role, message.content));
        }
        if messages.is_empty() {
            return Err(jsonrpc::Error::invalid_params("`messages` is empty"));
        }
        let path = params.uri.as_ref().map(from_proto::path).transpose()?;
        let selection = match (&path, params.range) {
            (Some(path), Some(range)) => engine
                .offset(path, from_proto::position(range.start), unit)
                .and_then(|(_, start)| {
                    let end = engine
                        .offset(path, from_proto::position(range.end), unit)?
                        .1;
                    Some(start..end.max(start))
                }),
            _ => None,
        };
        // Pieces go out as they arrive, in order, through a channel drained
        // by this task, and all of them before the response: through the
        // transport's own queue when it has one (see `DirectOutput`).
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let client = self.client.clone();
        let direct = self.inner.direct_output();
        let token = params.partial_result_token.clone();
        // Aborted if this request is cancelled or the session ends: no piece
        // goes out after the request's (error) response.
        let mut forward = AbortOnDrop(tokio::spawn(async move {
            while let Some(delta) = receiver.recv().await {
                let Some(token) = &token else { continue };
                // Partial results carry our own value shape: {"delta": "…"}.
                let params = PartialResultParams {
                    token: token.clone(),
                    value: serde_json::json!({"delta": delta}),
                };
                match &direct {
                    Some(direct) => {
                        let message = serde_json::json!({
                            "jsonrpc": "2.0",
                            "method": "$/progress",
                            "params": params,
                        });
                        if !direct.send(message.to_string()).await {
                            return;
                        }
                    }
                    None => client.send_notification::<PartialResult>(params).await,
                }
            }
        }));
        let request = ChatParams {
            messages,
            path,
            selection,
            whole_file: false,
        };
        let answer = self
            .with_ai_status(
                &engine,
                engine.chat(request, |delta| {
                    let _ = sender.send(delta.to_string());
                }),
            )
            .await;
        drop(sender);
        let _ = (&mut forward.0).await;
        let answer = answer?;
        Ok(ext::ChatResult {
            content: answer.content,
            sources: answer.sources,
        })
    }

    pub(super) async fn suggest_command(
        &self,
        params: ext::SuggestCommandParams,
    ) -> Result<ext::SuggestedCommand> {
        let engine = self.engine()?;
        if params.description.trim().is_empty() {
            return Err(jsonrpc::Error::invalid_params("`description` is empty"));
        }
        self.with_ai_status(
            &engine,
            engine.suggest_command(
                &params.description,
                params.cwd.as_deref(),
                params.shell.as_deref(),
            ),
        )
        .await
        .map(ext::SuggestedCommand::from)
    }

    pub(super) async fn did_show_completion(&self, _: ext::CompletionFeedback) {
        if let Ok(engine) = self.engine() {
            engine.completion_shown();
        }
    }

    pub(super) async fn did_partially_accept_completion(&self, params: ext::CompletionFeedback) {
        if let Ok(engine) = self.engine() {
            // The item is the one we sent: its accept command carries our id.
            let id = params
                .item
                .as_ref()
                .and_then(|item| item["command"]["arguments"][0]["id"].as_u64());
            engine.completion_partially_accepted(id, params.accepted_length.unwrap_or(0));
        }
    }

    /// Cheap: the AI actions on offer for a range, in the form the client can
    /// use. Explain is always a command (it edits nothing). An edit is left to
    /// `codeAction/resolve` only for clients that resolve `edit`; other
    /// clients get a command that computes the edit and applies it through
    /// `workspace/applyEdit`. Clients without `codeActionLiteralSupport` get
    /// bare commands.
    pub(super) fn ai_code_actions(&self, params: &CodeActionParams) -> Vec<CodeActionOrCommand> {
        let client = self
            .inner
            .capabilities()
            .text_document
            .as_ref()
            .and_then(|t| t.code_action.as_ref());
        let literals = client.is_some_and(|c| c.code_action_literal_support.is_some());
        let resolves_edit = client
            .and_then(|c| c.resolve_support.as_ref())
            .is_some_and(|r| r.properties.iter().any(|p| p == "edit"));
        let mut actions = Vec::new();
        let mut offer = |title: String,
                         kind: Option<CodeActionKind>,
                         action: AiAction,
                         diagnostic: Option<&Diagnostic>| {
            let data = ext::CodeActionData {
                uri: params.text_document.uri.clone(),
                range: params.range,
                action,
                diagnostic: diagnostic.map(|d| d.message.clone()),
            };
            let data = serde_json::to_value(data).ok();
            let lazy_edit = action != AiAction::Explain && literals && resolves_edit;
            let command = (!lazy_edit).then(|| Command {
                title: title.clone(),
                command: if action == AiAction::Explain {
                    EXPLAIN_COMMAND.into()
                } else {
                    APPLY_COMMAND.into()
                },
                arguments: data.clone().map(|d| vec![d]),
            });
            if !literals {
                if let Some(command) = command {
                    actions.push(CodeActionOrCommand::Command(command));
                }
                return;
            }
            actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind,
                diagnostics: diagnostic.map(|d| vec![d.clone()]),
                data: if lazy_edit { data } else { None },
                command,
                ..CodeAction::default()
            }));
        };
        // A viewer's session offers explanations only: they edit nothing.
        let diagnostics = if self.inner.read_only() {
            &[][..]
        } else {
            &params.context.diagnostics[..]
        };
        for diagnostic in diagnostics {
            let short: String = diagnostic
                .message
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            offer(
                format!("AiCockpit: fix \"{short}\""),
                Some(CodeActionKind::QUICKFIX),
                AiAction::Fix,
                Some(diagnostic),
            );
        }
        // No kind: an explanation is no refactoring, and the empty kind is no kind.
        offer("AiCockpit: explain".into(), None, AiAction::Explain, None);
        if self.inner.read_only() {
            return actions;
        }
        offer(
            "AiCockpit: refactor".into(),
            Some(CodeActionKind::REFACTOR_REWRITE),
            AiAction::Refactor,
            None,
        );
        offer(
            "AiCockpit: add documentation".into(),
            Some(CodeActionKind::REFACTOR_REWRITE),
            AiAction::Document,
            None,
        );
        actions
    }

    /// Ask the AI for one action on the range in `data`.
    async fn run_ai_action(&self, data: &ext::CodeActionData) -> Result<AiActionOutcome> {
        if self.inner.read_only() && data.action != AiAction::Explain {
            return Err(read_only_error());
        }
        let engine = self.engine()?;
        let path = from_proto::path(&data.uri)?;
        let unit = self.inner.unit();
        let Some((_, start)) = engine.offset(&path, from_proto::position(data.range.start), unit)
        else {
            return Err(jsonrpc::Error::invalid_params(format!(
                "cannot read {}",
                data.uri
            )));
        };
        let end = engine
            .offset(&path, from_proto::position(data.range.end), unit)
            .map_or(start, |(_, end)| end.max(start));
        self.with_ai_status(
            &engine,
            engine.ai_action(
                data.action.into(),
                &path,
                start..end,
                data.diagnostic.as_deref(),
            ),
        )
        .await
    }

    /// One edit of one document, as `documentChanges` (with the version the AI
    /// saw, so the editor can refuse a stale edit) where the client takes
    /// them, else as plain `changes`.
    fn workspace_edit(
        &self,
        uri: &Url,
        span: aicockpit_engine::Span,
        version: Option<i32>,
        new_text: String,
    ) -> WorkspaceEdit {
        let edit = TextEdit {
            range: to_proto::range(span, self.inner.unit()),
            new_text,
        };
        let document_changes = self
            .inner
            .capabilities()
            .workspace
            .as_ref()
            .and_then(|w| w.workspace_edit.as_ref())
            .and_then(|e| e.document_changes)
            == Some(true);
        if document_changes {
            WorkspaceEdit {
                document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier {
                        uri: uri.clone(),
                        version,
                    },
                    edits: vec![OneOf::Left(edit)],
                }])),
                ..WorkspaceEdit::default()
            }
        } else {
            WorkspaceEdit {
                changes: Some([(uri.clone(), vec![edit])].into_iter().collect()),
                ..WorkspaceEdit::default()
            }
        }
    }

    /// Expensive: ask the AI and turn its answer into an edit (or an explanation).
    pub(super) async fn resolve_ai_code_action(
        &self,
        mut action: CodeAction,
    ) -> Result<CodeAction> {
        let Some(data) = action
            .data
            .clone()
            .and_then(|d| serde_json::from_value::<ext::CodeActionData>(d).ok())
        else {
            return Ok(action);
        };
        match self.run_ai_action(&data).await? {
            AiActionOutcome::Explanation(explanation) => {
                action.command = Some(Command {
                    title: "Show the explanation".into(),
                    command: EXPLAIN_COMMAND.into(),
                    arguments: Some(vec![serde_json::Value::String(explanation)]),
                });
            }
            AiActionOutcome::Edit {
                span,
                version,
                new_text,
                ..
            } => {
                action.edit = Some(self.workspace_edit(&data.uri, span, version, new_text));
            }
        }
        Ok(action)
    }

    pub(super) async fn execute_ai_command(
        &self,
        params: ExecuteCommandParams,
    ) -> Result<Option<serde_json::Value>> {
        let engine = self.engine()?;
        let argument = params.arguments.first().cloned();
        let data = || {
            argument
                .clone()
                .and_then(|a| serde_json::from_value::<ext::CodeActionData>(a).ok())
                .ok_or_else(|| {
                    jsonrpc::Error::invalid_params(format!(
                        "{} takes the code action's data: {{uri, range, action}}",
                        params.command
                    ))
                })
        };
        match params.command.as_str() {
            ACCEPT_COMMAND => {
                let length = argument
                    .as_ref()
                    .and_then(|a| a["length"].as_u64())
                    .unwrap_or(0);
                let id = argument.as_ref().and_then(|a| a["id"].as_u64());
                engine.completion_accepted(id, length);
                Ok(None)
            }
            // An explanation already made (from `codeAction/resolve`): show it.
            EXPLAIN_COMMAND if argument.as_ref().is_some_and(|a| a.is_string()) => {
                let text = argument
                    .as_ref()
                    .and_then(|a| a.as_str())
                    .unwrap_or("")
                    .to_string();
                self.client.show_message(MessageType::INFO, text).await;
                Ok(None)
            }
            APPLY_COMMAND if self.inner.read_only() => Err(read_only_error()),
            EXPLAIN_COMMAND | APPLY_COMMAND => {
                let data = data()?;
                match self.run_ai_action(&data).await? {
                    AiActionOutcome::Explanation(explanation) => {
                        self.client
                            .show_message(MessageType::INFO, explanation.clone())
                            .await;
                        Ok(Some(serde_json::Value::String(explanation)))
                    }
                    AiActionOutcome::Edit {
                        span,
                        version,
                        new_text,
                        ..
                    } => {
                        let edit = self.workspace_edit(&data.uri, span, version, new_text);
                        let applied = self.client.apply_edit(edit).await?;
                        if applied.applied {
                            Ok(None)
                        } else {
                            Err(internal(format!(
                                "the editor did not apply the edit: {}",
                                applied
                                    .failure_reason
                                    .as_deref()
                                    .unwrap_or("no reason given")
                            )))
                        }
                    }
                }
            }
            other => Err(jsonrpc::Error::invalid_params(format!(
                "unknown command {other:?}"
            ))),
        }
    }
}

/// The one message a user sees when AI starts failing: what failed and how to fix it.
/// A shared project's users are not its administrators: they are not shown
/// the server's folders, and are told whom to ask.
fn failure_message(
    status: &ext::AiStatusNotification,
    paths: &aicockpit_config::Paths,
    shared: bool,
) -> String {
    let service = status.service.as_deref().map_or_else(
        || "the AI service".to_string(),
        |name| format!("the AI service {name:?}"),
    );
    if shared {
        return format!(
            "AiCockpit: {service} is failing: {}. The server's administrator configures its AI services. \
             This message is shown again only after the service recovers and fails anew.",
            status.message.as_deref().unwrap_or("no reason given"),
        );
    }
    format!(
        "AiCockpit: {service} is failing: {}. Check it with `aicockpit ai test`; \
         services are configured in {} (see `aicockpit ai list`). \
         This message is shown again only after the service recovers and fails anew.",
        status.message.as_deref().unwrap_or("no reason given"),
        paths.config_file.display()
    )
}

/// Sends `ok` if a request ends without reporting, e.g. when it is cancelled.
struct StatusReset {
    backend: Option<Backend>,
}

impl Drop for StatusReset {
    fn drop(&mut self) {
        let Some(backend) = self.backend.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let notification = {
                let mut last = backend
                    .inner
                    .last_ai_status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match last.as_ref() {
                    Some(status) if status.state == "working" => {
                        let ok = ext::AiStatusNotification {
                            state: "ok".into(),
                            service: status.service.clone(),
                            message: None,
                        };
                        *last = Some(ok.clone());
                        ok
                    }
                    _ => return,
                }
            };
            backend
                .client
                .send_notification::<ext::AiStatusNotification>(notification)
                .await;
        });
    }
}

/// What a viewer's session answers a request for an AI edit.
fn read_only_error() -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::ServerError(-32003),
        message: "this is a read-only session: AI edits are not available".into(),
        data: None,
    }
}

/// Aborts a task when dropped (with the request future that owns it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `$/progress` with a partial result of our own shape.
enum PartialResult {}

#[derive(serde::Serialize, serde::Deserialize)]
struct PartialResultParams {
    token: NumberOrString,
    value: serde_json::Value,
}

impl tower_lsp::lsp_types::notification::Notification for PartialResult {
    type Params = PartialResultParams;
    const METHOD: &'static str = "$/progress";
}

fn completion_kind(kind: aicockpit_engine::SymbolKind) -> CompletionItemKind {
    use aicockpit_engine::SymbolKind as K;
    match kind {
        K::Function | K::Macro => CompletionItemKind::FUNCTION,
        K::Method => CompletionItemKind::METHOD,
        K::Constructor => CompletionItemKind::CONSTRUCTOR,
        K::Class | K::Impl => CompletionItemKind::CLASS,
        K::Struct => CompletionItemKind::STRUCT,
        K::Enum => CompletionItemKind::ENUM,
        K::EnumMember => CompletionItemKind::ENUM_MEMBER,
        K::Interface => CompletionItemKind::INTERFACE,
        K::Module | K::Namespace => CompletionItemKind::MODULE,
        K::Field => CompletionItemKind::FIELD,
        K::Variable => CompletionItemKind::VARIABLE,
        K::Constant => CompletionItemKind::CONSTANT,
        K::TypeAlias => CompletionItemKind::TYPE_PARAMETER,
    }
}

/// AI failures are request failures with the service's reason; a missing
/// service is a request the server cannot serve yet.
fn ai_error(error: EngineError) -> jsonrpc::Error {
    match error {
        EngineError::NoAiService => jsonrpc::Error {
            code: jsonrpc::ErrorCode::ServerError(-32001),
            message: error.to_string().into(),
            data: None,
        },
        EngineError::Ai(ai) => jsonrpc::Error {
            code: jsonrpc::ErrorCode::ServerError(-32000),
            message: ai.to_string().into(),
            data: None,
        },
        other => engine_error(other),
    }
}
