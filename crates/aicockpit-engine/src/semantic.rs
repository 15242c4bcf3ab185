//! Semantic and hybrid search for the engine's clients: the configured
//! embedder and the project's vectors, opened on the first search or
//! embedding run that wants them.
//!
//! The language server keeps the vectors in step with the index through
//! [`Engine::embed_project`], run in the background after the text index is
//! ready and again after the index changes. A run reads the store while it
//! plans, holds the store's write lock only to take its plan in and to add
//! each batch's vectors, and saves as it goes, so searches keep answering
//! during a run, and a cancelled or failed run resumes where it stopped.
//! AI context (completion and chat) draws on hybrid hits whenever vectors
//! exist.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aicockpit_config::{EmbeddingsSource, SearchMode};
use aicockpit_embed::fusion::Fusion;
use aicockpit_embed::hybrid::{self, RankedHit, Semantic};
use aicockpit_embed::provider::{local_limit_allows, open_embedder};
use aicockpit_embed::store::{embed_pending, Approximate, EmbedProgress, SyncStats, VectorStore};
use aicockpit_embed::{EmbedError, Embedder};
use aicockpit_index::{SearchHit, SearchQuery};

use crate::{Engine, EngineError};

/// How often a long embedding run writes what it has to disk.
const SAVE_EVERY: Duration = Duration::from_secs(20);

/// What the engine knows of semantic search.
#[derive(Default)]
pub(crate) struct SemanticState {
    /// Where models and keys live; set by [`Engine::configure_ai`].
    data_dir: Option<PathBuf>,
    /// What the embedder was opened from (the data folder, `[search]` and
    /// the active service): a configuration that changes nothing of it
    /// keeps the opened embedder and store.
    signature: String,
    opened: Option<Result<Arc<Opened>, String>>,
}

/// The engine's semantic search: its state, and whether an embedding run is
/// under way.
#[derive(Default)]
pub(crate) struct SemanticSearch {
    state: Mutex<SemanticState>,
    /// True while [`Engine::embed_project`] runs (one run at a time).
    running: AtomicBool,
    /// The store's counts when last read (for a status that must not wait
    /// for the store's lock).
    chunks: AtomicUsize,
    embedded: AtomicUsize,
}

struct Opened {
    embedder: Box<dyn Embedder>,
    store: RwLock<VectorStore>,
}

/// A search's hits, the mode it used, and why vectors were not used, if not.
pub struct RankedSearch {
    pub hits: Vec<RankedHit>,
    pub mode: SearchMode,
    pub why: Option<String>,
}

/// How an embedding run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbedRun {
    /// Nothing was embedded: embeddings are off or cannot be had (why, with
    /// what to run), or another run is under way.
    Skipped(String),
    /// The vectors follow the index.
    Finished(SyncStats),
    /// Cancelled or failed part way (why); what was embedded is kept and the
    /// next run resumes from there.
    Stopped { stats: SyncStats, why: String },
}

/// Where semantic search stands, for `aicockpit/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SemanticStatus {
    /// Chunks the store knows, and how many of them have a vector (zero
    /// until the store was opened by a search or a run).
    pub chunks: usize,
    pub embedded: usize,
    /// An embedding run is under way.
    pub running: bool,
}

impl SemanticSearch {
    fn lock(&self) -> std::sync::MutexGuard<'_, SemanticState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state without waiting: `None` while another thread holds it
    /// (opening a model or probing a service can take long).
    fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, SemanticState>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The data folder or the config may have changed: forget the opened
    /// embedder and store if what they were opened from changed (a running
    /// embedding run finishes on the old ones).
    pub(crate) fn configure(&self, data_dir: &std::path::Path, signature: String) {
        let mut state = self.lock();
        if state.data_dir.as_deref() == Some(data_dir) && state.signature == signature {
            return;
        }
        state.data_dir = Some(data_dir.to_path_buf());
        state.signature = signature;
        state.opened = None;
    }

