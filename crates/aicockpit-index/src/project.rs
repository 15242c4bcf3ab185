//! `ProjectIndex`: opening, refreshing and updating the index of one project root.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use aicockpit_syntax::{analyze, FileSyntax, LanguageId, Symbol, SyntaxTree};
use rayon::prelude::*;
use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

use crate::directory::CacheDirectory;
use crate::overlay::{Disk, Overlay, Persister, Staged};
use crate::schema::{self, Fields, FORMAT_VERSION, KIND_FILE, NO_SYMBOL};
use crate::source::read_project_file;
use crate::tokenizer::{CodeTokenizer, CODE_TOKENIZER};
use crate::walk::{self, SkipReason, WalkEntry};
use crate::IndexError;

/// Memory the tantivy writer may use before it flushes a segment (split
/// among its indexing threads). A larger budget (256 MiB was tried) saved
/// no CPU on a bulk load and raised the peak memory of the cargo-registry
/// benchmark above 1 GiB.
const WRITER_MEMORY_BYTES: usize = 96 * 1024 * 1024;
/// Our marker file inside the index folder.
const MARKER_FILE: &str = "aicockpit-index.json";

/// How to open an index.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    pub root: PathBuf,
    /// The AiCockpit cache folder; the index goes to `<cache_dir>/index/<hash of root>`.
    pub cache_dir: PathBuf,
    pub max_file_bytes: u64,
    /// Parser threads; 0 means one per core.
    pub threads: usize,
    /// Open without taking the writer lock (searching only).
    pub read_only: bool,
    /// Folders skipped wherever they are (`index.skip_folders`).
    pub skip_folders: Vec<String>,
    /// Whose index this is, when a folder can change hands: the server
    /// passes the workspace record's id. The index of the same folder made
    /// for another owner (or for none) is rebuilt, never reused: a
    /// workspace made under a removed one's name gets the same folder and
    /// must not be answered from its predecessor's symbols and chunks while
    /// its first refresh runs.
    pub owner: Option<String>,
}

impl IndexOptions {
    pub fn new(root: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> IndexOptions {
        IndexOptions {
            root: root.into(),
            cache_dir: cache_dir.into(),
            max_file_bytes: 1024 * 1024,
            threads: 0,
            read_only: false,
            skip_folders: walk::default_skip_folders(),
            owner: None,
        }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// Set when an existing index could not be used and was rebuilt empty: the reason.
    pub rebuilt: Option<String>,
    /// Set when the writer lock was held by another process and the index was opened read-only.
    pub read_only_because_locked: bool,
}

/// What the index knows of one file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    pub lang: LanguageId,
    /// xxh3 of the content.
    pub hash: u64,
    pub size: u64,
    /// Nanoseconds since the epoch; 0 when the content came from an editor.
    pub mtime: i64,
    pub symbols: Vec<Symbol>,
    pub chunks: u32,
    /// Lower-cased names of the definitions, packed for fast fuzzy scans.
    #[serde(skip)]
    pub(crate) names: crate::fuzzy::NameTable,
}

impl FileRecord {
    /// The record of an editor's text that the index does not hold yet,
    /// for [`ProjectIndex::workspace_symbols_with`]: its symbols and their
    /// packed names, no chunks.
    pub fn of_symbols(lang: LanguageId, symbols: Vec<aicockpit_syntax::Symbol>) -> FileRecord {
        FileRecord {
            lang,
            hash: 0,
            size: 0,
            mtime: 0,
            chunks: 0,
            names: crate::fuzzy::NameTable::new(&symbols),
            symbols,
        }
    }
}

/// Progress of a refresh, reported once per file.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// The result of a refresh.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RefreshStats {
    /// Files in the index afterwards.
    pub files: usize,
    /// Files parsed (new or changed content).
    pub parsed: usize,
    /// Files whose content had not changed.
    pub unchanged: usize,
    /// Files dropped because they are gone, ignored or now skipped.
    pub removed: usize,
    /// Files left out, with the reason.
    pub skipped: Vec<(String, SkipReason)>,
    pub symbols: usize,
    pub chunks: usize,
    /// Bytes of source read and parsed.
    pub bytes_parsed: u64,
    #[serde(serialize_with = "serialize_millis")]
    pub elapsed: Duration,
}

fn serialize_millis<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Figures for `aicockpit/status`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexStats {
    pub root: PathBuf,
    pub index_dir: PathBuf,
    pub files: usize,
    pub symbols: usize,
    pub chunks: usize,
    pub read_only: bool,
}

