//! The `LanguageServer` implementation: LSP lifecycle, text sync, navigation,
//! progress and AiCockpit's custom requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use aicockpit_config::{Config, Paths};
use aicockpit_engine::{
    ColumnUnit, Engine, EngineError, HolderId, LanguageId, SearchQuery, SymbolKind,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp::jsonrpc::{self, Result};
use tower_lsp::lsp_types::notification::Progress;
use tower_lsp::lsp_types::request::WorkDoneProgressCreate;
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, LanguageServer, LspService, Server};

use crate::ext;
use crate::project::{EmbedPhase, IndexPhase, SharedEngine};
use crate::{from_proto, to_proto};

#[path = "ai_methods.rs"]
mod ai_methods;
#[path = "root.rs"]
mod root;

/// How long the server waits for the client to answer one of its requests.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The token of the first-index progress.
const INDEX_PROGRESS_TOKEN: &str = "aicockpit/index";
/// The prefix of each embedding run's progress token (the run's number follows).
const EMBED_PROGRESS_TOKEN: &str = "aicockpit/embedding/";

/// The largest message [`crate::serve_messages`] takes by default; larger
/// ones are answered with an error and dropped.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long [`crate::serve_messages`] waits for a client to take a message by default.
pub const SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server is started.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Config from the file and the environment; the client's settings go
    /// on top (own engine only: a shared engine's config is the server's).
    pub config: Config,
    pub paths: Paths,
    /// Serve this folder whatever the client says its root is.
    pub root_override: Option<PathBuf>,
    /// Serve this project, shared with other sessions, instead of opening
    /// one at `initialize`: the root is the project's (the client's is
    /// ignored) and client settings change nothing (see docs/lsp.md).
    pub shared: Option<SharedEngine>,
    /// A viewer's session: reads, navigation, search and AI answers work;
    /// its text-sync notifications never reach the engine, and AI edits
    /// are neither offered nor applied.
    pub read_only: bool,
    /// Messages larger than this are refused ([`crate::serve_messages`]).
    pub max_message_bytes: usize,
    /// A client that takes no message for this long while some wait is
    /// dropped ([`crate::serve_messages`]; 30 s by default).
    pub slow_client_timeout: Duration,
    /// Set to `true` by the host when the server shuts down: the session
    /// says so with `window/showMessage` and ends ([`crate::serve_messages`]).
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

impl ServerOptions {
    /// A session that opens its own project at `initialize` (stdio).
    pub fn new(config: Config, paths: Paths) -> ServerOptions {
        ServerOptions {
            config,
            paths,
            root_override: None,
            shared: None,
            read_only: false,
            max_message_bytes: MAX_MESSAGE_BYTES,
            slow_client_timeout: SLOW_CLIENT_TIMEOUT,
            shutdown: None,
        }
    }

    /// A session over a project shared with other sessions; `read_only` for viewers.
    pub fn shared(engine: SharedEngine, read_only: bool) -> ServerOptions {
        let config = engine.engine().file_config().clone();
        let paths = engine.paths().clone();
        ServerOptions {
            root_override: engine.root(),
            shared: Some(engine),
            read_only,
            ..ServerOptions::new(config, paths)
        }
    }
}

/// Serve LSP over a byte stream (stdin/stdout for `aicockpit-lsp`) until
/// `exit` or the end of the input. Returns whether `shutdown` came first: the
/// specification has the process exit with 1 otherwise.
pub async fn serve<I, O>(input: I, output: O, options: ServerOptions) -> bool
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (service, socket) = build_service(options);
    let inner = service.inner().inner.clone();
    let (replies, receiver) = tokio::sync::mpsc::unbounded_channel();
    inner.set_direct_output(Some(DirectOutput::Stdio(replies.clone())));
    let server_input = crate::transport::frame_input(input, replies.clone(), inner.gate.clone());
    let (server_output, from_server) = tokio::io::duplex(1 << 20);
    let pump = tokio::spawn(crate::transport::pump_output(
        from_server,
        replies,
        receiver,
        output,
    ));
    // tower-lsp polls at most this many requests at once; long AI requests
    // (chat streams, code actions) must not starve hover, edits or cancels.
    Server::new(server_input, server_output, socket)
        .concurrency_level(64)
        .serve(service)
        .await;
    // The writer ends once every sender is gone.
    inner.set_direct_output(None);
    let _ = pump.await;
    inner.end_session().await;
    inner.shut_down.load(Ordering::SeqCst)
}

/// The tower service, for embedding the server (the web server's WebSocket bridge, tests).
pub fn build_service(options: ServerOptions) -> (LspService<Backend>, tower_lsp::ClientSocket) {
    LspService::build(|client| Backend {
        client,
        inner: Arc::new(Inner::new(options)),
    })
    .custom_method("aicockpit/search", Backend::search)
    .custom_method("aicockpit/status", Backend::status)
    .custom_method("aicockpit/embed", Backend::embed)
    .custom_method("window/workDoneProgress/cancel", Backend::progress_cancel)
    .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
    .custom_method("aicockpit/chat", Backend::chat)
    .custom_method("aicockpit/suggestCommand", Backend::suggest_command)
    .custom_method(
        "textDocument/didShowCompletion",
        Backend::did_show_completion,
    )
    .custom_method(
        "textDocument/didPartiallyAcceptCompletion",
        Backend::did_partially_accept_completion,
    )
    .finish()
}