    fn remember_counts(&self, (chunks, embedded): (usize, usize)) {
        self.chunks.store(chunks, Ordering::Relaxed);
        self.embedded.store(embedded, Ordering::Relaxed);
    }
}

/// A query's vector, computed before the store's lock is taken (so no
/// lock is held across a model run or a service's round trip), handed to
/// the hybrid search as its embedder.
struct Precomputed {
    vector: Vec<f32>,
}

impl Embedder for Precomputed {
    fn id(&self) -> &str {
        "precomputed"
    }
    fn dimension(&self) -> usize {
        self.vector.len()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(vec![self.vector.clone(); texts.len()])
    }
}

impl Engine {
    /// The opened embedder and store; opened now (a model load or a probe of
    /// the service: blocking) when `open` says so and nothing is cached. A
    /// service that failed is tried again on the next open.
    fn semantic_opened(&self, open: bool) -> Option<Result<Arc<Opened>, String>> {
        let index = self.index.as_ref()?;
        if !open {
            // Never waits: callers on async workers must not stall behind an
            // open in progress.
            return self.semantic.try_lock()?.opened.clone();
        }
        let config = self.config();
        let mut state = self.semantic.lock();
        let retry = matches!(state.opened, Some(Err(_)))
            && config.search.embeddings == EmbeddingsSource::Service
            && open;
        if (state.opened.is_none() || retry) && open {
            let data_dir = state.data_dir.clone().unwrap_or_default();
            let file = self.file_config();
            let opened = open_embedder(&config.search, &config.ai, &file.ai, &data_dir, |name| {
                std::env::var(name).ok()
            })
            .map_err(|why| why.0)
            .and_then(|embedder| {
                local_limit_allows(&config.search, index.stats().chunks).map_err(|why| why.0)?;
                let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
                store.set_approximate(Approximate {
                    above: config.search.approximate_above,
                    probe: config.search.approximate_probe,
                });
                Ok(Arc::new(Opened {
                    embedder,
                    store: RwLock::new(store),
                }))
            });
            state.opened = Some(opened);
        }
        state.opened.clone()
    }

    /// Open the embedder and the project's vectors now (blocking: a model
    /// load or a probe of the service), for a caller that is about to use
    /// them and runs no background embedding (the CLI's `chat`). Returns
    /// why semantic search is unavailable, if it is.
    pub fn open_semantic(&self) -> Option<String> {
        if self.config().search.embeddings == EmbeddingsSource::Off {
            return Some("search.embeddings is \"off\"".into());
        }
        self.semantic_opened(true)?.err()
    }

    /// Why search is text-only for this project, with the command to run,
    /// or `None` when vectors are (or may be) there. Cheap: it loads no
    /// model (a service's answer is only known after the first search).
    pub fn semantic_unavailable(&self) -> Option<String> {
        let index = self.index.as_ref()?;
        let no_vectors = || self.no_vectors_reason();
        match self.semantic_opened(false) {
            Some(Ok(opened)) => {
                // Busy (a run adds vectors): say nothing rather than wait.
                let has_vectors = try_read(&opened.store).is_none_or(|s| s.has_vectors());
                return (!has_vectors).then(no_vectors);
            }
            Some(Err(why)) => return Some(why),
            None => {}
        }
        let config = self.config();
        match config.search.embeddings {
            EmbeddingsSource::Off => {
                Some("search.embeddings is \"off\": search is text-only".into())
            }
            EmbeddingsSource::Local => {
                let data_dir = self
                    .semantic
                    .try_lock()?
                    .data_dir
                    .clone()
                    .unwrap_or_default();
                let dir = aicockpit_embed::provider::local_model_dir(&config.search, &data_dir);
                if !aicockpit_embed::install::is_installed(&dir) {
                    Some(format!(
                        "no local embedding model in {}: search is text-only; run `aicockpit model install`",
                        dir.display()
                    ))
                } else if !index.dir().join(aicockpit_embed::store::FILE_NAME).exists() {
                    Some(no_vectors())
                } else {
                    None
                }
            }
            EmbeddingsSource::Service => None,
        }
    }