/// The index of one project root. Cheap to share behind an `Arc`; all
/// methods take `&self` and block.
pub struct ProjectIndex {
    root: PathBuf,
    dir: PathBuf,
    options: IndexOptions,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
    /// Adds and deletes take the read side; commits the write side.
    writer: Option<Arc<RwLock<IndexWriter>>>,
    pub(crate) files: RwLock<BTreeMap<String, Arc<FileRecord>>>,
    pub(crate) pool: rayon::ThreadPool,
    /// Striped locks by path: one path's delete-then-add (and its record)
    /// happens as one step, so two updates of a path never interleave into
    /// two surviving versions. Always taken after the writer lock.
    path_locks: Vec<Mutex<()>>,
    /// The text of files indexed from an editor rather than from disk (their
    /// record's `mtime` is 0): search snippets are cut from the text that was
    /// indexed, and the index stores no copy of it.
    pub(crate) editor_texts: RwLock<std::collections::HashMap<String, Arc<str>>>,
    /// The syntax trees of the files edited last, with the text each was
    /// parsed from: an editor's next version of such a file is parsed
    /// incrementally from it.
    trees: Mutex<RecentTrees>,
    /// Edits not yet in the index on disk (writable indexes only).
    pub(crate) overlay: Option<Arc<Overlay>>,
    persister: Option<Persister>,
}

impl Drop for ProjectIndex {
    fn drop(&mut self) {
        if let Some(mut persister) = self.persister.take() {
            persister.stop();
        }
        if self.overlay.as_ref().is_some_and(|o| !o.is_empty()) {
            if let Err(error) = self.persist() {
                tracing::warn!(%error, "could not write the last edits to the index");
            }
        }
    }
}

/// How many files' syntax trees [`ProjectIndex::update_file`] keeps for
/// incremental parsing…
const RECENT_TREES: usize = 8;
/// …and how much text they may have been parsed from together: a tree takes
/// ten to twenty times its text's size, and editors may send any file.
const RECENT_TREE_BYTES: usize = 2 * 1024 * 1024;

/// The syntax trees of the files edited last, each with its text and when
/// it was last used.
#[derive(Default)]
struct RecentTrees {
    trees: std::collections::HashMap<String, (u64, Arc<str>, SyntaxTree)>,
    clock: u64,
}

impl RecentTrees {
    fn take(&mut self, rel: &str) -> Option<(Arc<str>, SyntaxTree)> {
        self.trees.remove(rel).map(|(_, text, tree)| (text, tree))
    }

    fn keep(&mut self, rel: &str, text: Arc<str>, tree: SyntaxTree) {
        if text.len() > RECENT_TREE_BYTES {
            return;
        }
        self.clock += 1;
        self.trees.insert(rel.to_string(), (self.clock, text, tree));
        // Drop the least recently used trees until both bounds hold.
        while self.trees.len() > RECENT_TREES
            || self
                .trees
                .values()
                .map(|(_, text, _)| text.len())
                .sum::<usize>()
                > RECENT_TREE_BYTES
        {
            let oldest = self
                .trees
                .iter()
                .min_by_key(|(_, (used, _, _))| *used)
                .map(|(path, _)| path.clone());
            match oldest {
                Some(oldest) => self.trees.remove(&oldest),
                None => break,
            };
        }
    }
}

/// Stripes of [`ProjectIndex::path_locks`].
const PATH_LOCK_STRIPES: usize = 64;

impl ProjectIndex {
    /// Open (or create) the index of `options.root`. An unusable index is
    /// rebuilt empty and the reason reported; call [`Self::refresh`] to fill it.
    pub fn open(options: IndexOptions) -> Result<(ProjectIndex, OpenReport), IndexError> {
        let root = options
            .root
            .canonicalize()
            .map_err(|source| IndexError::Root {
                path: options.root.clone(),
                source,
            })?;
        if !root.is_dir() {
            return Err(IndexError::NotADirectory(root));
        }
        let dir = index_dir(&options.cache_dir, &root);
        let mut report = OpenReport::default();
        let mut options = options;
        options.root = root.clone();
        let opened = match Self::open_existing(&root, &dir, &options) {
            Ok(Some(opened)) => opened,
            Ok(None) => Self::create(&root, &dir, &options)?,
            Err(OpenFailure::Locked) if !options.read_only => {
                options.read_only = true;
                report.read_only_because_locked = true;
                match Self::open_existing(&root, &dir, &options) {
                    Ok(Some(opened)) => opened,
                    Ok(None) | Err(OpenFailure::Locked) => {
                        return Err(IndexError::Locked { path: dir })
                    }
                    Err(OpenFailure::Broken(reason)) => return Err(io_error(&dir, reason)),
                }
            }
            Err(OpenFailure::Locked) => return Err(IndexError::Locked { path: dir }),
            Err(OpenFailure::Broken(reason)) if !options.read_only => {
                tracing::warn!(index = %dir.display(), %reason, "rebuilding unusable index");
                report.rebuilt = Some(reason);
                std::fs::remove_dir_all(&dir).map_err(|source| IndexError::Io {
                    path: dir.clone(),
                    source,
                })?;
                Self::create(&root, &dir, &options)?
            }
            Err(OpenFailure::Broken(reason)) => return Err(io_error(&dir, reason)),
        };
        let (index, writer, files) = opened;
        let (_, fields) = schema::schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|source| IndexError::Tantivy {
                path: dir.clone(),
                source,
            })?;
        let threads = if options.threads == 0 {
            default_threads()
        } else {
            options.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|n| format!("aicockpit-parse-{n}"))
            .build()
            .map_err(|error| io_error(&dir, error.to_string()))?;
        let writer = writer.map(|writer| Arc::new(RwLock::new(writer)));
        let (overlay, persister) = match &writer {
            Some(writer) => {
                let overlay = Arc::new(Overlay::new());
                let disk = Disk {
                    writer: Arc::clone(writer),
                    reader: reader.clone(),
                    fields,
                };
                let persister = Persister::start(disk, Arc::clone(&overlay)).map_err(|source| {
                    IndexError::Io {
                        path: dir.clone(),
                        source,
                    }
                })?;
                (Some(overlay), Some(persister))
            }
            None => (None, None),
        };
        let project = ProjectIndex {
            root,
            dir,
            options,
            fields,
            reader,
            writer,
            files: RwLock::new(files),
            pool,
            path_locks: (0..PATH_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            editor_texts: RwLock::new(std::collections::HashMap::new()),
            trees: Mutex::default(),
            overlay,
            persister,
        };
        Ok((project, report))
    }