/// The language server. Cheap to clone into background tasks through `inner`.
pub struct Backend {
    client: Client,
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    options: ServerOptions,
    project: ProjectSlot,
    /// The client sent no root: the first opened file's project is served.
    root_pending: AtomicBool,
    /// A `window/showMessage` was sent for the current AI failure.
    ai_failure_shown: AtomicBool,
    /// A `window/showMessage` was sent for ignored settings (shared engine).
    settings_ignored_shown: AtomicBool,
    unit: Mutex<ColumnUnit>,
    /// This session's last error, with its sequence number.
    last_error: Mutex<Option<(u64, String)>>,
    client_supports_progress: AtomicBool,
    client_supports_watch_registration: AtomicBool,
    /// Per document, the latest inline completion request (older ones are superseded).
    inline_generation: Mutex<std::collections::HashMap<Url, u64>>,
    /// The last `aicockpit/didChangeStatus` sent, so only changes are sent.
    last_ai_status: Mutex<Option<ext::AiStatusNotification>>,
    /// Woken whenever an inline completion request arrives.
    inline_changed: tokio::sync::Notify,
    /// What the client said it can take, from `initialize`.
    client_capabilities: OnceLock<ClientCapabilities>,
    /// Keeps requests behind the notifications received before them.
    pub(crate) gate: crate::transport::Gate,
    /// `shutdown` was received.
    pub(crate) shut_down: AtomicBool,
    /// Set when the session is over: its background tasks end.
    session_over: tokio::sync::watch::Sender<bool>,
    /// The transport's own queue to the client, for messages that must
    /// reach it before the response they belong to (see [`DirectOutput`]).
    direct_output: Mutex<Option<DirectOutput>>,
}

/// A way to the client's output that bypasses tower-lsp's client socket.
///
/// tower-lsp merges what handlers send through [`Client`] with the
/// responses of its handlers (`stream::select`), so a notification sent
/// just before a handler returns can reach the client after that handler's
/// response. A chat's last partial result must not: the client has stopped
/// listening for that token by then, and the reply would look cut short.
/// Whatever goes in here is queued before the handler returns, so it is
/// written before the response, which has to pass through tower-lsp first.
#[derive(Clone, Debug)]
pub(crate) enum DirectOutput {
    /// `serve`: the unbounded queue in front of the stdio writer.
    Stdio(tokio::sync::mpsc::UnboundedSender<String>),
    /// `serve_messages`: the bounded queue in front of `outgoing`.
    Messages(tokio::sync::mpsc::Sender<String>),
}

impl DirectOutput {
    /// Queue one message; false when the session's output is gone.
    pub(crate) async fn send(&self, body: String) -> bool {
        match self {
            DirectOutput::Stdio(sender) => sender.send(body).is_ok(),
            DirectOutput::Messages(sender) => sender.send(body).await.is_ok(),
        }
    }
}

/// The project, set at `initialize` and replaced once when a client without
/// a root opens its first file; with the holder this session's documents
/// are opened as.
#[derive(Default)]
struct ProjectSlot(RwLock<Option<(SharedEngine, HolderId)>>);

impl ProjectSlot {
    fn get(&self) -> Option<(SharedEngine, HolderId)> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, project: SharedEngine) {
        let holder = project.engine().new_holder();
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some((project, holder));
    }
}

impl Inner {
    fn new(options: ServerOptions) -> Inner {
        Inner {
            options,
            project: ProjectSlot::default(),
            root_pending: AtomicBool::new(false),
            ai_failure_shown: AtomicBool::new(false),
            settings_ignored_shown: AtomicBool::new(false),
            unit: Mutex::new(ColumnUnit::Utf16),
            last_error: Mutex::new(None),
            client_supports_progress: AtomicBool::new(false),
            client_supports_watch_registration: AtomicBool::new(false),
            inline_generation: Mutex::new(std::collections::HashMap::new()),
            last_ai_status: Mutex::new(None),
            inline_changed: tokio::sync::Notify::new(),
            client_capabilities: OnceLock::new(),
            gate: crate::transport::Gate::default(),
            shut_down: AtomicBool::new(false),
            session_over: tokio::sync::watch::channel(false).0,
            direct_output: Mutex::new(None),
        }
    }

    /// Set (or, with `None`, drop) the transport's own queue to the client.
    /// The transport drops it when tower-lsp is done, so its output can end.
    pub(crate) fn set_direct_output(&self, output: Option<DirectOutput>) {
        *self.direct_output.lock().unwrap_or_else(|p| p.into_inner()) = output;
    }