    /// Why there are no vectors yet, and what to do (takes no lock).
    fn no_vectors_reason(&self) -> String {
        if self.semantic.running.load(Ordering::SeqCst) {
            "the project's chunks are being embedded: semantic search starts when the first vectors are in".to_string()
        } else {
            format!(
                "no vectors for this project yet: run `aicockpit index {}`",
                self.root()
                    .map_or_else(String::new, |r| r.display().to_string())
            )
        }
    }

    /// Where semantic search stands. Never waits: while a run holds the
    /// store, the counts are the last ones read.
    pub fn semantic_status(&self) -> SemanticStatus {
        let running = self.semantic.running.load(Ordering::SeqCst);
        if let Some(Ok(opened)) = self.semantic_opened(false) {
            if let Some(store) = try_read(&opened.store) {
                self.semantic.remember_counts(store.counts());
            }
        }
        SemanticStatus {
            chunks: self.semantic.chunks.load(Ordering::Relaxed),
            embedded: self.semantic.embedded.load(Ordering::Relaxed),
            running,
        }
    }

    /// Whether an embedding run can start, or why not (cheap: loads no
    /// model): embeddings off, no local model installed, or a project above
    /// the local model's chunk limit. A service is only known by trying.
    pub fn embedding_possible(&self) -> Result<(), String> {
        let index = self.index.as_ref().ok_or("no project is open")?;
        if !self.embeddings_configured() {
            return Err(
                "search.embeddings is \"off\" (or the index is read-only): nothing to embed".into(),
            );
        }
        if let Some(Err(why)) = self.semantic_opened(false) {
            if self.config().search.embeddings != EmbeddingsSource::Service {
                return Err(why);
            }
        }
        let config = self.config();
        if config.search.embeddings == EmbeddingsSource::Local {
            let data_dir = self
                .semantic
                .try_lock()
                .and_then(|state| state.data_dir.clone())
                .unwrap_or_default();
            let dir = aicockpit_embed::provider::local_model_dir(&config.search, &data_dir);
            if !aicockpit_embed::install::is_installed(&dir) {
                return Err(format!(
                    "no local embedding model in {}: search is text-only; run `aicockpit model install`",
                    dir.display()
                ));
            }
            local_limit_allows(&config.search, index.stats().chunks).map_err(|why| why.0)?;
        }
        Ok(())
    }

    /// Whether an embedding run would do anything: embeddings are not off.
    pub fn embeddings_configured(&self) -> bool {
        self.index.is_some()
            && self.is_writable()
            && self.config().search.embeddings != EmbeddingsSource::Off
    }

