//! One project served to any number of language-server sessions: the
//! engine (one index, one document store, one AI service), the first index
//! run and its progress, the debounced flush of edits and the server's own
//! watcher. A stdio session makes its own at `initialize`; a server that
//! hosts many sessions of one workspace (the web server's WebSockets) opens
//! one [`SharedEngine`] per workspace and hands it to every session through
//! [`crate::ServerOptions::shared`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicockpit_config::{Config, Paths};
use aicockpit_engine::{EmbedRun, Engine, EngineError};
use tokio::sync::watch;

use crate::watch as folder_watch;

/// Where the first index run is, for sessions that join at any time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IndexPhase {
    /// Not started yet.
    Idle,
    Running {
        done: usize,
        total: usize,
    },
    /// Finished (or nothing to index): the summary line.
    Done {
        message: String,
    },
}

/// Where the project's background embedding is, for sessions to follow
/// with `$/progress`. Each run has its own number.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EmbedPhase {
    Idle,
    Running { run: u64, done: usize, total: usize },
    Done { run: u64, message: String },
}

/// How often the embedding loop looks whether the index changed; a run
/// starts once the index has been quiet for one look.
const EMBED_POLL: Duration = Duration::from_secs(2);

/// How often, at most, edited documents are parsed for other sessions'
/// `workspace/symbol` while edits keep coming.
const PARSE_EVERY: Duration = Duration::from_millis(100);

/// A handle on one project's engine, shared by every session of a
/// workspace. Cheap to clone; the project lives while a handle does.
#[derive(Clone)]
pub struct SharedEngine {
    project: Arc<Project>,
}

impl std::fmt::Debug for SharedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEngine")
            .field("root", &self.project.engine.root())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Project {
    engine: Arc<Engine>,
    paths: Paths,
    /// True from opening a writable index until the first index run ends.
    indexing: AtomicBool,
    index_started: AtomicBool,
    last_index_ms: Mutex<Option<f64>>,
    last_error: Mutex<Option<(u64, String)>>,
    progress: watch::Sender<IndexPhase>,
    /// Bumped by every edit; a debounced flush runs only if no newer edit came.
    edit_generation: AtomicU64,
    /// A parse of the edited documents (for other sessions' `workspace/symbol`) is due.
    parse_scheduled: AtomicBool,
    watcher_started: AtomicBool,
    /// Set to stop the server's own watcher (dropping the project stops it too).
    watch_stop: watch::Sender<bool>,
    /// Set when the host shuts the project down: every session ends.
    shutting_down: watch::Sender<bool>,
    embedding: Embedding,
}

/// The background embedding of a project's chunks (see
/// [`SharedEngine::start_embedding`]).
struct Embedding {
    started: AtomicBool,
    phase: watch::Sender<EmbedPhase>,
    /// The current run's cancel flag (a new one per run).
    cancel: Mutex<Arc<AtomicBool>>,
    /// A user cancelled: no run starts by itself until asked again.
    paused: AtomicBool,
    /// Wakes the loop at once (asked to start, or shutting down).
    wake: tokio::sync::Notify,
    runs: AtomicU64,
}

/// Orders errors of sessions and projects, so a status shows the latest.
static ERROR_SEQUENCE: AtomicU64 = AtomicU64::new(0);

pub(crate) fn stamp(message: String) -> (u64, String) {
    (ERROR_SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1, message)
}

impl SharedEngine {
    /// Open the project at `root` with the server's config (the
    /// administrator's: sessions never change it), configure its AI
    /// service, and return the handle to give every session. Problems that
    /// do not stop serving (an index rebuilt, a read-only fallback, an AI
    /// service that cannot be used) are kept for `aicockpit/status`.
    /// Blocks (opening an index reads it): call it from a blocking thread.
    /// Call [`Self::start`] next, from within the tokio runtime. `owner`
    /// names whose index it is when the folder can change hands (see
    /// `IndexOptions::owner`).
    pub fn open(
        root: &Path,
        config: Config,
        paths: Paths,
        owner: Option<&str>,
    ) -> Result<SharedEngine, EngineError> {
        let (engine, notes) = Engine::open(root, &paths.cache_dir, config.clone(), config, owner)?;
        let shared = SharedEngine::from_engine(Arc::new(engine), paths);
        for message in notes.messages(root) {
            shared.record_error(message);
        }
        if let Err(error) = shared
            .project
            .engine
            .configure_ai(&shared.project.paths.data_dir)
        {
            shared.record_error(format!("AI service: {error}"));
        }
        Ok(shared)
    }