    fn open_existing(
        root: &Path,
        dir: &Path,
        options: &IndexOptions,
    ) -> Result<Option<Opened>, OpenFailure> {
        if !dir.join("meta.json").exists() {
            return if dir.exists() && std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
                Err(OpenFailure::Broken(
                    "the index folder has no meta.json".into(),
                ))
            } else {
                Ok(None)
            };
        }
        let marker: serde_json::Value = std::fs::read(dir.join(MARKER_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                OpenFailure::Broken(format!("{MARKER_FILE} is missing or unreadable"))
            })?;
        if marker["format"].as_u64() != Some(u64::from(FORMAT_VERSION)) {
            return Err(OpenFailure::Broken(format!(
                "index format {} is not the current {FORMAT_VERSION}",
                marker["format"]
            )));
        }
        if let Some(owner) = &options.owner {
            if marker["owner"].as_str() != Some(owner.as_str()) {
                return Err(OpenFailure::Broken(
                    "the index was made for another workspace of this folder".into(),
                ));
            }
        }
        let broken = |error: TantivyError| OpenFailure::Broken(error.to_string());
        let directory =
            CacheDirectory::open(dir).map_err(|error| OpenFailure::Broken(error.to_string()))?;
        let index = Index::open(directory).map_err(broken)?;
        if index.schema() != schema::schema().0 {
            return Err(OpenFailure::Broken(
                "the index schema differs from this version's".into(),
            ));
        }
        register_tokenizer(&index);
        let writer = if options.read_only {
            None
        } else {
            Some(open_writer(&index)?)
        };
        let files = load_records(&index).map_err(OpenFailure::Broken)?;
        let _ = root;
        Ok(Some((index, writer, files)))
    }

    fn create(root: &Path, dir: &Path, options: &IndexOptions) -> Result<Opened, IndexError> {
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let marker =
            serde_json::json!({ "format": FORMAT_VERSION, "root": root, "owner": options.owner });
        std::fs::write(dir.join(MARKER_FILE), marker.to_string()).map_err(|source| {
            IndexError::Io {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        let directory =
            CacheDirectory::open(dir).map_err(|error| io_error(dir, error.to_string()))?;
        let index = Index::create(
            directory,
            schema::schema().0,
            tantivy::IndexSettings::default(),
        )
        .map_err(|source| IndexError::Tantivy {
            path: dir.to_path_buf(),
            source,
        })?;
        register_tokenizer(&index);
        let writer = if options.read_only {
            None
        } else {
            Some(open_writer(&index).map_err(|failure| match failure {
                OpenFailure::Locked => IndexError::Locked {
                    path: dir.to_path_buf(),
                },
                OpenFailure::Broken(reason) => io_error(dir, reason),
            })?)
        };
        Ok((index, writer, BTreeMap::new()))
    }

    /// The canonical project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding the tantivy index.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// The configured size limit for indexed files.
    pub fn max_file_bytes(&self) -> u64 {
        self.options.max_file_bytes
    }

    /// Bring the index up to date with the files on disk: parse new and
    /// changed files in parallel, drop removed ones, commit.
    pub fn refresh(
        &self,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<RefreshStats, IndexError> {
        let started = Instant::now();
        let writer = self.writer()?;
        let (entries, skipped_by_walk) = walk::walk_skipping(
            &self.root,
            self.options.max_file_bytes,
            &self.options.skip_folders,
        );
        let known: BTreeMap<String, Arc<FileRecord>> = self.files_read().clone();
        let total = entries.len();
        let done = AtomicUsize::new(0);
        let outcomes: Vec<Outcome> = self.pool.install(|| {
            entries
                .par_iter()
                .map(|entry| {
                    let outcome =
                        self.refresh_one(&writer, entry, known.get(&entry.rel).map(Arc::as_ref));
                    progress(Progress {
                        done: done.fetch_add(1, Ordering::Relaxed) + 1,
                        total,
                    });
                    outcome
                })
                .collect()
        });
        // Keep the writer: the lock order everywhere is the writer, then the file records.

        let mut stats = RefreshStats {
            skipped: skipped_by_walk,
            ..RefreshStats::default()
        };
        let mut touched = 0;
        let mut seen: HashSet<&str> = HashSet::with_capacity(entries.len());
        let mut files = self
            .files
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        for (entry, outcome) in entries.iter().zip(outcomes) {
            match outcome {
                Outcome::Unchanged => {
                    stats.unchanged += 1;
                    seen.insert(&entry.rel);
                }
                Outcome::Touched(record) => {
                    stats.unchanged += 1;
                    touched += 1;
                    seen.insert(&entry.rel);
                    files.insert(entry.rel.clone(), Arc::new(record));
                    self.forget_editor_text(&entry.rel);
                }
                Outcome::Parsed(record) => {
                    self.forget_editor_text(&entry.rel);
                    stats.parsed += 1;
                    stats.bytes_parsed += record.size;
                    seen.insert(&entry.rel);
                    files.insert(entry.rel.clone(), Arc::new(record));
                }
                Outcome::Skipped(reason) => {
                    tracing::info!(path = %entry.rel, %reason, "skipped");
                    stats.skipped.push((entry.rel.clone(), reason));
                }
                Outcome::Failed(error) => return Err(error),
            }
        }
        let gone: Vec<String> = files
            .keys()
            .filter(|rel| !seen.contains(String::as_str(rel)))
            .cloned()
            .collect();
        for rel in &gone {
            writer.delete_term(Term::from_field_text(self.fields.path, rel));
            if let Some(overlay) = &self.overlay {
                overlay.discard(rel);
            }
            files.remove(rel);
            self.forget_editor_text(rel);
        }
        stats.removed = gone.len();
        stats.files = files.len();
        stats.symbols = files.values().map(|record| record.symbols.len()).sum();
        stats.chunks = files.values().map(|record| record.chunks as usize).sum();
        drop(files);
        drop(writer);
        let pending = self.overlay.as_ref().is_some_and(|o| !o.is_empty());
        if stats.parsed > 0 || stats.removed > 0 || touched > 0 || pending {
            self.persist()?;
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    fn refresh_one(
        &self,
        writer: &IndexWriter,
        entry: &WalkEntry,
        known: Option<&FileRecord>,
    ) -> Outcome {
        if let Some(record) = known {
            if record.size == entry.size && record.mtime == entry.mtime && record.mtime != 0 {
                return Outcome::Unchanged;
            }
        }
        let text = match read_project_file(&self.root, &entry.rel, self.options.max_file_bytes) {
            Ok(text) => text,
            Err(reason) => return Outcome::Skipped(reason),
        };
        let _path = self.path_lock(&entry.rel);
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        let staged = self
            .overlay
            .as_ref()
            .is_some_and(|overlay| overlay.has_pending(&entry.rel));
        if let Some(record) = known.filter(|record| record.hash == hash && !staged) {
            // Same content, new timestamp: rewrite the file doc only.
            let record = FileRecord {
                mtime: entry.mtime,
                size: entry.size,
                ..record.clone()
            };
            writer.delete_term(Term::from_field_text(self.fields.file_path, &entry.rel));
            if let Some(overlay) = &self.overlay {
                overlay.discard(&entry.rel);
            }
            return match self.add_file_doc(&mut self.to_writer(writer), &entry.rel, &record) {
                Ok(()) => Outcome::Touched(record),
                Err(error) => Outcome::Failed(error),
            };
        }
        let syntax = analyze(entry.lang, &text);
        let record = FileRecord {
            lang: entry.lang,
            hash,
            size: entry.size,
            mtime: entry.mtime,
            symbols: Vec::new(),
            chunks: syntax.chunks.len() as u32,
            names: Default::default(),
        };
        // An editor's update may have added the file since the walk started.
        if known.is_some() || self.files_read().contains_key(&entry.rel) {
            writer.delete_term(Term::from_field_text(self.fields.path, &entry.rel));
        }
        if let Some(overlay) = &self.overlay {
            overlay.discard(&entry.rel);
        }
        let mut sink = self.to_writer(writer);
        let added = self
            .add_docs(&mut sink, &entry.rel, record, syntax, &text)
            .and_then(|record| {
                self.add_file_doc(&mut sink, &entry.rel, &record)?;
                Ok(record)
            });
        match added {
            Ok(record) => Outcome::Parsed(record),
            Err(error) => Outcome::Failed(error),
        }
    }

    /// Index one file's text as the editor has it (unsaved text wins over the
    /// file on disk). Parses on the calling thread; call [`Self::commit`] to
    /// make the change searchable. Returns false when the content is unchanged.
    /// A text over the size limit ([`IndexOptions::max_file_bytes`]) removes
    /// the file from the index, as the walk leaves such files out.
    pub fn update_file(&self, rel: &str, lang: LanguageId, text: &str) -> Result<bool, IndexError> {
        // The disk walk's size rule holds for an editor's text too: a file
        // over the limit is not indexed, whoever sends it.
        if text.len() as u64 > self.options.max_file_bytes {
            let reason = SkipReason::TooLarge {
                size: text.len() as u64,
                limit: self.options.max_file_bytes,
            };
            tracing::info!(path = %rel, %reason, "skipped");
            return self.remove_file(rel);
        }
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        if self
            .files_read()
            .get(rel)
            .is_some_and(|record| record.hash == hash)
        {
            return Ok(false);
        }
        self.writable()?;
        // Parse from this file's last tree when there is one (taken out: a
        // concurrent update of the path parses from scratch).
        let previous = self.recent_trees().take(rel);
        let (syntax, tree) = aicockpit_syntax::analyze_edit(
            lang,
            text,
            previous.as_ref().map(|(old, tree)| (&**old, tree)),
        );
        let text_arc: Arc<str> = Arc::from(text);
        if let Some(tree) = tree {
            self.recent_trees().keep(rel, Arc::clone(&text_arc), tree);
        }
        // The path lock only: an edit goes to the overlay, so it never waits
        // for the disk index's writer (a background persist holds it while
        // it commits, for a hundred milliseconds on a large project).
        let _path = self.path_lock(rel);
        // Another update of this path may have landed while this one parsed.
        if self
            .files_read()
            .get(rel)
            .is_some_and(|record| record.hash == hash)
        {
            return Ok(false);
        }
        let record = FileRecord {
            lang,
            hash,
            size: text.len() as u64,
            mtime: 0,
            symbols: Vec::new(),
            chunks: syntax.chunks.len() as u32,
            names: Default::default(),
        };
        let mut docs = Vec::new();
        let record = Arc::new(self.add_docs(
            &mut |doc| {
                docs.push(doc);
                Ok(())
            },
            rel,
            record,
            syntax,
            text,
        )?);
        let staged = Staged::new(&self.fields, docs, Arc::clone(&record));
        self.stage(rel, Some(staged))?;
        self.editor_texts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_string(), text_arc);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_string(), record);
        Ok(true)
    }

    /// The text of a file as indexed from an editor, if it was.
    pub(crate) fn editor_text(&self, rel: &str) -> Option<Arc<str>> {
        self.editor_texts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(rel)
            .cloned()
    }

    fn recent_trees(&self) -> std::sync::MutexGuard<'_, RecentTrees> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_editor_text(&self, rel: &str) {
        self.recent_trees().take(rel);
        let mut texts = self.editor_texts.write().unwrap_or_else(|p| p.into_inner());
        if !texts.is_empty() {
            texts.remove(rel);
        }
    }

    /// Whether the index holds exactly this text for a file (a concurrent
    /// refresh may have replaced an editor's text with the disk's).
    pub fn holds_text(&self, rel: &str, text: &str) -> bool {
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        self.files_read()
            .get(rel)
            .is_some_and(|record| record.hash == hash)
    }

    /// Drop a file from the index. Returns whether it was there.
    pub fn remove_file(&self, rel: &str) -> Result<bool, IndexError> {
        self.writable()?;
        let _path = self.path_lock(rel);
        self.stage(rel, None)?;
        self.forget_editor_text(rel);
        Ok(self
            .files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rel)
            .is_some())
    }

    /// The lock of one path's stripe (taken after the writer lock, if that is taken).
    fn path_lock(&self, rel: &str) -> MutexGuard<'_, ()> {
        let stripe = xxhash_rust::xxh3::xxh3_64(rel.as_bytes()) as usize % self.path_locks.len();
        self.path_locks[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Re-read one path from disk (after a create, change, delete or rename
    /// event): indexed if the walk would index it, dropped otherwise.
    /// Returns whether the index changed.
    pub fn reindex_path(&self, path: &Path) -> Result<bool, IndexError> {
        let Some(rel) = walk::relative(&self.root, path) else {
            return Ok(false);
        };
        // Never through a symlink, never a FIFO or device, never past the
        // size limit: the one safe read decides.
        let source = walk::is_indexable_skipping(&self.root, path, &self.options.skip_folders)
            .then(|| self.read(&rel));
        match (source, LanguageId::from_path(path)) {
            (Some(Ok(text)), Some(lang)) => {
                let changed = self.update_file(&rel, lang, &text)?;
                // Record the disk timestamp so the next refresh can skip the file.
                if let Ok(metadata) = std::fs::symlink_metadata(path) {
                    let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
                    if let Some(record) = files.get_mut(&rel) {
                        Arc::make_mut(record).mtime = walk::mtime(&metadata);
                    }
                    drop(files);
                    // The indexed text is the disk's: snippets read the file.
                    self.forget_editor_text(&rel);
                }
                Ok(changed)
            }
            (Some(Err(reason)), _) => {
                tracing::info!(path = %rel, %reason, "skipped");
                self.remove_file(&rel)
            }
            _ => self.remove_file(&rel),
        }
    }

    /// Hand a path's new docs (`None`: its removal) to the overlay.
    fn stage(&self, rel: &str, docs: Option<Staged>) -> Result<(), IndexError> {
        let Some(overlay) = &self.overlay else {
            return Err(IndexError::ReadOnly {
                path: self.dir.clone(),
            });
        };
        overlay.stage(rel, docs);
        Ok(())
    }

    /// Make staged changes searchable. Edits are served from the in-memory
    /// overlay (see `overlay.rs`), so this writes nothing to disk: the
    /// index's background thread writes pending edits to the index on disk
    /// in a batch once the oldest is a few seconds old or many files are
    /// pending ([`Self::persist`] does it at once).
    pub fn commit(&self) -> Result<(), IndexError> {
        let Some(overlay) = &self.overlay else {
            return Err(IndexError::ReadOnly {
                path: self.dir.clone(),
            });
        };
        overlay.commit();
        Ok(())
    }

    /// Write every pending edit to the index on disk, commit it and empty
    /// the overlay (the end of a refresh does this, and dropping the index).
    pub fn persist(&self) -> Result<(), IndexError> {
        let (Some(writer), Some(overlay)) = (&self.writer, &self.overlay) else {
            return Err(IndexError::ReadOnly {
                path: self.dir.clone(),
            });
        };
        let disk = Disk {
            writer: Arc::clone(writer),
            reader: self.reader.clone(),
            fields: self.fields,
        };
        crate::overlay::persist(&disk, overlay).map_err(|error| self.tantivy_error(error))
    }

    /// Figures for status displays.
    pub fn stats(&self) -> IndexStats {
        let files = self.files_read();
        IndexStats {
            root: self.root.clone(),
            index_dir: self.dir.clone(),
            files: files.len(),
            symbols: files.values().map(|record| record.symbols.len()).sum(),
            chunks: files.values().map(|record| record.chunks as usize).sum(),
            read_only: self.writer.is_none(),
        }
    }

    /// The record of one file, by relative path.
    pub fn file(&self, rel: &str) -> Option<Arc<FileRecord>> {
        self.files_read().get(rel).cloned()
    }

    /// Read a file of the project by relative path, safely (see
    /// [`read_project_file`]): within the configured size limit, a regular
    /// file, no symlink below the root.
    pub fn read(&self, rel: &str) -> Result<String, SkipReason> {
        read_project_file(&self.root, rel, self.options.max_file_bytes)
    }

    /// The absolute path of a relative one.
    pub fn absolute(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub(crate) fn files_read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<FileRecord>>> {
        self.files
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn writable(&self) -> Result<(), IndexError> {
        match &self.writer {
            Some(_) => Ok(()),
            None => Err(IndexError::ReadOnly {
                path: self.dir.clone(),
            }),
        }
    }

    fn writer(&self) -> Result<RwLockReadGuard<'_, IndexWriter>, IndexError> {
        match &self.writer {
            Some(lock) => Ok(lock.read().unwrap_or_else(|p| p.into_inner())),
            None => Err(IndexError::ReadOnly {
                path: self.dir.clone(),
            }),
        }
    }

    fn tantivy_error(&self, source: TantivyError) -> IndexError {
        IndexError::Tantivy {
            path: self.dir.clone(),
            source,
        }
    }

    /// A sink that adds documents to the disk index's writer.
    fn to_writer<'w>(
        &'w self,
        writer: &'w IndexWriter,
    ) -> impl FnMut(TantivyDocument) -> Result<(), IndexError> + 'w {
        move |doc| {
            writer
                .add_document(doc)
                .map(drop)
                .map_err(|error| self.tantivy_error(error))
        }
    }

    fn add_file_doc(
        &self,
        sink: &mut dyn FnMut(TantivyDocument) -> Result<(), IndexError>,
        rel: &str,
        record: &FileRecord,
    ) -> Result<(), IndexError> {
        let doc = schema::file_doc(&self.fields, rel, record)
            .map_err(|error| io_error(&self.dir, error.to_string()))?;
        sink(doc)
    }

    fn add_docs(
        &self,
        sink: &mut dyn FnMut(TantivyDocument) -> Result<(), IndexError>,
        rel: &str,
        mut record: FileRecord,
        syntax: FileSyntax,
        text: &str,
    ) -> Result<FileRecord, IndexError> {
        let f = &self.fields;
        // Only file docs carry `doc_kind` (opening reads them by it); the
        // others are told apart by their fields.
        let base = || {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.path, rel);
            doc
        };
        // Symbols with chunks of their own (functions, classes, …).
        let mut owns_chunk = vec![false; syntax.symbols.len()];
        for chunk in &syntax.chunks {
            if let Some(slot) = chunk.symbol.and_then(|s| owns_chunk.get_mut(s as usize)) {
                *slot = true;
            }
        }
        for (ordinal, symbol) in syntax.symbols.iter().enumerate() {
            let mut doc = base();
            doc.add_text(f.name, &symbol.name);
            doc.add_text(f.name_exact, &symbol.name);
            doc.add_text(f.kind, symbol.kind.name());
            // The signature of a field, variant, constant or variable is
            // its line in the enclosing chunk, which search finds (and
            // points at) by that chunk's best line. Indexing it twice was
            // a fifth of the cargo registry's tokens (16.8 M of about 75 M:
            // generated bindings are thousands of constants a file).
            if owns_chunk[ordinal] {
                doc.add_text(f.signature, &symbol.signature);
            }
            if let Some(text) = symbol.doc.as_deref().map(doc_summary) {
                doc.add_text(f.doc, text);
            }
            doc.add_u64(f.ordinal, ordinal as u64);
            sink(doc)?;
        }
        for chunk in &syntax.chunks {
            let mut doc = base();
            if let Some(symbol) = chunk.symbol.and_then(|s| syntax.symbols.get(s as usize)) {
                doc.add_text(f.chunk_name, &symbol.name);
            }
            doc.add_text(f.content, &text[chunk.bytes.clone()]);
            doc.add_u64(f.ordinal, chunk.symbol.map_or(NO_SYMBOL, u64::from));
            doc.add_u64(f.start_line, u64::from(chunk.span.start.line));
            doc.add_u64(f.end_line, u64::from(chunk.span.end.line));
            sink(doc)?;
        }
        record.names = crate::fuzzy::NameTable::new(&syntax.symbols);
        record.symbols = syntax.symbols;
        Ok(record)
    }
}

type Opened = (
    Index,
    Option<IndexWriter>,
    BTreeMap<String, Arc<FileRecord>>,
);

enum OpenFailure {
    Locked,
    Broken(String),
}

enum Outcome {
    Unchanged,
    Touched(FileRecord),
    Parsed(FileRecord),
    Skipped(SkipReason),
    Failed(IndexError),
}

/// The most of a doc comment a symbol doc indexes.
const DOC_SUMMARY_BYTES: usize = 320;

/// What a symbol doc indexes of its doc comment: the first paragraph (the
/// summary line of Rust, Python, Java and Go docs), at most
/// [`DOC_SUMMARY_BYTES`] cut at a word. The whole comment is searchable in
/// the chunk that holds the definition (chunks start at the comments
/// above a definition); indexing it twice cost about a sixth of the cold
/// index of a doc-heavy corpus (the cargo registry's long `///` comments).
fn doc_summary(doc: &str) -> &str {
    let doc = doc.trim_start();
    let mut end = doc.len();
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        if line.trim().is_empty() {
            end = offset;
            break;
        }
        offset += line.len();
    }
    let mut summary = &doc[..end];
    if summary.len() > DOC_SUMMARY_BYTES {
        let mut cut = DOC_SUMMARY_BYTES;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary = &summary[..cut];
        if let Some(space) = summary.rfind(char::is_whitespace) {
            summary = &summary[..space];
        }
    }
    summary.trim_end()
}