    /// Bring the vectors in step with the index: embed the chunks of new and
    /// changed files, drop those of removed ones. Blocking and long (minutes
    /// on a large project with a local model): run it on a blocking thread.
    /// `progress` follows the chunks embedded; `cancel` stops the run between
    /// batches. One run at a time: a second call while one runs is skipped.
    pub fn embed_project(
        &self,
        progress: &dyn Fn(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<EmbedRun, EngineError> {
        if self.index.is_none() {
            return Err(EngineError::NoProject);
        }
        if !self.embeddings_configured() {
            return Ok(EmbedRun::Skipped(
                "search.embeddings is \"off\" (or the index is read-only): nothing to embed".into(),
            ));
        }
        if self.semantic.running.swap(true, Ordering::SeqCst) {
            return Ok(EmbedRun::Skipped(
                "another embedding run is under way".into(),
            ));
        }
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(&self.semantic.running);
        let index = self.index.as_ref().ok_or(EngineError::NoProject)?;
        let opened = match self.semantic_opened(true) {
            Some(Ok(opened)) => opened,
            Some(Err(why)) => return Ok(EmbedRun::Skipped(why)),
            None => return Err(EngineError::NoProject),
        };
        let plan = read(&opened.store).plan(index, cancel);
        let mut stats = SyncStats {
            files_chunked: plan.files_chunked(),
            files_removed: plan.files_removed(),
            ..SyncStats::default()
        };
        let pending = write(&opened.store).apply(plan);
        let mut last_save = Instant::now();
        let (embedded, outcome) = embed_pending(
            &pending,
            opened.embedder.as_ref(),
            progress,
            cancel,
            |vectors| {
                let mut store = write(&opened.store);
                for (hash, vector) in vectors {
                    store.insert(*hash, vector);
                }
                drop(store);
                if last_save.elapsed() >= SAVE_EVERY {
                    read(&opened.store).save()?;
                    last_save = Instant::now();
                }
                Ok(())
            },
        );
        stats.embedded = embedded;
        let store = read(&opened.store);
        let saved = store.save();
        let (chunks, with_vector) = store.counts();
        self.semantic.remember_counts((chunks, with_vector));
        stats.chunks = with_vector;
        stats.pending = chunks - with_vector;
        drop(store);
        let run = match outcome.and(saved) {
            Ok(()) => EmbedRun::Finished(stats),
            Err(EmbedError::Cancelled) => EmbedRun::Stopped {
                stats,
                why: "cancelled".into(),
            },
            Err(error) => EmbedRun::Stopped {
                stats,
                why: error.to_string(),
            },
        };
        Ok(run)
    }

    /// Search in `mode`: text, semantic or hybrid (text alone, with the
    /// reason, when the project has no vectors). Blocks: the query is
    /// embedded here, before the store's lock is taken.
    pub fn search_ranked(
        &self,
        query: &SearchQuery,
        mode: SearchMode,
    ) -> Result<RankedSearch, EngineError> {
        let index = self.index.as_ref().ok_or(EngineError::NoProject)?;
        self.flush()?;
        let fusion = self.fusion();
        let opened = if mode == SearchMode::Text {
            None
        } else {
            self.semantic_opened(true)
        };
        let (vector, why) = match &opened {
            Some(Ok(opened)) if read(&opened.store).has_vectors() => {
                let vector = opened
                    .embedder
                    .embed(&[query.text.as_str()])
                    .map_err(|error| EngineError::Search(format!("embedding the query: {error}")))?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                (Some(Precomputed { vector }), None)
            }
            Some(Ok(_)) => (None, Some(self.no_vectors_reason())),
            Some(Err(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        let store = match (&opened, &vector) {
            (Some(Ok(opened)), Some(_)) => Some(read(&opened.store)),
            _ => None,
        };
        let semantic = match (&store, &vector) {
            (Some(store), Some(vector)) => Some(Semantic {
                store,
                embedder: vector,
            }),
            _ => None,
        };
        let used = match (mode, &semantic) {
            (SearchMode::Hybrid, None) => SearchMode::Text,
            (mode, _) => mode,
        };
        let hits = hybrid::search(
            index,
            semantic,
            why.as_deref().unwrap_or("no vectors"),
            query,
            mode,
            &fusion,
        )
        .map_err(|error| EngineError::Search(error.to_string()))?;
        Ok(RankedSearch {
            hits,
            mode: used,
            why: if mode == SearchMode::Text { None } else { why },
        })
    }

    /// The vector of a chat question, for [`Self::context_hits_with`]: on a
    /// blocking thread, within `limit`, and only when the project has
    /// vectors. `None` otherwise, or if the embedder fails (chat then uses
    /// the text index alone).
    pub(crate) async fn question_vector(
        &self,
        question: &str,
        limit: Duration,
    ) -> Option<Vec<f32>> {
        let Some(Ok(opened)) = self.semantic_opened(false) else {
            return None;
        };
        if !try_read(&opened.store).is_some_and(|s| s.has_vectors()) {
            return None;
        }
        let question = question.to_string();
        let work = tokio::task::spawn_blocking(move || opened.embedder.embed(&[question.as_str()]));
        match tokio::time::timeout(limit, work).await {
            Ok(Ok(Ok(vectors))) => vectors.into_iter().next(),
            Ok(Ok(Err(error))) => {
                tracing::debug!(%error, "the chat question was not embedded");
                None
            }
            _ => None,
        }
    }

    /// Search hits for completion context: hybrid when the project has
    /// vectors and a local model (the query is embedded here, a few
    /// milliseconds of CPU; a service's round trip would delay every
    /// completion), and no embedding run keeps the cores busy; the text
    /// index alone otherwise. Never waits for a lock a run or an open holds.
    pub(crate) fn context_hits(&self, query: SearchQuery) -> Vec<SearchHit> {
        let Some(index) = self.index.as_ref() else {
            return Vec::new();
        };
        let text = || index.search(&query).unwrap_or_default();
        if self.semantic.running.load(Ordering::SeqCst) {
            return text();
        }
        let Some(Ok(opened)) = self.semantic_opened(false) else {
            return text();
        };
        if !opened.embedder.is_local() || !try_read(&opened.store).is_some_and(|s| s.has_vectors())
        {
            return text();
        }
        // Embedded inside an async task: `block_in_place` keeps the
        // runtime's other tasks going (not on a current-thread runtime).
        let vector = outside_the_runtime(|| opened.embedder.embed(&[query.text.as_str()]).ok())
            .flatten()
            .and_then(|v| v.into_iter().next());
        match vector {
            Some(vector) => self.context_hits_with(query, Some(vector)),
            None => text(),
        }
    }

    /// Search hits for AI context with the query's vector, if there is one
    /// (hybrid), or the text index alone.
    pub(crate) fn context_hits_with(
        &self,
        query: SearchQuery,
        vector: Option<Vec<f32>>,
    ) -> Vec<SearchHit> {
        let Some(index) = self.index.as_ref() else {
            return Vec::new();
        };
        let text = || index.search(&query).unwrap_or_default();
        let (Some(vector), Some(Ok(opened))) = (vector, self.semantic_opened(false)) else {
            return text();
        };
        let Some(store) = try_read(&opened.store) else {
            return text();
        };
        let embedder = Precomputed { vector };
        let semantic = Semantic {
            store: &store,
            embedder: &embedder,
        };
        match hybrid::search(
            index,
            Some(semantic),
            "",
            &query,
            SearchMode::Hybrid,
            &self.fusion(),
        ) {
            Ok(hits) => hits.into_iter().map(|ranked| ranked.hit).collect(),
            Err(_) => text(),
        }
    }

    fn fusion(&self) -> Fusion {
        let config = self.config();
        Fusion {
            depth: config.search.fusion_depth,
            text_weight: config.search.text_weight,
            semantic_weight: config.search.semantic_weight,
            ..Fusion::default()
        }
    }
}

/// Run blocking work from wherever the caller is: directly on a plain or
/// blocking thread, through `block_in_place` on a multi-threaded runtime's
/// worker; not at all (`None`) on a current-thread runtime, which it would
/// stall.
fn outside_the_runtime<T>(work: impl FnOnce() -> T) -> Option<T> {
    match tokio::runtime::Handle::try_current() {
        Err(_) => Some(work()),
        Ok(handle) => match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => Some(tokio::task::block_in_place(work)),
            _ => None,
        },
    }
}

/// The store for reading, or `None` while a writer holds or waits for it.
fn try_read(store: &RwLock<VectorStore>) -> Option<std::sync::RwLockReadGuard<'_, VectorStore>> {
    match store.try_read() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn read(store: &RwLock<VectorStore>) -> std::sync::RwLockReadGuard<'_, VectorStore> {
    store.read().unwrap_or_else(|p| p.into_inner())
}

fn write(store: &RwLock<VectorStore>) -> std::sync::RwLockWriteGuard<'_, VectorStore> {
    store.write().unwrap_or_else(|p| p.into_inner())
}
