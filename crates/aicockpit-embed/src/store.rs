//! The vector store: one int8 vector per chunk of the project index, kept in
//! `vectors.bin` beside the tantivy index and keyed by the chunk's content
//! hash, so it follows the index incrementally: a changed file re-embeds only
//! the chunks whose text changed, a deleted file's vectors go, and a restart
//! recomputes nothing. Embedding saves as it goes, so a cancelled or failed
//! run resumes where it stopped.
//!
//! Search is exact (a scan of every vector, int8 times the f32 query), which
//! takes tens of milliseconds for a few hundred thousand chunks; above
//! [`Approximate::above`] vectors it scans only the nearest lists of an
//! inverted-file index (`ivf.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aicockpit_index::ProjectIndex;
use aicockpit_syntax::{analyze, Span};

use crate::ivf::Ivf;
use crate::{EmbedError, Embedder};

/// The store's file inside the index folder.
pub const FILE_NAME: &str = "vectors.bin";
const MAGIC: &[u8; 8] = b"ACVEC01\n";
/// The most chunks sent to the embedder at once (progress and cancellation
/// are checked between batches; each embedder says its own size).
const MAX_BATCH: usize = 256;
/// How often a long embedding run saves what it has.
const SAVE_EVERY: Duration = Duration::from_secs(20);
/// Characters of a chunk that are embedded; local models read at most 256
/// tokens, and services have their own limits.
const MAX_CHUNK_CHARS: usize = 4000;

/// One chunk of a file as the store knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    /// xxh3 of the embedded text (the path and the chunk's text).
    pub hash: u64,
    pub span: Span,
    /// The name of the symbol the chunk belongs to.
    pub symbol: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
struct FileEntry {
    /// The index's content hash when the chunks were taken.
    file_hash: u64,
    chunks: Vec<StoredChunk>,
}

#[derive(Clone, Debug, PartialEq)]
struct Quantized {
    scale: f32,
    values: Vec<i8>,
}

/// How far an embedding run is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EmbedProgress {
    pub done: usize,
    pub total: usize,
}

/// What a [`VectorStore::sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStats {
    /// Files whose chunks were taken again (new or changed).
    pub files_chunked: usize,
    pub files_removed: usize,
    /// Chunks sent to the embedder.
    pub embedded: usize,
    /// Chunks with a vector after the run.
    pub chunks: usize,
    /// Chunks still without one (the run was cancelled or failed).
    pub pending: usize,
}

/// A chunk found by its vector.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DenseHit {
    pub path: String,
    pub span: Span,
    pub symbol: Option<String>,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// The vectors of one project's chunks, for one embedder.
pub struct VectorStore {
    path: PathBuf,
    embedder_id: String,
    dimension: usize,
    files: BTreeMap<String, FileEntry>,
    vectors: HashMap<u64, Quantized>,
    /// Changed since the last save.
    dirty: AtomicBool,
    approximate: Approximate,
    /// The inverted lists, once built for a search over more than
    /// `approximate.above` vectors.
    ivf: RwLock<Option<Ivf>>,
    /// New lists being built on their own thread.
    building: Mutex<Option<Building>>,
}

/// A build of inverted lists under way on its own thread, from a snapshot
/// of the vectors; cancelled when dropped (with its store).
struct Building {
    done: mpsc::Receiver<Option<Ivf>>,
    cancelled: Arc<AtomicBool>,
}

impl Drop for Building {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// When search turns approximate, and how much of the store it then reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approximate {
    /// Above this many vectors, search scans only the nearest lists of an
    /// inverted-file index instead of every vector.
    pub above: usize,
    /// The lists a query scans (of about √n).
    pub probe: usize,
}

impl Default for Approximate {
    fn default() -> Self {
        Approximate {
            above: 300_000,
            probe: 32,
        }
    }
}

/// What following the index takes (see [`VectorStore::plan`]).
#[derive(Debug, Default)]
pub struct SyncPlan {
    files: Vec<(String, FileEntry)>,
    removed: Vec<String>,
    pending: Vec<(u64, String)>,
    files_chunked: usize,
}