    /// A project over an engine already built (a stdio session's own).
    pub(crate) fn from_engine(engine: Arc<Engine>, paths: Paths) -> SharedEngine {
        let writable = engine.is_writable();
        SharedEngine {
            project: Arc::new(Project {
                engine,
                paths,
                indexing: AtomicBool::new(writable),
                index_started: AtomicBool::new(false),
                last_index_ms: Mutex::new(None),
                last_error: Mutex::new(None),
                progress: watch::channel(IndexPhase::Idle).0,
                edit_generation: AtomicU64::new(0),
                parse_scheduled: AtomicBool::new(false),
                watcher_started: AtomicBool::new(false),
                watch_stop: watch::channel(false).0,
                shutting_down: watch::channel(false).0,
                embedding: Embedding {
                    started: AtomicBool::new(false),
                    phase: watch::channel(EmbedPhase::Idle).0,
                    cancel: Mutex::new(Arc::new(AtomicBool::new(false))),
                    paused: AtomicBool::new(false),
                    wake: tokio::sync::Notify::new(),
                    runs: AtomicU64::new(0),
                },
            }),
        }
    }

    /// Start the first index run and the server's own watcher of the
    /// project's folders (both once, however often this is called).
    /// Sessions that join later follow the same run. Needs a tokio runtime.
    pub fn start(&self) {
        self.ensure_indexing();
        self.start_watcher(|_| {});
    }

    /// The engine every session of this project answers from.
    pub fn engine(&self) -> Arc<Engine> {
        self.project.engine.clone()
    }

    /// The project root (`None` only for a stdio session's engine without a project).
    pub fn root(&self) -> Option<PathBuf> {
        self.project.engine.root().map(Path::to_path_buf)
    }

    /// True while the first index run (or an index refresh) is under way.
    pub fn is_indexing(&self) -> bool {
        self.project.indexing.load(Ordering::SeqCst)
    }

    /// Write every edited document's text to the index and commit. The
    /// server calls it at shutdown; it runs on a blocking thread.
    pub async fn flush(&self) -> Result<bool, EngineError> {
        let engine = self.engine();
        match tokio::task::spawn_blocking(move || engine.flush()).await {
            Ok(result) => result,
            // The flush panicked: nothing was committed.
            Err(_) => Ok(false),
        }
    }

    /// The server's configuration changed (its services API edited the
    /// config file): every session of this project uses the new config and
    /// AI service from now on. Sessions themselves can never do this.
    pub fn reconfigure(&self, config: Config) -> Result<Option<String>, EngineError> {
        let engine = self.engine();
        engine.set_file_config(config);
        engine.configure_ai(&self.project.paths.data_dir)
    }

    /// The server is going away: every session of this project is told
    /// (`window/showMessage`) and ends, the watcher stops, and edits are
    /// flushed to the index.
    pub async fn shutdown(&self) -> Result<bool, EngineError> {
        self.project.shutting_down.send_replace(true);
        self.project.watch_stop.send_replace(true);
        self.project
            .embedding
            .current_cancel()
            .store(true, Ordering::SeqCst);
        self.project.embedding.wake.notify_one();
        self.flush().await
    }

    pub(crate) fn paths(&self) -> &Paths {
        &self.project.paths
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.project.shutting_down.subscribe()
    }

    pub(crate) fn last_index_ms(&self) -> Option<f64> {
        *self
            .project
            .last_index_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn last_error(&self) -> Option<(u64, String)> {
        self.project
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn record_error(&self, error: impl std::fmt::Display) {
        self.project.record_error(error);
    }

    pub(crate) fn progress(&self) -> watch::Receiver<IndexPhase> {
        self.project.progress.subscribe()
    }

    /// Flush after `index.update_debounce_ms` of quiet (any session's edit
    /// restarts the wait).
    pub(crate) fn schedule_flush(&self) {
        self.schedule_parse();
        let project = self.project.clone();
        let generation = project.edit_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let debounce = Duration::from_millis(project.engine.config().index.update_debounce_ms);
        tokio::spawn(async move {
            tokio::time::sleep(debounce).await;
            if project.edit_generation.load(Ordering::SeqCst) != generation {
                return;
            }
            let engine = project.engine.clone();
            let result = tokio::task::spawn_blocking(move || engine.flush()).await;
            if let Ok(Err(error)) = result {
                project.record_error(error);
            }
        });
    }

    /// Parse the edited documents at most every [`PARSE_EVERY`] while edits
    /// keep coming (a throttle, not a debounce): another session's
    /// `workspace/symbol` sees an edit within that time plus a parse,
    /// without parsing it on the request's path.
    fn schedule_parse(&self) {
        let project = self.project.clone();
        if project.parse_scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(PARSE_EVERY).await;
            // Cleared first: an edit made during the parse schedules the next one.
            project.parse_scheduled.store(false, Ordering::SeqCst);
            let engine = project.engine.clone();
            let _ = tokio::task::spawn_blocking(move || engine.parse_edited_documents()).await;
        });
    }