fn open_writer(index: &Index) -> Result<IndexWriter, OpenFailure> {
    match index.writer(WRITER_MEMORY_BYTES) {
        Ok(writer) => Ok(writer),
        Err(TantivyError::LockFailure(..)) => Err(OpenFailure::Locked),
        Err(error) => Err(OpenFailure::Broken(error.to_string())),
    }
}

pub(crate) fn register_tokenizer(index: &Index) {
    index.tokenizers().register(
        CODE_TOKENIZER,
        TextAnalyzer::builder(CodeTokenizer::default()).build(),
    );
}

fn load_records(index: &Index) -> Result<BTreeMap<String, Arc<FileRecord>>, String> {
    let (_, fields) = schema::schema();
    // Records are read once, in order: a decompressed block is never read
    // again, and the default cache of 100 blocks per segment holds big
    // blocks (a record is one document of up to megabytes).
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .doc_store_cache_num_blocks(1)
        .try_into()
        .map_err(|error: TantivyError| error.to_string())?;
    let searcher = reader.searcher();
    let query = TermQuery::new(
        Term::from_field_text(fields.doc_kind, KIND_FILE),
        IndexRecordOption::Basic,
    );
    let addresses = searcher
        .search(&query, &DocSetCollector)
        .map_err(|error| error.to_string())?;
    let mut addresses: Vec<_> = addresses.into_iter().collect();
    addresses.sort();
    let mut files = BTreeMap::new();
    for address in addresses {
        let doc: TantivyDocument = searcher.doc(address).map_err(|error| error.to_string())?;
        let path = doc
            .get_first(fields.path)
            .and_then(|v| v.as_str())
            .ok_or("a file doc has no path")?;
        let json = doc
            .get_first(fields.record)
            .and_then(|v| v.as_str())
            .ok_or("a file doc has no record")?;
        let mut record: FileRecord = serde_json::from_str(json)
            .map_err(|error| format!("the record of {path} is unreadable: {error}"))?;
        // The sequence grew by doubling while it was read.
        record.symbols.shrink_to_fit();
        record.names = crate::fuzzy::NameTable::new(&record.symbols);
        files.insert(path.to_string(), Arc::new(record));
    }
    drop(searcher);
    drop(reader);
    release_free_memory();
    Ok(files)
}