impl SyncPlan {
    /// Chunks to embed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// New or changed files whose chunks were taken.
    pub fn files_chunked(&self) -> usize {
        self.files_chunked
    }

    /// Files gone from the index (or no longer readable).
    pub fn files_removed(&self) -> usize {
        self.removed.len()
    }

    /// Whether applying the plan changes nothing and embeds nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.removed.is_empty() && self.pending.is_empty()
    }
}

/// Embed `pending` in batches, handing each batch's vectors to `insert`,
/// with progress after every batch and `cancel` checked between batches.
/// Returns the chunks embedded, and how the run ended.
pub fn embed_pending(
    pending: &[(u64, String)],
    embedder: &dyn Embedder,
    progress: &dyn Fn(EmbedProgress),
    cancel: &AtomicBool,
    mut insert: impl FnMut(&[(u64, Vec<f32>)]) -> Result<(), EmbedError>,
) -> (usize, Result<(), EmbedError>) {
    let total = pending.len();
    progress(EmbedProgress { done: 0, total });
    let mut done = 0;
    for batch in pending.chunks(embedder.batch_size().clamp(1, MAX_BATCH)) {
        if cancel.load(Ordering::Relaxed) {
            return (done, Err(EmbedError::Cancelled));
        }
        let texts: Vec<&str> = batch.iter().map(|(_, text)| text.as_str()).collect();
        let vectors = match embedder.embed(&texts) {
            Ok(vectors) => vectors,
            Err(error) => return (done, Err(error)),
        };
        if vectors.len() != batch.len() {
            return (
                done,
                Err(EmbedError::Count {
                    service: embedder.id().to_string(),
                    expected: batch.len(),
                    got: vectors.len(),
                }),
            );
        }
        let embedded: Vec<(u64, Vec<f32>)> =
            batch.iter().map(|(hash, _)| *hash).zip(vectors).collect();
        if let Err(error) = insert(&embedded) {
            return (done, Err(error));
        }
        done += batch.len();
        progress(EmbedProgress { done, total });
    }
    (done, Ok(()))
}

