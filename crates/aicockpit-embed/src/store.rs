//! The vector store: one int8 vector per chunk of the project index, kept in
//! `vectors.bin` beside the tantivy index and keyed by the chunk's content
//! hash, so it follows the index incrementally: a changed file re-embeds only
//! the chunks whose text changed, a deleted file's vectors go, and a restart
//! recomputes nothing. Embedding saves as it goes, so a cancelled or failed
//! run resumes where it stopped.
//!
//! Search is exact (a scan of every vector, int8 times the f32 query), which
//! takes tens of milliseconds for a few hundred thousand chunks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aicockpit_index::ProjectIndex;
use aicockpit_syntax::{analyze, Span};

use crate::{EmbedError, Embedder};

/// The store's file inside the index folder.
pub const FILE_NAME: &str = "vectors.bin";
const MAGIC: &[u8; 8] = b"ACVEC01\n";
/// Chunks sent to the embedder at once (and between cancellation checks).
const BATCH: usize = 64;
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
    dirty: bool,
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
            dirty: false,
        };
        match std::fs::File::open(&path) {
            Ok(file) => match read_store(std::io::BufReader::new(file)) {
                Ok((id, dim, files, vectors)) if id == embedder_id && dim == dimension => {
                    store.files = files;
                    store.vectors = vectors;
                }
                Ok((id, ..)) => {
                    tracing::info!(path = %path.display(), old = %id, new = %embedder_id, "the embedding model changed; vectors are recomputed");
                    store.dirty = true;
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable vector store; vectors are recomputed");
                    store.dirty = true;
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot open the vector store; vectors are recomputed");
            }
        }
        store
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
    pub fn sync(
        &mut self,
        index: &ProjectIndex,
        embedder: &dyn Embedder,
        progress: &dyn Fn(EmbedProgress),
        cancel: &AtomicBool,
    ) -> Result<SyncStats, EmbedError> {
        let mut stats = SyncStats::default();
        let listed = index.files();
        let present: HashSet<&str> = listed.iter().map(|(path, _)| path.as_str()).collect();
        let before = self.files.len();
        self.files.retain(|path, _| present.contains(path.as_str()));
        stats.files_removed = before - self.files.len();
        // Texts of chunks that need a vector, by hash.
        let mut pending: Vec<(u64, String)> = Vec::new();
        let mut queued: HashSet<u64> = HashSet::new();
        for (path, record) in &listed {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let known = self
                .files
                .get(path)
                .is_some_and(|entry| entry.file_hash == record.hash);
            let text = if known {
                // Only needed for chunks still without a vector (a resumed run).
                if self.files[path]
                    .chunks
                    .iter()
                    .all(|c| self.vectors.contains_key(&c.hash))
                {
                    continue;
                }
                match index.read(path) {
                    Ok(text) => text,
                    Err(_) => continue,
                }
            } else {
                let Ok(text) = index.read(path) else {
                    self.files.remove(path);
                    continue;
                };
                text
            };
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
                    .map(|s| s.name.clone());
                if !self.vectors.contains_key(&hash) && queued.insert(hash) {
                    pending.push((hash, embedded));
                }
                chunks.push(StoredChunk {
                    hash,
                    span: chunk.span,
                    symbol,
                });
            }
            if !known {
                stats.files_chunked += 1;
            }
            self.files.insert(
                path.clone(),
                FileEntry {
                    file_hash: record.hash,
                    chunks,
                },
            );
            self.dirty = true;
        }
        self.collect_garbage();
        let total = pending.len();
        progress(EmbedProgress { done: 0, total });
        let mut last_save = Instant::now();
        let mut outcome = Ok(());
        for (done, batch) in pending.chunks(BATCH).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                outcome = Err(EmbedError::Cancelled);
                break;
            }
            let texts: Vec<&str> = batch.iter().map(|(_, text)| text.as_str()).collect();
            let vectors = match embedder.embed(&texts) {
                Ok(vectors) => vectors,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            };
            if vectors.len() != batch.len() {
                outcome = Err(EmbedError::Count {
                    service: embedder.id().to_string(),
                    expected: batch.len(),
                    got: vectors.len(),
                });
                break;
            }
            for ((hash, _), vector) in batch.iter().zip(vectors) {
                self.vectors.insert(*hash, quantize(&vector));
            }
            stats.embedded += batch.len();
            self.dirty = true;
            progress(EmbedProgress {
                done: (done * BATCH + batch.len()).min(total),
                total,
            });
            if last_save.elapsed() >= SAVE_EVERY {
                self.save()?;
                last_save = Instant::now();
            }
        }
        self.save()?;
        let (chunks, embedded) = self.counts();
        stats.chunks = embedded;
        stats.pending = chunks - embedded;
        outcome.map(|()| stats)
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
            self.dirty = true;
        }
    }

    /// Write the store if it changed (to a temporary file, then renamed).
    pub fn save(&mut self) -> Result<(), EmbedError> {
        if !self.dirty {
            return Ok(());
        }
        let io = |source| EmbedError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let temporary = self.path.with_extension("bin.tmp");
        let file = std::fs::File::create(&temporary).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
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
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        self.dirty = false;
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
        // A min-heap of the best `limit` so far would do; a sorted cut of
        // the scores is as fast at these sizes and simpler.
        let mut scored: Vec<(f32, &str, &StoredChunk)> = Vec::new();
        let mut seen = HashSet::new();
        for (path, entry) in &self.files {
            if !in_scope(path) {
                continue;
            }
            for chunk in &entry.chunks {
                let Some(vector) = self.vectors.get(&chunk.hash) else {
                    continue;
                };
                if !seen.insert((path.as_str(), chunk.hash)) {
                    continue;
                }
                scored.push((dot(query, vector), path, chunk));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored.truncate(limit);
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

fn dot(query: &[f32], vector: &Quantized) -> f32 {
    let sum: f32 = query
        .iter()
        .zip(&vector.values)
        .map(|(q, &v)| q * f32::from(v))
        .sum();
    sum * vector.scale
}

type Loaded = (
    String,
    usize,
    BTreeMap<String, FileEntry>,
    HashMap<u64, Quantized>,
);

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

fn read_store(mut input: impl Read) -> std::io::Result<Loaded> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a vector store of this version"));
    }
    let id = String::from_utf8(read_bytes(&mut input)?).map_err(|_| invalid("bad model id"))?;
    let dimension = read_u32(&mut input)? as usize;
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
    let mut vectors = HashMap::with_capacity(vector_count as usize);
    let mut buffer = vec![0u8; dimension];
    for _ in 0..vector_count {
        let hash = read_u64(&mut input)?;
        let mut scale = [0u8; 4];
        input.read_exact(&mut scale)?;
        input.read_exact(&mut buffer)?;
        vectors.insert(
            hash,
            Quantized {
                scale: f32::from_le_bytes(scale),
                values: buffer.iter().map(|&b| b as i8).collect(),
            },
        );
    }
    Ok((id, dimension, files, vectors))
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
}