/// Hand the pages freed after a bulk read back to the system. Reading the
/// records allocates a JSON string and a document per file between the
/// records that stay, and glibc keeps the freed space in its heap.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; it
        // takes the allocator's locks and touches no memory the program owns.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// `<cache_dir>/index/<hash of the canonical root>`.
pub fn index_dir(cache_dir: &Path, root: &Path) -> PathBuf {
    let hash = xxhash_rust::xxh3::xxh3_64(root.as_os_str().as_encoded_bytes());
    let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("root");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir.join("index").join(format!("{safe}-{hash:016x}"))
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn io_error(dir: &Path, message: String) -> IndexError {
    IndexError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_summaries_are_the_first_paragraph_cut_at_a_word() {
        assert_eq!(doc_summary("  Adds one.\n\nDetails."), "Adds one.");
        assert_eq!(
            doc_summary("Two lines\nof summary.\n  \nMore."),
            "Two lines\nof summary."
        );
        assert_eq!(doc_summary(""), "");
        let long = "wörd ".repeat(100);
        let summary = doc_summary(&long);
        assert!(summary.len() <= DOC_SUMMARY_BYTES, "{}", summary.len());
        assert!(summary.ends_with("wörd") && summary.len() > DOC_SUMMARY_BYTES - 8);
        let unbroken = "é".repeat(400);
        assert!(doc_summary(&unbroken).len() <= DOC_SUMMARY_BYTES);
    }

    #[test]
    fn recent_trees_are_bounded_in_count_and_text_size() {
        let tree = aicockpit_syntax::analyze_edit(LanguageId::Rust, "fn a() {}\n", None)
            .1
            .expect("a tree");
        let mut trees = RecentTrees::default();
        for n in 0..RECENT_TREES + 3 {
            trees.keep(&format!("f{n}.rs"), Arc::from("fn a() {}\n"), tree.clone());
        }
        assert_eq!(trees.trees.len(), RECENT_TREES);
        assert!(trees.take("f0.rs").is_none(), "the oldest went first");
        assert!(trees.take(&format!("f{}.rs", RECENT_TREES + 2)).is_some());
        // Large texts: the total stays under the budget, the newest kept.
        let big: Arc<str> = Arc::from("x".repeat(RECENT_TREE_BYTES / 2 + 1));
        trees.keep("big1.rs", Arc::clone(&big), tree.clone());
        trees.keep("big2.rs", Arc::clone(&big), tree.clone());
        let total: usize = trees.trees.values().map(|(_, text, _)| text.len()).sum();
        assert!(total <= RECENT_TREE_BYTES, "{total}");
        assert!(trees.take("big2.rs").is_some());
        assert!(trees.take("big1.rs").is_none());
        // A text over the budget is never kept.
        let huge: Arc<str> = Arc::from("x".repeat(RECENT_TREE_BYTES + 1));
        trees.keep("huge.rs", huge, tree);
        assert!(trees.take("huge.rs").is_none());
    }
}