impl VectorStore {
    /// Open the store in `index_dir` for `embedder_id`. A missing store is
    /// empty; one made by another embedder, or unreadable, is discarded with
    /// a warning (it is a cache).
    pub fn open(index_dir: &Path, embedder_id: &str, dimension: usize) -> VectorStore {
        let path = index_dir.join(FILE_NAME);
        let mut store = VectorStore {
            path: path.clone(),
            embedder_id: embedder_id.to_string(),
            dimension,
            files: BTreeMap::new(),
            vectors: HashMap::new(),
            dirty: AtomicBool::new(false),
            approximate: Approximate::default(),
            ivf: RwLock::new(None),
            building: Mutex::new(None),
        };
        match std::fs::File::open(&path) {
            Ok(file) => match read_store(std::io::BufReader::new(file), embedder_id, dimension) {
                Ok(Ok((files, vectors))) => {
                    store.files = files;
                    store.vectors = vectors;
                }
                Ok(Err(id)) => {
                    tracing::info!(path = %path.display(), old = %id, new = %embedder_id, "the embedding model changed; vectors are recomputed");
                    store.dirty = AtomicBool::new(true);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable vector store; vectors are recomputed");
                    store.dirty = AtomicBool::new(true);
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot open the vector store; vectors are recomputed");
            }
        }
        store
    }

    /// When search turns approximate (see [`Approximate`]).
    pub fn set_approximate(&mut self, approximate: Approximate) {
        self.approximate = approximate;
    }

    pub fn embedder_id(&self) -> &str {
        &self.embedder_id
    }

    /// Chunks known, and how many of them have a vector.
    pub fn counts(&self) -> (usize, usize) {
        let mut chunks = 0;
        let mut embedded = 0;
        for entry in self.files.values() {
            for chunk in &entry.chunks {
                chunks += 1;
                if self.vectors.contains_key(&chunk.hash) {
                    embedded += 1;
                }
            }
        }
        (chunks, embedded)
    }

    /// Whether any chunk has a vector.
    pub fn has_vectors(&self) -> bool {
        !self.vectors.is_empty()
    }

    /// The chunks of one file as stored.
    pub fn chunks_of(&self, path: &str) -> &[StoredChunk] {
        self.files.get(path).map_or(&[], |entry| &entry.chunks)
    }

    /// Follow the index: take the chunks of new and changed files, forget
    /// removed ones, then embed every chunk without a vector, in batches,
    /// reporting progress and saving as it goes. Stops early, with what it
    /// has saved, when `cancel` is set or the embedder fails.
    ///
    /// The language server does the same in steps ([`Self::plan`],
    /// [`Self::apply`], [`embed_pending`], [`Self::insert`]) so that searches
    /// can read the store while batches are embedded.
    pub fn sync(
        &mut self,
        index: &ProjectIndex,
        embedder: &dyn Embedder,
        progress: &dyn Fn(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<SyncStats, EmbedError> {
        let plan = self.plan(index, cancel);
        let mut stats = SyncStats {
            files_chunked: plan.files_chunked,
            files_removed: plan.removed.len(),
            ..SyncStats::default()
        };
        let pending = self.apply(plan);
        let mut last_save = Instant::now();
        let (embedded, outcome) = embed_pending(&pending, embedder, progress, cancel, |vectors| {
            for (hash, vector) in vectors {
                self.insert(*hash, vector);
            }
            if last_save.elapsed() >= SAVE_EVERY {
                self.save()?;
                last_save = Instant::now();
            }
            Ok(())
        });
        stats.embedded = embedded;
        self.save()?;
        let (chunks, embedded) = self.counts();
        stats.chunks = embedded;
        stats.pending = chunks - embedded;
        outcome.map(|()| stats)
    }

    /// What following the index takes, found without changing the store:
    /// the chunks of new and changed files (files are read and parsed
    /// here), the files gone, and the chunks still without a vector.
    pub fn plan(&self, index: &ProjectIndex, cancel: &AtomicBool) -> SyncPlan {
        let mut plan = SyncPlan::default();
        let listed = index.files();
        let present: HashSet<&str> = listed.iter().map(|(path, _)| path.as_str()).collect();
        plan.removed = self
            .files
            .keys()
            .filter(|path| !present.contains(path.as_str()))
            .cloned()
            .collect();
        let mut queued: HashSet<u64> = HashSet::new();
        for (path, record) in &listed {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let stored = self.files.get(path);
            let known = stored.is_some_and(|entry| entry.file_hash == record.hash);
            if known
                && stored.is_some_and(|entry| {
                    entry
                        .chunks
                        .iter()
                        .all(|c| self.vectors.contains_key(&c.hash))
                })
            {
                continue;
            }
            // New, changed, or a resumed run's file with chunks still to embed.
            let Ok(text) = index.read(path) else {
                if stored.is_some() {
                    plan.removed.push(path.clone());
                }
                continue;
            };
            // The index holds an editor's unsaved text for this file (or the
            // file changed since it was indexed): the vectors follow the
            // file on disk once the index does, not text nobody saved.
            if xxhash_rust::xxh3::xxh3_64(text.as_bytes()) != record.hash {
                continue;
            }
            let syntax = analyze(record.lang, &text);
            let mut chunks = Vec::with_capacity(syntax.chunks.len());
            for chunk in &syntax.chunks {
                let Some(body) = text.get(chunk.bytes.clone()) else {
                    continue;
                };
                let embedded = chunk_text(path, body);
                let hash = xxhash_rust::xxh3::xxh3_64(embedded.as_bytes());
                let symbol = chunk
                    .symbol
                    .and_then(|s| syntax.symbols.get(s as usize))
                    .map(|s| s.name.to_string());
                if !self.vectors.contains_key(&hash) && queued.insert(hash) {
                    plan.pending.push((hash, embedded));
                }
                chunks.push(StoredChunk {
                    hash,
                    span: chunk.span,
                    symbol,
                });
            }
            if !known {
                plan.files_chunked += 1;
            }
            plan.files.push((
                path.clone(),
                FileEntry {
                    file_hash: record.hash,
                    chunks,
                },
            ));
        }
        plan
    }

    /// Take a plan's files into the store (their old vectors that no chunk
    /// refers to any more go) and hand back the chunks to embed. A plan made
    /// before another change to the store is still safe to apply: vectors
    /// are keyed by the text they embed.
    pub fn apply(&mut self, plan: SyncPlan) -> Vec<(u64, String)> {
        for path in &plan.removed {
            self.files.remove(path);
        }
        for (path, entry) in plan.files {
            self.files.insert(path, entry);
        }
        if !plan.removed.is_empty() || plan.files_chunked > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        self.collect_garbage();
        plan.pending
            .into_iter()
            .filter(|(hash, _)| !self.vectors.contains_key(hash))
            .collect()
    }

    /// Keep the vector of the chunk text whose hash is `hash`.
    pub fn insert(&mut self, hash: u64, vector: &[f32]) {
        if !self.vectors.contains_key(&hash) {
            if let Some(ivf) = self.ivf.get_mut().unwrap_or_else(|p| p.into_inner()) {
                ivf.add(hash, vector);
            }
        }
        self.vectors.insert(hash, quantize(vector));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Drop vectors no stored chunk refers to.
    fn collect_garbage(&mut self) {
        let live: HashSet<u64> = self
            .files
            .values()
            .flat_map(|entry| entry.chunks.iter().map(|c| c.hash))
            .collect();
        let before = self.vectors.len();
        self.vectors.retain(|hash, _| live.contains(hash));
        if self.vectors.len() != before {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Write the store if it changed: to a new temporary file with a
    /// random name in the same folder, synced, then renamed over the old
    /// one (and the folder synced).
    pub fn save(&self) -> Result<(), EmbedError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.write();
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    fn write(&self) -> Result<(), EmbedError> {
        let io = |source| EmbedError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let temporary = tempfile::Builder::new()
            .prefix(".vectors-")
            .suffix(".tmp")
            .tempfile_in(folder)
            .map_err(io)?;
        let mut out = std::io::BufWriter::new(temporary.as_file());
        write_store(
            &mut out,
            &self.embedder_id,
            self.dimension,
            &self.files,
            &self.vectors,
        )
        .and_then(|()| out.flush())
        .map_err(io)?;
        drop(out);
        // On disk before the rename, and the rename on disk before this
        // returns: a crash leaves the old store or the new one, never a
        // renamed file whose blocks were not written yet.
        temporary.as_file().sync_all().map_err(io)?;
        temporary
            .persist(&self.path)
            .map_err(|error| io(error.error))?;
        #[cfg(unix)]
        std::fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// The `limit` chunks most similar to `query` (a unit vector), best
    /// first, optionally only under the given relative paths.
    pub fn search(&self, query: &[f32], limit: usize, paths: &[String]) -> Vec<DenseHit> {
        if query.len() != self.dimension || limit == 0 {
            return Vec::new();
        }
        let scopes: Vec<&str> = paths
            .iter()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .collect();
        let in_scope = |path: &str| {
            scopes.is_empty()
                || scopes.iter().any(|scope| {
                    path == *scope
                        || (path.starts_with(scope)
                            && path.as_bytes().get(scope.len()) == Some(&b'/'))
                })
        };
        // Approximate: the best candidates of the probed lists, by hash,
        // then the chunks that hold them (a scan of hashes, not of vectors).
        // Unscoped, the best vectors are found first (through the inverted
        // lists above the threshold, by a scan of the vectors below it), then
        // the chunks that hold them; scoped, each chunk in scope is scored.
        let best = if !scopes.is_empty() {
            None
        } else if self.vectors.len() > self.approximate.above {
            // Until the lists are ready, by the exact scan.
            Some(
                self.approximate_best(query, limit)
                    .unwrap_or_else(|| self.exact_best(query, limit)),
            )
        } else {
            Some(self.exact_best(query, limit))
        };
        // A min-heap of the best `limit` so far would do; a sorted cut of
        // the scores is as fast at these sizes and simpler.
        let mut scored: Vec<(f32, &str, &StoredChunk)> = Vec::new();
        let mut seen = HashSet::new();
        for (path, entry) in &self.files {
            if !in_scope(path) {
                continue;
            }
            for chunk in &entry.chunks {
                let score = match &best {
                    Some(best) => match best.get(&chunk.hash) {
                        Some(&score) => score,
                        None => continue,
                    },
                    None => match self.vectors.get(&chunk.hash) {
                        Some(vector) => dot(query, vector),
                        None => continue,
                    },
                };
                if !seen.insert((path.as_str(), chunk.hash)) {
                    continue;
                }
                scored.push((score, path, chunk));
            }
        }
        let order = |a: &(f32, &str, &StoredChunk), b: &(f32, &str, &StoredChunk)| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.span.start.line.cmp(&b.2.span.start.line))
        };
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit, order);
            scored.truncate(limit);
        }
        scored.sort_by(order);
        scored
            .into_iter()
            .map(|(score, path, chunk)| DenseHit {
                path: path.to_string(),
                span: chunk.span,
                symbol: chunk.symbol.clone(),
                score,
            })
            .collect()
    }
}

impl VectorStore {
    /// The scores of the best vectors of the store (a few times `limit` of
    /// them, as several chunks can share a vector), by a scan of them all.
    fn exact_best(&self, query: &[f32], limit: usize) -> HashMap<u64, f32> {
        best_of(
            self.vectors
                .iter()
                .map(|(hash, vector)| (dot(query, vector), *hash))
                .collect(),
            limit,
        )
    }

    /// The scores of the best vectors of the lists nearest `query` (a few
    /// times `limit` of them, as several chunks can share a vector); `None`
    /// while there are no lists yet. Lists missing or stale start a build
    /// in the background: a search never waits for one.
    fn approximate_best(&self, query: &[f32], limit: usize) -> Option<HashMap<u64, f32>> {
        self.install_built_lists();
        if self.lists_stale() {
            self.start_building();
        }
        let slot = self.ivf.read().unwrap_or_else(|p| p.into_inner());
        let ivf = slot.as_ref()?;
        let scored: Vec<(f32, u64)> = ivf
            .candidates(query, self.approximate.probe)
            .filter_map(|hash| Some((dot(query, self.vectors.get(&hash)?), hash)))
            .collect();
        Some(best_of(scored, limit))
    }

    /// Whether there are no lists, or they are due to be remade: the store
    /// has doubled since, or the lists hold twice as many entries as there
    /// are vectors (those of removed chunks stay filed until then, skipped
    /// when met).
    fn lists_stale(&self) -> bool {
        self.ivf
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|ivf| {
                self.vectors.len() > 2 * ivf.built_from || ivf.filed() > 2 * self.vectors.len()
            })
    }

    /// Start building new lists on a thread of their own, from a snapshot
    /// of the vectors, unless a build is under way or another search has
    /// just installed fresh lists. Locks: `building`, then `ivf`, as
    /// installing does.
    fn start_building(&self) {
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if building.is_some() || !self.lists_stale() {
            return;
        }
        let dimension = self.dimension;
        let cancelled = Arc::new(AtomicBool::new(false));
        let (done, receiver) = mpsc::sync_channel(1);
        // The snapshot is taken only once the thread exists.
        let (give, snapshot) = mpsc::sync_channel::<HashMap<u64, Quantized>>(1);
        let stop = cancelled.clone();
        let spawned = std::thread::Builder::new()
            .name("vector-lists".to_string())
            .spawn(move || {
                let Ok(vectors) = snapshot.recv() else {
                    return;
                };
                let started = Instant::now();
                let keys = vectors.keys().copied().collect();
                let ivf = Ivf::build(dimension, keys, &|k| dequantize(&vectors[&k]), &stop);
                if let Some(ivf) = &ivf {
                    tracing::info!(
                        vectors = vectors.len(),
                        lists = ivf.list_count(),
                        ms = started.elapsed().as_millis() as u64,
                        "built the inverted lists of the vector store"
                    );
                }
                let _ = done.send(ivf);
            });
        match spawned {
            Ok(_) => {
                let _ = give.send(self.vectors.clone());
                *building = Some(Building {
                    done: receiver,
                    cancelled,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start building the vector lists; searches stay exact");
            }
        }
    }

    /// Take the lists of a finished build, filing the vectors added since
    /// its snapshot (those removed since are skipped when met).
    fn install_built_lists(&self) {
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        let Some(under_way) = building.as_ref() else {
            return;
        };
        let built = match under_way.done.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return,
            Ok(built) => built,
            Err(mpsc::TryRecvError::Disconnected) => {
                tracing::error!("building the vector lists failed; the next search tries again");
                None
            }
        };
        *building = None;
        let Some(mut ivf) = built else {
            return;
        };
        let filed = ivf.filed_keys();
        for (hash, vector) in &self.vectors {
            if !filed.contains(hash) {
                ivf.add(*hash, &dequantize(vector));
            }
        }
        *self.ivf.write().unwrap_or_else(|p| p.into_inner()) = Some(ivf);
    }

    /// Whether approximate searches use inverted lists now: a finished
    /// build is taken first. False while the first build is under way.
    pub fn lists_ready(&self) -> bool {
        self.install_built_lists();
        self.ivf.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Build the inverted lists now, on this thread, replacing any (for
    /// benchmarks, which time the build). Returns their number.
    pub fn build_lists(&self) -> usize {
        let keys = self.vectors.keys().copied().collect();
        let Some(ivf) = Ivf::build(
            self.dimension,
            keys,
            &|k| dequantize(&self.vectors[&k]),
            &AtomicBool::new(false),
        ) else {
            return 0;
        };
        let lists = ivf.list_count();
        *self.ivf.write().unwrap_or_else(|p| p.into_inner()) = Some(ivf);
        lists
    }
}

/// The best-scored few times `limit` of `scored`, by hash.
fn best_of(mut scored: Vec<(f32, u64)>, limit: usize) -> HashMap<u64, f32> {
    let keep = limit.saturating_mul(4).max(64);
    if scored.len() > keep {
        scored.select_nth_unstable_by(keep, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(keep);
    }
    scored
        .into_iter()
        .map(|(score, hash)| (hash, score))
        .collect()
}

/// What is embedded for a chunk: its path (a strong hint of what it is
/// about) and its text, cut to a length every embedder reads.
pub fn chunk_text(path: &str, body: &str) -> String {
    let mut cut = body.len().min(MAX_CHUNK_CHARS);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{path}\n{}", &body[..cut])
}

fn quantize(vector: &[f32]) -> Quantized {
    let max = vector.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    Quantized {
        scale,
        values: vector
            .iter()
            .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
    }
}

fn dequantize(vector: &Quantized) -> Vec<f32> {
    vector
        .values
        .iter()
        .map(|&v| f32::from(v) * vector.scale)
        .collect()
}

fn dot(query: &[f32], vector: &Quantized) -> f32 {
    crate::simd::dot_i8(query, &vector.values) * vector.scale
}

type Loaded = (BTreeMap<String, FileEntry>, HashMap<u64, Quantized>);

fn write_store(
    out: &mut impl Write,
    id: &str,
    dimension: usize,
    files: &BTreeMap<String, FileEntry>,
    vectors: &HashMap<u64, Quantized>,
) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    write_bytes(out, id.as_bytes())?;
    out.write_all(&(dimension as u32).to_le_bytes())?;
    out.write_all(&(files.len() as u32).to_le_bytes())?;
    for (path, entry) in files {
        write_bytes(out, path.as_bytes())?;
        out.write_all(&entry.file_hash.to_le_bytes())?;
        out.write_all(&(entry.chunks.len() as u32).to_le_bytes())?;
        for chunk in &entry.chunks {
            out.write_all(&chunk.hash.to_le_bytes())?;
            for value in [
                chunk.span.start.line,
                chunk.span.start.col,
                chunk.span.start.col_utf16,
                chunk.span.end.line,
                chunk.span.end.col,
                chunk.span.end.col_utf16,
            ] {
                out.write_all(&value.to_le_bytes())?;
            }
            write_bytes(out, chunk.symbol.as_deref().unwrap_or("").as_bytes())?;
        }
    }
    out.write_all(&(vectors.len() as u32).to_le_bytes())?;
    for (hash, vector) in vectors {
        out.write_all(&hash.to_le_bytes())?;
        out.write_all(&vector.scale.to_le_bytes())?;
        let bytes: Vec<u8> = vector.values.iter().map(|&v| v as u8).collect();
        out.write_all(&bytes)?;
    }
    Ok(())
}

/// The largest vector width a store may claim.
const MAX_DIMENSION: usize = 65_536;

/// Read a store written for `embedder_id` and `dimension`. A store of
/// another model is `Ok(Err(its id))`, found from its header alone; any
/// count or size the file claims is checked before memory is given to it.
fn read_store(
    mut input: impl Read,
    embedder_id: &str,
    dimension: usize,
) -> std::io::Result<Result<Loaded, String>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a vector store of this version"));
    }
    let id = String::from_utf8(read_bytes(&mut input)?).map_err(|_| invalid("bad model id"))?;
    let stored_dimension = read_u32(&mut input)? as usize;
    if id != embedder_id || stored_dimension != dimension {
        return Ok(Err(id));
    }
    if dimension == 0 || dimension > MAX_DIMENSION {
        return Err(invalid("a vector width of 0 or above 65536"));
    }
    let file_count = read_u32(&mut input)?;
    let mut files = BTreeMap::new();
    for _ in 0..file_count {
        let path = String::from_utf8(read_bytes(&mut input)?).map_err(|_| invalid("bad path"))?;
        let file_hash = read_u64(&mut input)?;
        let chunk_count = read_u32(&mut input)?;
        let mut chunks = Vec::new();
        for _ in 0..chunk_count {
            let hash = read_u64(&mut input)?;
            let mut v = [0u32; 6];
            for slot in &mut v {
                *slot = read_u32(&mut input)?;
            }
            let symbol =
                String::from_utf8(read_bytes(&mut input)?).map_err(|_| invalid("bad symbol"))?;
            if v[3] < v[0] || (v[3] == v[0] && v[4] < v[1]) {
                return Err(invalid("a chunk that ends before it starts"));
            }
            let mut span = Span::default();
            span.start.line = v[0];
            span.start.col = v[1];
            span.start.col_utf16 = v[2];
            span.end.line = v[3];
            span.end.col = v[4];
            span.end.col_utf16 = v[5];
            chunks.push(StoredChunk {
                hash,
                span,
                symbol: (!symbol.is_empty()).then_some(symbol),
            });
        }
        files.insert(path, FileEntry { file_hash, chunks });
    }
    let vector_count = read_u32(&mut input)?;
    // Grown as vectors are read: the count is the file's word, not a fact.
    let mut vectors = HashMap::new();
    let mut buffer = vec![0u8; dimension];
    for _ in 0..vector_count {
        let hash = read_u64(&mut input)?;
        let mut scale = [0u8; 4];
        input.read_exact(&mut scale)?;
        input.read_exact(&mut buffer)?;
        let scale = f32::from_le_bytes(scale);
        if !scale.is_finite() {
            return Err(invalid("a vector with a scale that is not a number"));
        }
        vectors.insert(
            hash,
            Quantized {
                scale,
                values: buffer.iter().map(|&b| b as i8).collect(),
            },
        );
    }
    Ok(Ok((files, vectors)))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(bytes)
}

fn read_bytes(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let length = read_u32(input)? as usize;
    if length > 1 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a string longer than 1 MiB",
        ));
    }
    let mut bytes = vec![0u8; length];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_u32(input: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_u64(input: &mut impl Read) -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_dot_products_stay_close_to_the_exact_ones() {
        let a = crate::normalized((0..384).map(|i| ((i * 7 % 13) as f32) - 6.0).collect());
        let b = crate::normalized((0..384).map(|i| ((i * 5 % 11) as f32) - 5.0).collect());
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let approximate = dot(&a, &quantize(&b));
        assert!(
            (exact - approximate).abs() < 0.01,
            "{exact} vs {approximate}"
        );
    }

    /// Unit vectors from a fixed generator.
    fn random_unit(seed: u64, dimension: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        crate::normalized(
            (0..dimension)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect(),
        )
    }

    #[test]
    fn lists_are_built_in_the_background_and_file_what_came_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = VectorStore::open(dir.path(), "test:16", 16);
        for hash in 0..2000 {
            store.insert(hash, &random_unit(hash, 16));
        }
        store.set_approximate(Approximate {
            above: 10,
            probe: 1,
        });
        let query = random_unit(7, 16);
        // The first search starts the build and does not wait for it.
        assert!(store.approximate_best(&query, 5).is_none());
        assert!(store
            .building
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|b| !b.cancelled.load(Ordering::Relaxed)));
        // Vectors that come while it runs are not in its snapshot.
        for hash in 2000..2010 {
            store.insert(hash, &random_unit(hash, 16));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !store.lists_ready() {
            assert!(Instant::now() < deadline, "the lists were never built");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.building.lock().unwrap().is_none());
        let filed = store.ivf.read().unwrap().as_ref().unwrap().filed_keys();
        assert_eq!(filed.len(), 2010, "every vector is in a list");
        for hash in 2000..2010 {
            let best = store
                .approximate_best(&random_unit(hash, 16), 1)
                .expect("lists");
            let score = best.get(&hash).copied();
            assert!(
                score.is_some_and(|s| (s - 1.0).abs() < 0.02),
                "{hash}: {score:?}"
            );
        }
        // Fresh lists start no new build.
        assert!(store.building.lock().unwrap().is_none());
    }