    /// The transport's own queue to the client, if it gave one.
    pub(crate) fn direct_output(&self) -> Option<DirectOutput> {
        self.direct_output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn unit(&self) -> ColumnUnit {
        *self.unit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this session serves a project shared with other sessions.
    fn is_shared(&self) -> bool {
        self.options.shared.is_some()
    }

    fn read_only(&self) -> bool {
        self.options.read_only
    }

    /// The client's capabilities (empty before `initialize`).
    fn capabilities(&self) -> &ClientCapabilities {
        static NONE: OnceLock<ClientCapabilities> = OnceLock::new();
        self.client_capabilities
            .get()
            .unwrap_or_else(|| NONE.get_or_init(ClientCapabilities::default))
    }

    fn record_error(&self, error: impl std::fmt::Display) {
        let message = error.to_string();
        tracing::warn!(%message);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(crate::project::stamp(message));
    }

    /// The session is over (the connection closed, `exit`, or the server
    /// shuts down): the documents it held open are released, so the
    /// project's index goes back to the disk for those no other session has open.
    pub(crate) async fn end_session(&self) {
        self.session_over.send_replace(true);
        let Some((project, holder)) = self.project.get() else {
            return;
        };
        if !self.is_shared() {
            // An own engine ends with the session: nothing to give back.
            return;
        }
        let engine = project.engine();
        let released = tokio::task::spawn_blocking(move || engine.release_documents(holder)).await;
        if let Ok(Err(error)) = released {
            project.record_error(error);
        }
    }
}

impl Backend {
    /// The session's state, for the transports.
    pub(crate) fn session(&self) -> Arc<Inner> {
        self.inner.clone()
    }

    fn project(&self) -> Result<(SharedEngine, HolderId)> {
        self.inner.project.get().ok_or_else(|| jsonrpc::Error {
            code: jsonrpc::ErrorCode::ServerError(-32002),
            message: "server not initialized".into(),
            data: None,
        })
    }

    fn engine(&self) -> Result<Arc<Engine>> {
        self.project().map(|(project, _)| project.engine())
    }

    /// Run blocking engine work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T> {
        let engine = self.engine()?;
        tokio::task::spawn_blocking(move || work(&engine))
            .await
            .map_err(|error| internal(format!("worker failed: {error}")))
    }

    /// Start the project's first index run unless it runs already, and
    /// follow it with `$/progress` (a session joining mid-run gets the
    /// progress from where it is).
    async fn index_with_progress(&self) {
        let Ok((project, _)) = self.project() else {
            return;
        };
        project.ensure_indexing();
        let mut phases = project.progress();
        if matches!(
            *phases.borrow_and_update(),
            IndexPhase::Done { .. } | IndexPhase::Idle
        ) {
            return;
        }
        let token = NumberOrString::String(INDEX_PROGRESS_TOKEN.to_string());
        let progress = self.inner.client_supports_progress.load(Ordering::SeqCst)
            && matches!(
                tokio::time::timeout(
                    CLIENT_REQUEST_TIMEOUT,
                    self.client.send_request::<WorkDoneProgressCreate>(
                        WorkDoneProgressCreateParams {
                            token: token.clone(),
                        }
                    ),
                )
                .await,
                Ok(Ok(()))
            );
        if !progress {
            return;
        }
        let notify = |value: WorkDoneProgress| {
            self.client.send_notification::<Progress>(ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(value),
            })
        };
        notify(WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: "AiCockpit: indexing".into(),
            cancellable: Some(false),
            message: Some("walking the project".into()),
            percentage: Some(0),
        }))
        .await;
        loop {
            let phase = phases.borrow_and_update().clone();
            match phase {
                IndexPhase::Idle => {}
                IndexPhase::Running { done, total } => {
                    if total > 0 {
                        let percent = (done * 100).checked_div(total).unwrap_or(100);
                        notify(WorkDoneProgress::Report(WorkDoneProgressReport {
                            cancellable: Some(false),
                            message: Some(format!("{done}/{total} files")),
                            percentage: Some(percent as u32),
                        }))
                        .await;
                    }
                }
                IndexPhase::Done { message } => {
                    notify(WorkDoneProgress::End(WorkDoneProgressEnd {
                        message: Some(message),
                    }))
                    .await;
                    return;
                }
            }
            if phases.changed().await.is_err() {
                notify(WorkDoneProgress::End(WorkDoneProgressEnd { message: None })).await;
                return;
            }
        }
    }

    /// Follow the project's background embedding runs with `$/progress`,
    /// one cancellable progress per run, until the session ends.
    async fn follow_embedding(&self) {
        let Ok((project, _)) = self.project() else {
            return;
        };
        let mut phases = project.embed_phase();
        let mut over = self.inner.session_over.subscribe();
        let mut shown: Option<u64> = None;
        // A run whose progress the client refused (or never answered) is
        // not offered again.
        let mut refused: Option<u64> = None;
        loop {
            let phase = phases.borrow_and_update().clone();
            match phase {
                EmbedPhase::Idle => {}
                EmbedPhase::Running { run, done, total } => {
                    if shown != Some(run) && refused != Some(run) {
                        if self.begin_embed_progress(run).await {
                            shown = Some(run);
                        } else {
                            refused = Some(run);
                        }
                    }
                    if shown == Some(run) && total > 0 {
                        let percent = (done * 100).checked_div(total).unwrap_or(100);
                        self.embed_progress(
                            run,
                            WorkDoneProgress::Report(WorkDoneProgressReport {
                                cancellable: Some(!self.inner.read_only()),
                                message: Some(format!("{done}/{total} chunks")),
                                percentage: Some(percent as u32),
                            }),
                        )
                        .await;
                    }
                }
                EmbedPhase::Done { run, message } => {
                    if shown == Some(run) {
                        self.embed_progress(
                            run,
                            WorkDoneProgress::End(WorkDoneProgressEnd {
                                message: Some(message),
                            }),
                        )
                        .await;
                        shown = None;
                    }
                }
            }
            tokio::select! {
                changed = phases.changed() => if changed.is_err() { return },
                _ = over.changed() => return,
            }
        }
    }

    /// Create and begin run `run`'s progress; false when the client cannot
    /// show progress or refused the token.
    async fn begin_embed_progress(&self, run: u64) -> bool {
        if !self.inner.client_supports_progress.load(Ordering::SeqCst) {
            return false;
        }
        let token = NumberOrString::String(format!("{EMBED_PROGRESS_TOKEN}{run}"));
        let created = tokio::time::timeout(
            CLIENT_REQUEST_TIMEOUT,
            self.client
                .send_request::<WorkDoneProgressCreate>(WorkDoneProgressCreateParams { token }),
        )
        .await;
        if !matches!(created, Ok(Ok(()))) {
            return false;
        }
        self.embed_progress(
            run,
            WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "AiCockpit: embedding for semantic search".into(),
                cancellable: Some(!self.inner.read_only()),
                message: Some("finding the chunks to embed".into()),
                percentage: Some(0),
            }),
        )
        .await;
        true
    }

    async fn embed_progress(&self, run: u64, value: WorkDoneProgress) {
        self.client
            .send_notification::<Progress>(ProgressParams {
                token: NumberOrString::String(format!("{EMBED_PROGRESS_TOKEN}{run}")),
                value: ProgressParamsValue::WorkDone(value),
            })
            .await;
    }

    /// `window/workDoneProgress/cancel`: the user cancelled an embedding
    /// run's progress. It stops between two batches, keeps what it embedded,
    /// and no run starts by itself until `aicockpit/embed` asks again.
    /// Viewers' sessions cannot cancel (their progress is not cancellable).
    async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        let NumberOrString::String(token) = &params.token else {
            return;
        };
        if !token.starts_with(EMBED_PROGRESS_TOKEN) || self.inner.read_only() {
            return;
        }
        if let Ok((project, _)) = self.project() {
            project.cancel_embedding();
        }
    }

    /// `aicockpit/embed`: start (or resume) the background embedding now,
    /// or cancel it with `{"cancel": true}`; answers where it stands.
    async fn embed(&self, params: Option<ext::EmbedParams>) -> Result<ext::SemanticInfo> {
        let (project, _) = self.project()?;
        if self.inner.read_only() {
            return Err(jsonrpc::Error {
                code: jsonrpc::ErrorCode::InvalidRequest,
                message: "this is a read-only session: it cannot start or cancel embedding".into(),
                data: None,
            });
        }
        let engine = project.engine();
        if let Err(why) = engine.embedding_possible() {
            return Err(jsonrpc::Error {
                code: jsonrpc::ErrorCode::InvalidRequest,
                message: why.into(),
                data: None,
            });
        }
        if params.is_some_and(|p| p.cancel) {
            project.cancel_embedding();
        } else {
            project.resume_embedding();
        }
        Ok(semantic_info(&project))
    }

    async fn register_file_watcher(&self) {
        if !self
            .inner
            .client_supports_watch_registration
            .load(Ordering::SeqCst)
        {
            return;
        }
        let extensions: Vec<&str> = LanguageId::ALL
            .iter()
            .flat_map(|lang| lang.extensions().iter().copied())
            .collect();
        let options = DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![
                FileSystemWatcher {
                    glob_pattern: GlobPattern::String(format!("**/*.{{{}}}", extensions.join(","))),
                    kind: None,
                },
                FileSystemWatcher {
                    glob_pattern: GlobPattern::String("**/.gitignore".into()),
                    kind: None,
                },
            ],
        };
        let registration = Registration {
            id: "aicockpit/watched-files".into(),
            method: "workspace/didChangeWatchedFiles".into(),
            register_options: serde_json::to_value(options).ok(),
        };
        match tokio::time::timeout(
            CLIENT_REQUEST_TIMEOUT,
            self.client.register_capability(vec![registration]),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "client refused the file watcher registration")
            }
            Err(_) => tracing::warn!("client did not answer the file watcher registration"),
        }
    }

    // ---- custom requests --------------------------------------------------

    async fn search(&self, params: ext::SearchParams) -> Result<Vec<ext::SearchHit>> {
        let engine = self.engine()?;
        let config = engine.config();
        let mut kinds = Vec::new();
        for name in params.kinds.unwrap_or_default() {
            kinds.push(SymbolKind::from_name(&name).ok_or_else(|| {
                let known: Vec<&str> = SymbolKind::ALL.iter().map(|k| k.name()).collect();
                jsonrpc::Error::invalid_params(format!(
                    "unknown kind {name:?}; known kinds: {}",
                    known.join(", ")
                ))
            })?);
        }
        let paths = params
            .paths
            .unwrap_or_default()
            .into_iter()
            .map(|p| scope_path(&engine, &p))
            .collect::<Result<Vec<String>>>()?;
        let mode = match params.mode.as_deref() {
            Some(mode) => mode
                .parse::<aicockpit_config::SearchMode>()
                .map_err(jsonrpc::Error::invalid_params)?,
            None => config.search.mode,
        };
        let query = SearchQuery {
            text: params.query,
            limit: params.limit.unwrap_or(config.search.max_results),
            paths,
            kinds,
        };
        let unit = self.inner.unit();
        let ranked = self
            .blocking(move |engine| engine.search_ranked(&query, mode))
            .await?
            .map_err(engine_error)?;
        let root = engine.root().map(Path::to_path_buf).unwrap_or_default();
        Ok(ranked
            .hits
            .into_iter()
            .filter_map(|ranked| {
                let retrievers = ranked
                    .retrievers
                    .iter()
                    .map(|r| r.name().to_string())
                    .collect();
                let hit = ranked.hit;
                Some(ext::SearchHit {
                    retrievers,
                    uri: to_proto::url(&root.join(&hit.path))?,
                    range: to_proto::range(hit.span, unit),
                    score: hit.score,
                    snippet: hit.snippet,
                    symbol: hit.symbol.map(|symbol| ext::SearchSymbol {
                        kind: to_proto::symbol_kind(symbol.kind),
                        kind_name: symbol.kind.name().to_string(),
                        name: symbol.name.into(),
                        container: symbol.container.map(Into::into),
                        signature: symbol.signature.into(),
                    }),
                })
            })
            .collect())
    }

    async fn status(&self) -> Result<ext::Status> {
        let inner = &self.inner;
        let session_error = inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut status = ext::Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            position_encoding: match inner.unit() {
                ColumnUnit::Utf8 => "utf-8".into(),
                ColumnUnit::Utf16 => "utf-16".into(),
            },
            last_error: session_error.clone().map(|(_, message)| message),
            session: ext::SessionInfo {
                shared: inner.is_shared(),
                read_only: inner.read_only(),
                documents: 0,
            },
            ..ext::Status::default()
        };
        if let Some((project, holder)) = inner.project.get() {
            let engine = project.engine();
            status.indexing = project.is_indexing();
            status.last_index_ms = project.last_index_ms();
            // The latest of this session's errors and the project's.
            status.last_error = [session_error, project.last_error()]
                .into_iter()
                .flatten()
                .max_by_key(|(sequence, _)| *sequence)
                .map(|(_, message)| message);
            status.open_documents = engine.open_document_count();
            status.session.documents = engine.documents_open_by(holder);
            status.ai = ext::AiStats::from(engine.ai_stats());
            status.semantic_unavailable = engine.semantic_unavailable();
            status.semantic = semantic_info(&project);
            status.services = engine
                .config()
                .ai
                .services
                .iter()
                .map(|service| service.name.clone())
                .collect();
            if let Some(stats) = engine.index_stats() {
                status.root = Some(stats.root.display().to_string());
                status.index_dir = Some(stats.index_dir.display().to_string());
                status.files = stats.files;
                status.symbols = stats.symbols;
                status.chunks = stats.chunks;
                status.read_only = stats.read_only;
            }
        }
        Ok(status)
    }
}