    /// Start the first index run unless it was started: the index is
    /// walked on a blocking thread and its progress published for every
    /// session to follow.
    pub(crate) fn ensure_indexing(&self) {
        let project = &self.project;
        if project.index_started.swap(true, Ordering::SeqCst) {
            return;
        }
        if !project.engine.is_writable() {
            project.indexing.store(false, Ordering::SeqCst);
            project.progress.send_replace(IndexPhase::Done {
                message: "nothing to index".into(),
            });
            return;
        }
        project.indexing.store(true, Ordering::SeqCst);
        project
            .progress
            .send_replace(IndexPhase::Running { done: 0, total: 0 });
        let project = project.clone();
        tokio::spawn(async move {
            let engine = project.engine.clone();
            let progress = project.progress.clone();
            let last_percent = AtomicUsize::new(usize::MAX);
            let worker = tokio::task::spawn_blocking(move || {
                engine.refresh(&|p| {
                    let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
                    if last_percent.swap(percent, Ordering::Relaxed) != percent {
                        progress.send_replace(IndexPhase::Running {
                            done: p.done,
                            total: p.total,
                        });
                    }
                })
            });
            let message = match worker.await {
                Ok(Ok(stats)) => {
                    *project
                        .last_index_ms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(stats.elapsed.as_secs_f64() * 1000.0);
                    format!(
                        "{} files, {} symbols ({} parsed) in {:.1} s",
                        stats.files,
                        stats.symbols,
                        stats.parsed,
                        stats.elapsed.as_secs_f64()
                    )
                }
                Ok(Err(error)) => {
                    project.record_error(&error);
                    format!("indexing failed: {error}")
                }
                Err(error) => {
                    project.record_error(&error);
                    format!("indexing failed: {error}")
                }
            };
            project.indexing.store(false, Ordering::SeqCst);
            project.progress.send_replace(IndexPhase::Done { message });
            SharedEngine { project }.start_embedding();
        });
    }

    /// Keep the project's vectors in step with its index, in the
    /// background, once the first index run is over: a run now, then one
    /// whenever the index changed and has been quiet for [`EMBED_POLL`].
    /// Runs never delay the text index (they start after it and take no
    /// index lock), can be cancelled ([`Self::cancel_embedding`]) and resume
    /// where they stopped. Nothing happens when `search.embeddings` is off.
    pub(crate) fn start_embedding(&self) {
        let project = &self.project;
        if !project.engine.embeddings_configured()
            || project.embedding.started.swap(true, Ordering::SeqCst)
        {
            return;
        }
        // Weak: the loop must not keep an ended project alive.
        let weak = Arc::downgrade(project);
        let mut shutting_down = project.shutting_down.subscribe();
        tokio::spawn(async move {
            let mut embedded_at: Option<u64> = None;
            let mut last_seen: Option<u64> = None;
            loop {
                let Some(project) = weak.upgrade() else {
                    return;
                };
                if *shutting_down.borrow() {
                    return;
                }
                let generation = project.engine.index_generation();
                let quiet = last_seen == Some(generation);
                last_seen = Some(generation);
                let due = embedded_at != Some(generation) && (quiet || embedded_at.is_none());
                if due && !project.embedding.paused.load(Ordering::SeqCst) {
                    embedded_at = Some(generation);
                    project.embed_once().await;
                    continue;
                }
                // The project is held for one look at most (a few seconds).
                let wake = project.embedding.wake.notified();
                tokio::select! {
                    () = tokio::time::sleep(EMBED_POLL) => {}
                    () = wake => embedded_at = None,
                    _ = shutting_down.changed() => {}
                }
            }
        });
    }

    /// Stop the running embedding run between two batches, and start no
    /// other until [`Self::resume_embedding`] (what was embedded is kept).
    pub(crate) fn cancel_embedding(&self) {
        let embedding = &self.project.embedding;
        embedding.paused.store(true, Ordering::SeqCst);
        embedding.current_cancel().store(true, Ordering::SeqCst);
    }

    /// Start an embedding run now (after a cancel, too): it resumes where
    /// the last one stopped.
    pub(crate) fn resume_embedding(&self) {
        let embedding = &self.project.embedding;
        embedding.paused.store(false, Ordering::SeqCst);
        if embedding.started.load(Ordering::SeqCst) {
            embedding.wake.notify_one();
        } else {
            self.start_embedding();
        }
    }

    pub(crate) fn embed_phase(&self) -> watch::Receiver<EmbedPhase> {
        self.project.embedding.phase.subscribe()
    }