    #[test]
    fn a_build_cancelled_midway_gives_nothing_and_stops() {
        let vectors: HashMap<u64, Vec<f32>> = (0..500).map(|h| (h, random_unit(h, 16))).collect();
        let keys = vectors.keys().copied().collect();
        let cancelled = AtomicBool::new(false);
        let reads = std::sync::atomic::AtomicUsize::new(0);
        // Cancelled while the sample is read, before the first round.
        let built = Ivf::build(
            16,
            keys,
            &|k| {
                if reads.fetch_add(1, Ordering::Relaxed) == 10 {
                    cancelled.store(true, Ordering::Relaxed);
                }
                vectors[&k].clone()
            },
            &cancelled,
        );
        assert!(built.is_none());
        // It stopped there: no vector was read again to file it.
        assert_eq!(reads.load(Ordering::Relaxed), 500);
    }

    #[test]
    fn a_dropped_store_cancels_its_build() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = VectorStore::open(dir.path(), "test:16", 16);
        for hash in 0..500 {
            store.insert(hash, &random_unit(hash, 16));
        }
        store.set_approximate(Approximate {
            above: 10,
            probe: 1,
        });
        assert!(store.approximate_best(&random_unit(1, 16), 5).is_none());
        let cancelled = store
            .building
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .cancelled
            .clone();
        drop(store);
        assert!(cancelled.load(Ordering::Relaxed));
    }
}