#[tower_lsp::async_trait]
impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let inner = &self.inner;
        let mut config = inner.options.config.clone();
        if let Some(settings) = &params.initialization_options {
            if inner.is_shared() {
                // The shared engine's config is the server's: one session's
                // settings must not redirect another's AI or index.
                tracing::info!("initializationOptions ignored: the project is shared");
            } else {
                let before = config.clone();
                if let Err(error) = config
                    .apply_overlay(settings)
                    .and_then(|()| before.check_client_overlay(&config))
                {
                    return Err(jsonrpc::Error::invalid_params(format!(
                        "initializationOptions: {error}"
                    )));
                }
            }
        }
        let capabilities = &params.capabilities;
        let _ = inner.client_capabilities.set(capabilities.clone());
        let utf8 = capabilities
            .general
            .as_ref()
            .and_then(|general| general.position_encodings.as_ref())
            .is_some_and(|encodings| encodings.contains(&PositionEncodingKind::UTF8));
        *inner.unit.lock().unwrap_or_else(|p| p.into_inner()) = if utf8 {
            ColumnUnit::Utf8
        } else {
            ColumnUnit::Utf16
        };
        let window_progress = capabilities
            .window
            .as_ref()
            .and_then(|window| window.work_done_progress)
            .unwrap_or(false);
        inner
            .client_supports_progress
            .store(window_progress, Ordering::SeqCst);
        // A shared project has the server's own watcher: no session registers one.
        let watch = !inner.is_shared()
            && capabilities
                .workspace
                .as_ref()
                .and_then(|workspace| workspace.did_change_watched_files.as_ref())
                .and_then(|watched| watched.dynamic_registration)
                .unwrap_or(false);
        inner
            .client_supports_watch_registration
            .store(watch, Ordering::SeqCst);

        if let Some(shared) = &inner.options.shared {
            if let (Some(asked), Some(served)) = (client_root(&params), shared.root()) {
                if asked != served {
                    tracing::info!(asked = %asked.display(), served = %served.display(), "the client's root is ignored: the server decides the project");
                }
            }
            inner.project.set(shared.clone());
        } else {
            let root = inner
                .options
                .root_override
                .clone()
                .or_else(|| client_root(&params));
            inner.root_pending.store(root.is_none(), Ordering::SeqCst);
            // The engine keeps the file's config apart: editor settings are always
            // checked against it, and it alone decides where keys may go.
            let file_config = inner.options.config.clone();
            let cache_dir = inner.options.paths.cache_dir.clone();
            let (engine, notes) = match root {
                Some(root) => {
                    let effective = config.clone();
                    let opened = tokio::task::spawn_blocking(move || {
                        Engine::open(&root, &cache_dir, file_config, effective, None)
                            .map(|(engine, notes)| (engine, notes.messages(&root)))
                    })
                    .await
                    .map_err(|error| internal(error.to_string()))?;
                    opened.map_err(|error| jsonrpc::Error::invalid_params(error.to_string()))?
                }
                None => {
                    let engine = Engine::new(file_config, None);
                    engine.set_config(config);
                    (engine, Vec::new())
                }
            };
            let engine = Arc::new(engine);
            // An AI service that is misconfigured must not stop the rest from working.
            if let Err(error) = engine.configure_ai(&inner.options.paths.data_dir) {
                inner.record_error(format!("AI service: {error}"));
            }
            let project = SharedEngine::from_engine(engine, inner.options.paths.clone());
            for message in notes {
                project.record_error(message);
            }
            inner.project.set(project);
        }
        let read_only = inner.read_only();
        // From now on tower-lsp hands notifications to their handlers.
        inner.gate.arm(true);

        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "aicockpit-lsp".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                position_encoding: Some(if utf8 {
                    PositionEncodingKind::UTF8
                } else {
                    PositionEncodingKind::UTF16
                }),
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                            include_text: Some(true),
                        })),
                        ..TextDocumentSyncOptions::default()
                    },
                )),
                document_symbol_provider: Some(OneOf::Left(true)),
                workspace_symbol_provider: Some(OneOf::Left(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                completion_provider: Some(CompletionOptions {
                    resolve_provider: Some(false),
                    trigger_characters: Some(vec![".".into()]),
                    ..CompletionOptions::default()
                }),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        // A viewer's session offers only explanations (no kind).
                        code_action_kinds: (!read_only).then(|| {
                            vec![CodeActionKind::QUICKFIX, CodeActionKind::REFACTOR_REWRITE]
                        }),
                        resolve_provider: Some(true),
                        ..CodeActionOptions::default()
                    },
                )),
                execute_command_provider: Some(ExecuteCommandOptions {
                    // A viewer's session applies no AI edit.
                    commands: [
                        ai_methods::ACCEPT_COMMAND,
                        ai_methods::EXPLAIN_COMMAND,
                        ai_methods::APPLY_COMMAND,
                    ]
                    .into_iter()
                    .filter(|command| !read_only || *command != ai_methods::APPLY_COMMAND)
                    .map(String::from)
                    .collect(),
                    ..ExecuteCommandOptions::default()
                }),
                experimental: Some(serde_json::json!({ "aicockpit": {
                    "search": true,
                    "status": true,
                    "shared": inner.is_shared(),
                    "readOnly": read_only,
                    // A shared project's root is the server's: clients (the
                    // web IDE) name documents under it.
                    "rootUri": inner
                        .options
                        .shared
                        .as_ref()
                        .and_then(|shared| shared.root())
                        .and_then(|root| to_proto::url(&root)),
                } })),
                ..ServerCapabilities::default()
            },
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        if self.inner.read_only() {
            self.spawn_message(
                MessageType::INFO,
                "AiCockpit: this is a read-only session: your edits are not applied to the \
                 project and AI edits are not offered. Navigation, search, completions and \
                 chat work."
                    .into(),
            );
        }
        // Index first: nothing waits on the client's answer to a registration.
        let backend = self.clone_handle();
        tokio::spawn(async move { backend.index_with_progress().await });
        let backend = self.clone_handle();
        tokio::spawn(async move { backend.follow_embedding().await });
        if self.inner.is_shared() {
            if let Ok((project, _)) = self.project() {
                project.start();
            }
            return;
        }
        self.start_own_watcher();
        self.register_file_watcher().await;
    }

    async fn shutdown(&self) -> Result<()> {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        // tower-lsp drops notifications after `shutdown`: nothing to wait for.
        self.inner.gate.arm(false);
        if let Ok((project, _)) = self.project() {
            // A shared project's watcher serves other sessions.
            if !self.inner.is_shared() {
                project.stop_watcher();
            }
            if let Err(error) = project.flush().await {
                self.inner.record_error(error);
            }
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let _applied = self.inner.gate.applying();
        if self.inner.read_only() {
            return;
        }
        let Ok(path) = from_proto::path(&params.text_document.uri) else {
            return;
        };
        self.adopt_root_for(&path);
        let Ok((project, holder)) = self.project() else {
            return;
        };
        let doc = params.text_document;
        project.engine().open_document_as(
            holder,
            &path,
            doc.version,
            LanguageId::from_name(&doc.language_id),
            doc.text,
        );
        project.schedule_flush();
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let _applied = self.inner.gate.applying();
        if self.inner.read_only() {
            return;
        }
        // No `.await` before the change is applied: changes apply in receive order.
        let Ok((project, holder)) = self.project() else {
            return;
        };
        let Ok(path) = from_proto::path(&params.text_document.uri) else {
            return;
        };
        let changes: Vec<_> = params
            .content_changes
            .into_iter()
            .map(from_proto::change)
            .collect();
        if let Err(error) = project.engine().change_document_as(
            holder,
            &path,
            params.text_document.version,
            self.inner.unit(),
            &changes,
        ) {
            self.inner.record_error(error);
            return;
        }
        project.schedule_flush();
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        let _applied = self.inner.gate.applying();
        if self.inner.read_only() {
            return;
        }
        let Ok((project, holder)) = self.project() else {
            return;
        };
        let Ok(path) = from_proto::path(&params.text_document.uri) else {
            return;
        };
        project
            .engine()
            .save_document_as(holder, &path, params.text);
        project.schedule_flush();
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let _applied = self.inner.gate.applying();
        if self.inner.read_only() {
            return;
        }
        let Ok(path) = from_proto::path(&params.text_document.uri) else {
            return;
        };
        let Ok((_, holder)) = self.project() else {
            return;
        };
        if let Ok(Err(error)) = self
            .blocking(move |engine| engine.close_document_as(holder, &path))
            .await
        {
            self.inner.record_error(error);
        }
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        // A shared project is watched by the server itself.
        if self.inner.is_shared() {
            return;
        }
        let Ok(engine) = self.engine() else { return };
        // Events for paths outside the served root are ignored.
        let paths: Vec<PathBuf> = params
            .changes
            .iter()
            .filter_map(|event| event.uri.to_file_path().ok())
            .filter(|path| engine.rel(path).is_some())
            .collect();
        if paths.is_empty() {
            return;
        }
        let gitignore_changed = paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == ".gitignore"));
        let result = self
            .blocking(move |engine| engine.watched_files_changed(&paths, gitignore_changed))
            .await;
        if let Ok(Err(error)) = result {
            self.inner.record_error(error);
        }
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let _applied = self.inner.gate.applying();
        if self.inner.is_shared() {
            // The server's config is the administrator's; see docs/lsp.md.
            self.inner.record_error(
                "settings ignored: the project is shared, its settings are the server's",
            );
            if !self
                .inner
                .settings_ignored_shown
                .swap(true, Ordering::SeqCst)
            {
                self.spawn_message(
                    MessageType::WARNING,
                    "AiCockpit: editor settings are ignored here: this project is shared, \
                     and its settings (AI service, index) are the server's."
                        .into(),
                );
            }
            return;
        }
        let Ok(engine) = self.engine() else { return };
        let mut config = engine.config();
        // Compared with the file's config, never with one earlier settings
        // changed: dropping a service and adding it back elsewhere is moving it.
        match config
            .apply_overlay(&params.settings)
            .and_then(|()| engine.file_config().check_client_overlay(&config))
        {
            Ok(()) => {
                engine.set_config(config);
                if let Err(error) = engine.configure_ai(&self.inner.options.paths.data_dir) {
                    self.inner.record_error(format!("AI service: {error}"));
                }
            }
            Err(error) => {
                self.inner
                    .record_error(format!("settings ignored: {error}"));
                self.client
                    .show_message(
                        MessageType::WARNING,
                        format!("AiCockpit settings ignored: {error}"),
                    )
                    .await;
            }
        }
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let uri = params.text_document.uri;
        let path = from_proto::path(&uri)?;
        let unit = self.inner.unit();
        let symbols = self
            .blocking(move |engine| engine.document_symbols(&path))
            .await?;
        let client = self
            .inner
            .capabilities()
            .text_document
            .as_ref()
            .and_then(|t| t.document_symbol.as_ref());
        let value_set = client
            .and_then(|d| d.symbol_kind.as_ref())
            .and_then(|k| k.value_set.as_deref());
        let mut outline = to_proto::document_symbols(&symbols, unit);
        to_proto::restrict_outline_kinds(&mut outline, value_set);
        // Older clients take only the flat form.
        if client.and_then(|d| d.hierarchical_document_symbol_support) == Some(true) {
            Ok(Some(DocumentSymbolResponse::Nested(outline)))
        } else {
            Ok(Some(DocumentSymbolResponse::Flat(
                to_proto::flat_document_symbols(outline, &uri),
            )))
        }
    }

    #[allow(deprecated)] // `SymbolInformation::deprecated` must still be filled in.
    async fn symbol(
        &self,
        params: WorkspaceSymbolParams,
    ) -> Result<Option<Vec<SymbolInformation>>> {
        let unit = self.inner.unit();
        let query = params.query;
        let value_set = self
            .inner
            .capabilities()
            .workspace
            .as_ref()
            .and_then(|w| w.symbol.as_ref())
            .and_then(|s| s.symbol_kind.as_ref())
            .and_then(|k| k.value_set.clone());
        // This session's edits as they are now, other sessions' as last
        // parsed (within a moment), the rest from the index: no commit here.
        let holder = self.inner.project.get().map(|(_, holder)| holder);
        let found = self
            .blocking(move |engine| {
                let limit = engine.config().search.max_workspace_symbols;
                engine.workspace_symbols_for(&query, limit, holder)
            })
            .await?;
        Ok(Some(
            found
                .into_iter()
                .filter_map(|(path, symbol)| {
                    Some(SymbolInformation {
                        name: symbol.name.into(),
                        kind: to_proto::symbol_kind_within(
                            to_proto::symbol_kind(symbol.kind),
                            value_set.as_deref(),
                        ),
                        tags: None,
                        deprecated: None,
                        location: Location {
                            uri: to_proto::url(&path)?,
                            range: to_proto::range(symbol.selection_range, unit),
                        },
                        container_name: symbol.container.map(Into::into),
                    })
                })
                .collect(),
        ))
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let position = params.text_document_position_params;
        let path = from_proto::path(&position.text_document.uri)?;
        let unit = self.inner.unit();
        let at = from_proto::position(position.position);
        let found = self
            .blocking(move |engine| {
                let Some((_, offset)) = engine.offset(&path, at, unit) else {
                    return Vec::new();
                };
                engine.definition(&path, offset)
            })
            .await?;
        let locations: Vec<Location> = found
            .into_iter()
            .filter_map(|l| {
                Some(Location {
                    uri: to_proto::url(&l.path)?,
                    range: to_proto::range(l.span, unit),
                })
            })
            .collect();
        Ok((!locations.is_empty()).then_some(GotoDefinitionResponse::Array(locations)))
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let position = params.text_document_position;
        let path = from_proto::path(&position.text_document.uri)?;
        let unit = self.inner.unit();
        let at = from_proto::position(position.position);
        let include_declaration = params.context.include_declaration;
        let found = self
            .blocking(move |engine| {
                let Some((_, offset)) = engine.offset(&path, at, unit) else {
                    return Ok(Vec::new());
                };
                engine.references(&path, offset, include_declaration)
            })
            .await?
            .map_err(engine_error)?;
        Ok(Some(
            found
                .into_iter()
                .filter_map(|l| {
                    Some(Location {
                        uri: to_proto::url(&l.path)?,
                        range: to_proto::range(l.span, unit),
                    })
                })
                .collect(),
        ))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        self.completion_items(params).await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        Ok(Some(self.ai_code_actions(&params)))
    }

    async fn code_action_resolve(&self, action: CodeAction) -> Result<CodeAction> {
        self.resolve_ai_code_action(action).await
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> Result<Option<serde_json::Value>> {
        self.execute_ai_command(params).await
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let position = params.text_document_position_params;
        let path = from_proto::path(&position.text_document.uri)?;
        let unit = self.inner.unit();
        let at = from_proto::position(position.position);
        let found = self
            .blocking(move |engine| {
                let (_, offset) = engine.offset(&path, at, unit)?;
                engine.hover(&path, offset)
            })
            .await?;
        // Markdown only to clients that list it among their hover formats.
        let markdown = self
            .inner
            .capabilities()
            .text_document
            .as_ref()
            .and_then(|t| t.hover.as_ref())
            .and_then(|h| h.content_format.as_ref())
            .is_some_and(|formats| formats.contains(&MarkupKind::Markdown));
        Ok(found.map(|hover| Hover {
            contents: HoverContents::Markup(if markdown {
                MarkupContent {
                    kind: MarkupKind::Markdown,
                    value: hover.markdown,
                }
            } else {
                MarkupContent {
                    kind: MarkupKind::PlainText,
                    value: to_proto::markdown_to_plaintext(&hover.markdown),
                }
            }),
            range: Some(to_proto::range(hover.span, unit)),
        }))
    }
}

