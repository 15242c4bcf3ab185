//! The engine: protocol-free IDE logic over the project index and the open
//! documents (like rust-analyzer's `ide` crate). The language server, the
//! CLI and later the web server all call it.
//!
//! Architecture invariants: no LSP or JSON types here, only plain structs;
//! positions are byte offsets or [`TextPosition`]s in a [`ColumnUnit`];
//! methods block (parsing, index commits) and are called from blocking
//! threads; text in an open document always wins over the file on disk.

mod ai;
pub mod context;
mod documents;
pub mod fim;
mod navigation;
pub mod postprocess;
mod semantic;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use aicockpit_config::Config;
use aicockpit_index::{IndexError, IndexOptions, ProjectIndex};

pub use ai::{
    AiAction, AiActionOutcome, AiStats, ChatAnswer, ChatParams, InlineCompletion, SuggestedCommand,
};
pub use aicockpit_embed::fusion::Retriever;
pub use aicockpit_embed::store::{EmbedProgress, SyncStats};
pub use documents::{
    apply_changes, occurrences, ColumnUnit, Document, DocumentError, HolderId, TextChange,
    TextPosition,
};
pub use navigation::Hover;
pub use semantic::{EmbedRun, RankedSearch, SemanticStatus};

// The plain types of the crates below that the engine's callers see in its
// answers (symbols, spans, search hits, progress). Re-exported so that
// callers (the language server) depend on the engine alone.
pub use aicockpit_ai::{ChatMessage, Role};
pub use aicockpit_index::{
    is_walked_folder, walk_folders, IndexStats, Progress, RefreshStats, SearchHit, SearchQuery,
};
pub use aicockpit_syntax::{
    analyze, is_identifier_byte, LanguageId, Pos, Span, Symbol, SymbolKind,
};

/// A hash of a document's text, to tell whether a parse is of the current text.
fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub path: PathBuf,
    pub span: Span,
}

/// What went wrong in an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("no project is open (the client sent no root folder)")]
    NoProject,
    #[error(transparent)]
    Ai(#[from] aicockpit_ai::AiError),
    #[error("no AI service is active: add one with `aicockpit ai add` and choose it with `aicockpit ai use NAME`")]
    NoAiService,
    #[error("cannot read {0}")]
    Unreadable(PathBuf),
    #[error("cannot index {}: {source}", root.display())]
    CannotIndex { root: PathBuf, source: IndexError },
    #[error("{0}")]
    Search(String),
}

/// What opening a project's index found, for the caller to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenNotes {
    /// The index was unusable and is rebuilt: why.
    pub rebuilt: Option<String>,
    /// Another process holds the index's writer lock: the index is read-only.
    pub read_only_because_locked: bool,
}

impl OpenNotes {
    /// One line per note, for a status display or a log.
    pub fn messages(&self, root: &Path) -> Vec<String> {
        let mut messages = Vec::new();
        if let Some(reason) = &self.rebuilt {
            messages.push(format!("the index was unusable and is rebuilt: {reason}"));
        }
        if self.read_only_because_locked {
            messages.push(format!(
                "another AiCockpit process is writing the index of {}; serving it read-only",
                root.display()
            ));
        }
        messages
    }
}

/// The IDE state of one project: config, index and open documents.
pub struct Engine {
    config: RwLock<Config>,
    /// The config as the file and the environment give it, before any
    /// editor settings: what editor settings are checked against and what
    /// decides where keys may go. Changed only by the host
    /// ([`Self::set_file_config`]: the server's services API), never by editors.
    file_config: RwLock<Config>,
    index: Option<Arc<ProjectIndex>>,
    documents: Mutex<documents::DocumentStore>,
    ai: Mutex<ai::AiState>,
    /// Held by every write of editor or disk text into the index (flush,
    /// watcher events, closing a document), so they apply one at a time and
    /// in order: a flush never lands an older text over a newer one.
    index_writes: Mutex<()>,
    /// Bumped whenever `index_writes` is taken.
    index_generation: AtomicU64,
    /// Flushes begun: bumped under the documents lock as a flush takes the
    /// dirty documents, so a flush numbered above what a caller read saw
    /// every edit made before that caller asked.
    flushes_begun: AtomicU64,
    /// The number of the last flush that committed everything it took.
    /// A caller that waited for `index_writes` while other flushes ran
    /// returns at once when one begun after it asked has completed (group
    /// commit): many sessions asking `workspace/symbol` together cost one
    /// flush, not one each.
    flushes_done: AtomicU64,
    /// The last holder id handed out by [`Self::new_holder`].
    holders: AtomicU64,
    semantic: semantic::SemanticSearch,
}