    /// Whether runs are paused by a user's cancel.
    pub(crate) fn embedding_paused(&self) -> bool {
        self.project.embedding.paused.load(Ordering::SeqCst)
    }

    /// Start the server's own watcher of the project's folders once.
    /// `on_warning` gets what a user should be told (watch limits reached).
    pub(crate) fn start_watcher(&self, on_warning: impl Fn(String) + Send + Sync + 'static) {
        let project = &self.project;
        let Some(root) = project.engine.root().map(Path::to_path_buf) else {
            return;
        };
        if !project.engine.is_writable() || project.watcher_started.swap(true, Ordering::SeqCst) {
            return;
        }
        // Weak: the watcher must not keep an ended project alive.
        let weak = Arc::downgrade(project);
        folder_watch::spawn(
            root,
            project.engine.clone(),
            project.watch_stop.subscribe(),
            move |report| {
                let Some(project) = weak.upgrade() else {
                    return;
                };
                match report {
                    folder_watch::Report::Warning(message) => {
                        project.record_error(&message);
                        on_warning(message);
                    }
                    folder_watch::Report::Error(message) => project.record_error(message),
                }
            },
        );
    }

    /// Stop the server's own watcher (a stdio session's `shutdown`).
    pub(crate) fn stop_watcher(&self) {
        self.project.watch_stop.send_replace(true);
    }
}

impl Embedding {
    fn current_cancel(&self) -> Arc<AtomicBool> {
        self.cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Project {
    /// One embedding run on a blocking thread. Its progress is published
    /// only once it has chunks to embed: a run that finds nothing to do is
    /// not shown to anyone.
    async fn embed_once(self: &Arc<Project>) {
        let embedding = &self.embedding;
        let run = embedding.runs.fetch_add(1, Ordering::SeqCst) + 1;
        // The run's cancel flag is in place before anything can wait, so a
        // cancel or a shutdown from now on reaches this run.
        let cancel = Arc::new(AtomicBool::new(false));
        *embedding.cancel.lock().unwrap_or_else(|p| p.into_inner()) = cancel.clone();
        let stopped = || {
            cancel.load(Ordering::SeqCst)
                || embedding.paused.load(Ordering::SeqCst)
                || *self.shutting_down.borrow()
        };
        if stopped() {
            return;
        }
        let engine = self.engine.clone();
        if let Ok(Err(why)) = tokio::task::spawn_blocking(move || engine.embedding_possible()).await
        {
            // Said by `aicockpit/status` (`semanticUnavailable`); no progress.
            tracing::debug!(%why, "no embedding run");
            return;
        }
        if stopped() {
            return;
        }
        let engine = self.engine.clone();
        let phase = embedding.phase.clone();
        let shown = Arc::new(AtomicBool::new(false));
        let shown_in_run = shown.clone();
        let last_percent = AtomicUsize::new(usize::MAX);
        let run_cancel = cancel.clone();
        let worker = tokio::task::spawn_blocking(move || {
            engine.embed_project(
                &|p| {
                    if p.total == 0 {
                        return;
                    }
                    shown_in_run.store(true, Ordering::SeqCst);
                    let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
                    if last_percent.swap(percent, Ordering::Relaxed) != percent {
                        phase.send_replace(EmbedPhase::Running {
                            run,
                            done: p.done,
                            total: p.total,
                        });
                    }
                },
                &run_cancel,
            )
        });
        let message = match worker.await {
            Ok(Ok(EmbedRun::Finished(stats))) => {
                tracing::info!(?stats, "embedding run finished");
                format!(
                    "{} chunks embedded; {} with vectors",
                    stats.embedded, stats.chunks
                )
            }
            Ok(Ok(EmbedRun::Stopped { stats, why })) => {
                if why != "cancelled" {
                    self.record_error(format!("embedding stopped: {why}"));
                }
                format!(
                    "stopped ({why}) after {} chunks; {} still without a vector, resumed by the next run",
                    stats.embedded, stats.pending
                )
            }
            Ok(Ok(EmbedRun::Skipped(why))) => {
                tracing::info!(%why, "no embedding run");
                why
            }
            Ok(Err(error)) => {
                self.record_error(format!("embedding: {error}"));
                format!("embedding failed: {error}")
            }
            Err(error) => {
                self.record_error(format!("embedding: {error}"));
                format!("embedding failed: {error}")
            }
        };
        if shown.load(Ordering::SeqCst) {
            embedding
                .phase
                .send_replace(EmbedPhase::Done { run, message });
        }
    }

    fn record_error(&self, error: impl std::fmt::Display) {
        let message = error.to_string();
        tracing::warn!(%message);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(stamp(message));
    }
}