/// The project root the client names: the first workspace folder, else `rootUri`, else `rootPath`.
#[allow(deprecated)] // `root_uri` and `root_path` are still what many clients send.
fn client_root(params: &InitializeParams) -> Option<PathBuf> {
    params
        .workspace_folders
        .as_ref()
        .and_then(|folders| folders.first())
        .and_then(|folder| folder.uri.to_file_path().ok())
        .or_else(|| {
            params
                .root_uri
                .as_ref()
                .and_then(|uri| uri.to_file_path().ok())
        })
        .or_else(|| params.root_path.as_ref().map(PathBuf::from))
}

/// A search scope given as a relative path, an absolute path or a `file://` URI.
fn scope_path(engine: &Engine, given: &str) -> Result<String> {
    let path = if given.starts_with("file://") {
        let uri = Url::parse(given)
            .map_err(|error| jsonrpc::Error::invalid_params(format!("{given}: {error}")))?;
        from_proto::path(&uri)?
    } else {
        PathBuf::from(given)
    };
    if path.is_relative() {
        return Ok(given.trim_start_matches("./").to_string());
    }
    engine.rel(&path).ok_or_else(|| {
        jsonrpc::Error::invalid_params(format!("{given} is outside the project root"))
    })
}

fn internal(message: String) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: message.into(),
        data: None,
    }
}

/// Where the project's semantic search stands, for `aicockpit/status` and
/// `aicockpit/embed`.
fn semantic_info(project: &SharedEngine) -> ext::SemanticInfo {
    let engine = project.engine();
    let status = engine.semantic_status();
    ext::SemanticInfo {
        configured: engine.embeddings_configured(),
        chunks: status.chunks,
        embedded: status.embedded,
        running: status.running,
        paused: project.embedding_paused(),
    }
}

fn engine_error(error: EngineError) -> jsonrpc::Error {
    match error {
        EngineError::NoProject => jsonrpc::Error {
            code: jsonrpc::ErrorCode::InvalidRequest,
            message: "no project is open: the client sent no root folder".into(),
            data: None,
        },
        EngineError::Search(message) => jsonrpc::Error {
            code: jsonrpc::ErrorCode::InvalidRequest,
            message: message.into(),
            data: None,
        },
        other => internal(other.to_string()),
    }
}