impl Engine {
    /// Open (or create) the index of the project at `root` and build an
    /// engine over it. `file_config` is the config of the file and the
    /// environment (what keys and editor settings are judged by); `config`
    /// is the effective one (with editor settings) and decides the index
    /// options. A second writer falls back to a read-only index (see
    /// [`OpenNotes`]). Blocks: call it from a blocking thread.
    pub fn open(
        root: &Path,
        cache_dir: &Path,
        file_config: Config,
        config: Config,
        owner: Option<&str>,
    ) -> Result<(Engine, OpenNotes), EngineError> {
        let options = IndexOptions {
            root: root.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            max_file_bytes: config.index.max_file_bytes,
            threads: config.index.threads,
            read_only: false,
            skip_folders: config.index.skip_folders.clone(),
            owner: owner.map(str::to_string),
        };
        let (index, report) =
            ProjectIndex::open(options).map_err(|source| EngineError::CannotIndex {
                root: root.to_path_buf(),
                source,
            })?;
        let engine = Engine::new(file_config, Some(Arc::new(index)));
        engine.set_config(config);
        Ok((
            engine,
            OpenNotes {
                rebuilt: report.rebuilt,
                read_only_because_locked: report.read_only_because_locked,
            },
        ))
    }

    /// A holder for documents, unique within this engine (one per editor session).
    pub fn new_holder(&self) -> HolderId {
        HolderId(self.holders.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Whether a project is open and its index can be written (not read-only).
    pub fn is_writable(&self) -> bool {
        self.index
            .as_ref()
            .is_some_and(|index| !index.is_read_only())
    }

    /// Counts and folders of the project's index, if a project is open.
    pub fn index_stats(&self) -> Option<IndexStats> {
        self.index.as_ref().map(|index| index.stats())
    }

    /// An engine over an opened index (or none, for single files without a
    /// project). `config` is the file's and the environment's: editor
    /// settings come later through [`Self::set_config`].
    pub fn new(config: Config, index: Option<Arc<ProjectIndex>>) -> Engine {
        Engine {
            file_config: RwLock::new(config.clone()),
            config: RwLock::new(config),
            index,
            documents: Mutex::new(Default::default()),
            ai: Mutex::new(Default::default()),
            index_writes: Mutex::new(()),
            index_generation: AtomicU64::new(0),
            flushes_begun: AtomicU64::new(0),
            flushes_done: AtomicU64::new(0),
            holders: AtomicU64::new(0),
            semantic: Default::default(),
        }
    }

    pub fn index(&self) -> Option<&Arc<ProjectIndex>> {
        self.index.as_ref()
    }

    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The config from the file and the environment, without editor settings.
    pub fn file_config(&self) -> Config {
        self.file_config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The host changed the config file (the server's services API): the
    /// file's config and the effective config both become `config`.
    pub fn set_file_config(&self, config: Config) {
        *self.file_config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
        self.set_config(config);
    }

    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    fn documents(&self) -> MutexGuard<'_, documents::DocumentStore> {
        self.documents.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- documents -------------------------------------------------------

    /// An editor opened a document. `lang` falls back to the file extension.
    pub fn open_document(&self, path: &Path, version: i32, lang: Option<LanguageId>, text: String) {
        self.open_document_as(HolderId::DEFAULT, path, version, lang, text);
    }

    /// [`Self::open_document`] for one of several holders: its text becomes the document's.
    pub fn open_document_as(
        &self,
        holder: HolderId,
        path: &Path,
        version: i32,
        lang: Option<LanguageId>,
        text: String,
    ) {
        let lang = lang.or_else(|| LanguageId::from_path(path));
        self.documents()
            .open(holder, path.to_path_buf(), version, lang, text);
    }

    /// Apply an editor's changes, in order. No I/O and no waiting: callers
    /// apply changes in the order they arrive.
    pub fn change_document(
        &self,
        path: &Path,
        version: i32,
        unit: ColumnUnit,
        changes: &[TextChange],
    ) -> Result<(), EngineError> {
        self.change_document_as(HolderId::DEFAULT, path, version, unit, changes)
    }

    /// [`Self::change_document`] for one of several holders: the changes
    /// apply to that holder's copy, which becomes the document's text (the
    /// last writer wins).
    pub fn change_document_as(
        &self,
        holder: HolderId,
        path: &Path,
        version: i32,
        unit: ColumnUnit,
        changes: &[TextChange],
    ) -> Result<(), EngineError> {
        Ok(self
            .documents()
            .change(holder, path, version, unit, changes)?)
    }

    /// An editor saved a document (with its text when the client sends it).
    pub fn save_document(&self, path: &Path, text: Option<String>) {
        self.save_document_as(HolderId::DEFAULT, path, text);
    }

    /// [`Self::save_document`] for one of several holders.
    pub fn save_document_as(&self, holder: HolderId, path: &Path, text: Option<String>) {
        if let Some(text) = text {
            self.documents().save(holder, path, text);
        }
    }

    /// An editor closed a document: the index goes back to the file on disk.
    pub fn close_document(&self, path: &Path) -> Result<(), EngineError> {
        self.close_document_as(HolderId::DEFAULT, path)
    }

    /// [`Self::close_document`] for one of several holders: the index goes
    /// back to the disk only when no other holder has the document open.
    pub fn close_document_as(&self, holder: HolderId, path: &Path) -> Result<(), EngineError> {
        let _writes = self.index_writes();
        let closed = self.documents().close(holder, path);
        if let (documents::Closed::Last, Some(index)) = (closed, &self.index) {
            if !index.is_read_only() && index.reindex_path(&self.index_path(path))? {
                index.commit()?;
                self.index_changed();
            }
        }
        Ok(())
    }

    /// A holder is gone (its session ended): close every document it had
    /// open. Returns how many it had.
    pub fn release_documents(&self, holder: HolderId) -> Result<usize, EngineError> {
        let held = self.documents().held_by(holder);
        let mut first_error = None;
        for path in &held {
            if let Err(error) = self.close_document_as(holder, path) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(held.len()), Err)
    }

    /// How many documents a holder has open.
    pub fn documents_open_by(&self, holder: HolderId) -> usize {
        self.documents().held_by(holder).len()
    }

    /// The current text of a file and, for an open document, its version.
    pub fn text_and_version(&self, path: &Path) -> Option<(String, Option<i32>)> {
        if let Some(doc) = self.documents().get(path) {
            return Some((doc.text.clone(), Some(doc.version)));
        }
        self.text(path).map(|text| (text, None))
    }

    /// The current text of a file: the open document's, else the disk's
    /// read safely from inside the project (a regular file within the size
    /// limit, never through a symlink). A file outside the project, or any
    /// file when no project is open, has no text unless the editor opened it.
    pub fn text(&self, path: &Path) -> Option<String> {
        if let Some(doc) = self.documents().get(path) {
            return Some(doc.text.clone());
        }
        let index = self.index.as_ref()?;
        index.read(&self.rel(path)?).ok()
    }

    /// The version of an open document.
    pub fn document_version(&self, path: &Path) -> Option<i32> {
        self.documents().get(path).map(|doc| doc.version)
    }

    pub fn open_document_count(&self) -> usize {
        self.documents().len()
    }

    /// The byte offset of a position in the current text of a file.
    pub fn offset(
        &self,
        path: &Path,
        position: TextPosition,
        unit: ColumnUnit,
    ) -> Option<(String, usize)> {
        let text = self.text(path)?;
        let lines = aicockpit_syntax::LineIndex::new(&text);
        let offset = documents::offset(&lines, &text, position, unit);
        Some((text, offset))
    }

    /// Symbols of a file's current text, in source order with parent links.
    pub fn document_symbols(&self, path: &Path) -> Vec<Symbol> {
        self.symbols_arc(path)
            .map(|symbols| symbols.as_ref().clone())
            .unwrap_or_default()
    }

    fn symbols_arc(&self, path: &Path) -> Option<Arc<Vec<Symbol>>> {
        let (text, lang) = {
            let docs = self.documents();
            match docs.get(path) {
                Some(doc) => {
                    if let Some(symbols) = &doc.symbols {
                        return Some(symbols.clone());
                    }
                    (doc.text.clone(), doc.lang?)
                }
                None => {
                    drop(docs);
                    let lang = LanguageId::from_path(path)?;
                    if let Some(record) = self
                        .rel(path)
                        .and_then(|rel| self.index.as_ref()?.file(&rel))
                    {
                        return Some(Arc::new(record.symbols.clone()));
                    }
                    (self.text(path)?, lang)
                }
            }
        };
        let symbols = Arc::new(analyze(lang, &text).symbols);
        let mut record = aicockpit_index::FileRecord::of_symbols(lang, symbols.as_ref().clone());
        record.hash = text_hash(&text);
        if let Some(doc) = self.documents().get_mut(path) {
            if doc.text == text {
                doc.symbols = Some(symbols.clone());
                doc.recent_record = Some(Arc::new(record));
            }
        }
        Some(symbols)
    }

    /// Parse a document's current text for `workspace/symbol` unless its
    /// recent record is of exactly that text (by content hash).
    fn refresh_recent_record(&self, path: &Path) {
        let (text, lang) = {
            let docs = self.documents();
            let Some(doc) = docs.get(path) else { return };
            let Some(lang) = doc.lang else { return };
            if doc
                .recent_record
                .as_ref()
                .is_some_and(|r| r.hash == text_hash(&doc.text))
            {
                return;
            }
            (doc.text.clone(), lang)
        };
        let mut record =
            aicockpit_index::FileRecord::of_symbols(lang, analyze(lang, &text).symbols);
        record.hash = text_hash(&text);
        if let Some(doc) = self.documents().get_mut(path) {
            if doc.text == text {
                doc.recent_record = Some(Arc::new(record));
            }
        }
    }

    /// Parse the edited documents whose current text has not been parsed
    /// (for `workspace/symbol` of other sessions): a background chore, off
    /// the requests' path. Returns how many were parsed.
    pub fn parse_edited_documents(&self) -> usize {
        let pending: Vec<PathBuf> = self
            .documents()
            .iter()
            .filter(|(_, doc)| {
                doc.dirty
                    && doc.lang.is_some()
                    && doc
                        .recent_record
                        .as_ref()
                        .is_none_or(|r| r.hash != text_hash(&doc.text))
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in &pending {
            self.refresh_recent_record(path);
        }
        pending.len()
    }

    // ---- index -------------------------------------------------------------

    /// Walk the project and index what changed on disk (open documents keep
    /// their editor text).
    pub fn refresh(
        &self,
        progress: &(dyn Fn(aicockpit_index::Progress) + Sync),
    ) -> Result<RefreshStats, EngineError> {
        let index = self.index.as_ref().ok_or(EngineError::NoProject)?;
        let stats = index.refresh(progress)?;
        self.index_changed();
        // The walk indexed disk content; editor text wins again.
        for (_, doc) in self.documents().iter_mut() {
            doc.dirty = true;
        }
        self.flush()?;
        Ok(stats)
    }

    /// Index the text of documents changed since the last flush and commit.
    /// Returns whether anything was committed (by this call: when a flush
    /// that began after this call was made has already committed every
    /// edit made before it, there is nothing left to do). A document is
    /// marked clean only once its text is committed, and only if it has not
    /// changed since.
    pub fn flush(&self) -> Result<bool, EngineError> {
        let Some(index) = self.index.as_ref().filter(|index| !index.is_read_only()) else {
            return Ok(false);
        };
        // Read under the documents lock, after every edit made before this call.
        let needed = {
            let _documents = self.documents();
            self.flushes_begun.load(Ordering::SeqCst) + 1
        };
        let _writes = self.index_writes();
        if self.flushes_done.load(Ordering::SeqCst) >= needed {
            return Ok(false);
        }
        let (this, dirty) = {
            let documents = self.documents();
            let this = self.flushes_begun.fetch_add(1, Ordering::SeqCst) + 1;
            let dirty: Vec<(PathBuf, LanguageId, String)> = documents
                .iter()
                .filter(|(_, doc)| doc.dirty)
                .filter_map(|(path, doc)| Some((path.clone(), doc.lang?, doc.text.clone())))
                .collect();
            (this, dirty)
        };
        let mut changed = false;
        let mut written = Vec::with_capacity(dirty.len());
        for (path, lang, text) in dirty {
            let rel = self.rel(&path);
            if let Some(rel) = &rel {
                changed |= index.update_file(rel, lang, &text)?;
            }
            written.push((path, rel, text));
        }
        if changed {
            index.commit()?;
            self.index_changed();
        }
        let mut documents = self.documents();
        let mut all_held = true;
        for (path, rel, text) in written {
            // A refresh running meanwhile may have put the disk's text back
            // (the first index with the file already open): then the
            // document stays dirty and the refresh's own flush writes it again.
            let held = rel.is_none_or(|rel| index.holds_text(&rel, &text));
            all_held &= held;
            if let Some(doc) = documents.get_mut(&path) {
                if doc.text == text && held {
                    doc.dirty = false;
                }
            }
        }
        if all_held {
            // Under `index_writes`, so the numbers only grow.
            self.flushes_done.store(this, Ordering::SeqCst);
        }
        Ok(changed)
    }

    fn index_writes(&self) -> MutexGuard<'_, ()> {
        self.index_writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index changed (something was committed): see [`Self::index_generation`].
    fn index_changed(&self) {
        self.index_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A number that grows whenever something is committed to the index (a
    /// flush that wrote, files changed on disk, a closed document, a
    /// refresh); searches and flushes with nothing to write leave it alone.
    /// Background work that follows the index (embedding) compares it with
    /// the one it last saw.
    pub fn index_generation(&self) -> u64 {
        self.index_generation.load(Ordering::SeqCst)
    }

    /// Files changed on disk (watcher events). Open documents are skipped:
    /// their editor text wins. Returns how many paths changed the index.
    /// Files changed on disk (a watcher's events): when an ignore file
    /// changed, the whole project is walked again (what is indexed may
    /// change anywhere); otherwise only `paths` are re-read.
    pub fn watched_files_changed(
        &self,
        paths: &[PathBuf],
        ignore_rules_changed: bool,
    ) -> Result<usize, EngineError> {
        if ignore_rules_changed {
            self.refresh(&|_| {})
                .map(|stats| stats.parsed + stats.removed)
        } else {
            self.files_changed(paths)
        }
    }

    pub fn files_changed(&self, paths: &[PathBuf]) -> Result<usize, EngineError> {
        let Some(index) = self.index.as_ref().filter(|index| !index.is_read_only()) else {
            return Ok(0);
        };
        let _writes = self.index_writes();
        let mut changed = 0;
        for path in paths {
            if self.documents().get(path).is_some() {
                continue;
            }
            if index.reindex_path(&self.index_path(path))? {
                changed += 1;
            }
        }
        if changed > 0 {
            index.commit()?;
            self.index_changed();
        }
        Ok(changed)
    }

    /// Search the project; documents edited since the last flush are indexed first.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>, EngineError> {
        let index = self.index.as_ref().ok_or(EngineError::NoProject)?;
        self.flush()?;
        Ok(index.search(query)?)
    }

    /// Fuzzy symbol search over the project, with absolute paths.
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<(PathBuf, Symbol)> {
        self.workspace_symbols_for(query, limit, None)
    }

    /// Fuzzy symbol search with the editors' unsaved text: `holder`'s own
    /// edited documents as they are now (parsed here if needed), other
    /// editors' as last parsed ([`Self::parse_edited_documents`] keeps that
    /// recent; one never parsed is parsed here), everything else as the
    /// index has it. Nothing is indexed or
    /// committed, so a query costs a parse of the asker's changes at most.
    pub fn workspace_symbols_for(
        &self,
        query: &str,
        limit: usize,
        holder: Option<HolderId>,
    ) -> Vec<(PathBuf, Symbol)> {
        let Some(index) = &self.index else {
            return Vec::new();
        };
        let own: Vec<PathBuf> = {
            let docs = self.documents();
            let held = holder.map(|h| docs.held_by(h));
            // The asker's own edited documents, and any edited document
            // never parsed yet (just opened with unsaved text elsewhere).
            docs.iter()
                .filter(|(path, doc)| {
                    doc.dirty
                        && (doc.recent_record.is_none()
                            || held.as_ref().is_none_or(|held| held.contains(path)))
                })
                .map(|(path, _)| path.clone())
                .collect()
        };
        for path in &own {
            self.refresh_recent_record(path);
        }
        let overrides: std::collections::BTreeMap<String, Arc<aicockpit_index::FileRecord>> = {
            let docs = self.documents();
            docs.iter()
                .filter(|(_, doc)| doc.dirty)
                .filter_map(|(path, doc)| Some((self.rel(path)?, doc.recent_record.clone()?)))
                .collect()
        };
        index
            .workspace_symbols_with(query, limit, &overrides)
            .into_iter()
            .map(|hit| (index.absolute(&hit.path), hit.symbol))
            .collect()
    }

    /// A path relative to the project root, when it is inside it.
    pub fn rel(&self, path: &Path) -> Option<String> {
        let root = self.index.as_ref()?.root();
        if let Some(rel) = aicockpit_index::relative(root, path) {
            return Some(rel);
        }
        // The client may name the root through a symlink.
        let parent = path.parent()?.canonicalize().ok()?;
        aicockpit_index::relative(root, &parent.join(path.file_name()?))
    }

    /// The path as the index knows it: under the canonical root, even when
    /// the client names the root through a symlink.
    fn index_path(&self, path: &Path) -> PathBuf {
        match (self.rel(path), self.root()) {
            (Some(rel), Some(root)) => root.join(rel),
            _ => path.to_path_buf(),
        }
    }

    /// The project root, if a project is open.
    pub fn root(&self) -> Option<&Path> {
        self.index.as_ref().map(|index| index.root())
    }
}
