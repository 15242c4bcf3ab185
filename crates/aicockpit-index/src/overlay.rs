//! Recent edits, searchable at once: a small in-memory tantivy index that
//! holds the files changed since the last commit of the index on disk.
//!
//! Committing the index on disk writes a new segment and its files, which on
//! a real file system costs more than a keystroke can wait for. So an edit
//! ([`crate::ProjectIndex::update_file`], `remove_file`, `reindex_path`) goes
//! to the overlay only: [`crate::ProjectIndex::commit`] commits the overlay
//! (memory only) and search reads both, dropping the disk index's docs of the
//! paths the overlay holds. The disk index gets the pending files in one
//! batch ([`persist`]), written by a background thread of the index once the
//! oldest edit is a few seconds old or many files are pending, and at the
//! end of a refresh and when the index is dropped. Only the last version of a file edited many times
//! is ever written to disk. A crash loses only the batch, and the disk
//! index is a cache: the next refresh re-reads files whose timestamp moved.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, SingleSegmentIndexWriter,
    TantivyDocument, Term,
};

use crate::schema::{self, Fields};
use crate::FileRecord;

/// The disk index gets the pending files once the oldest is this old…
pub(crate) const PERSIST_AFTER: Duration = Duration::from_secs(5);
/// …or once this many files are pending (each commit re-indexes them all).
pub(crate) const PERSIST_FILES: usize = 16;
/// The overlay's segment writer budget: it sizes the term hash table built
/// on every commit (the segment grows past it if it must), and the overlay
/// holds a few files.
const OVERLAY_MEMORY_BYTES: usize = 2_000_000;

/// A file's docs waiting for the disk index, or `None` for a removal.
type Docs = Option<Arc<Staged>>;

/// One edited file: its symbol and chunk docs, which the overlay indexes,
/// and its record, which only the disk index gets (as the file doc, written
/// by [`persist`]: the overlay's segment is rebuilt on every commit and
/// nothing searches it for records).
pub(crate) struct Staged {
    pub docs: Vec<TantivyDocument>,
    pub record: Arc<FileRecord>,
}

pub(crate) struct Overlay {
    state: RwLock<State>,
    /// The persister thread waits on `wake` holding `stopped`.
    stopped: Mutex<bool>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// What to write to the disk index for each path. A refresh that
    /// re-reads a path from disk takes it out.
    pending: HashMap<String, Docs>,
    /// What a persist under way is writing to the disk index: still served
    /// from the overlay (and rebuilt into it by commits) until it is there.
    in_flight: HashMap<String, Docs>,
    /// Bumped by every stage; the searcher below was built at `built`.
    generation: u64,
    built: u64,
    /// Paths whose docs in the disk index are stale (changed or removed
    /// since its last commit) as of the last overlay commit: search drops
    /// the disk index's hits on them.
    stale: HashSet<String>,
    searcher: Option<Searcher>,
    since: Option<Instant>,
}

/// A consistent view for one search: the overlay's searcher and the paths it shadows.
pub(crate) struct OverlayView {
    pub searcher: Searcher,
    pub stale: HashSet<String>,
}

impl Overlay {
    pub fn new() -> Overlay {
        Overlay {
            state: RwLock::new(State::default()),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace a path's docs (`None`: remove the path). Searchable after [`Self::commit`].
    pub fn stage(&self, rel: &str, docs: Option<Staged>) {
        let mut state = self.state();
        state.pending.insert(rel.to_string(), docs.map(Arc::new));
        state.generation += 1;
        let first = state.since.is_none();
        state.since.get_or_insert_with(Instant::now);
        let many = state.pending.len() >= PERSIST_FILES;
        drop(state);
        if first || many {
            // Taking the lock orders this after the persister's look at the state.
            let _stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    /// How long until the pending files are due for the disk, if any are pending.
    fn until_due(&self) -> Option<Duration> {
        let state = self.read_state();
        if state.pending.len() >= PERSIST_FILES {
            return Some(Duration::ZERO);
        }
        state
            .since
            .map(|since| PERSIST_AFTER.saturating_sub(since.elapsed()))
    }

    /// A refresh wrote this path to the disk index itself: nothing to persist
    /// for it (the overlay still shadows it until the refresh's commit).
    pub fn discard(&self, rel: &str) {
        let mut state = self.state();
        if state.pending.remove(rel).is_some() {
            state.generation += 1;
        }
    }

    /// Whether an edit of this path waits to be written to the disk index.
    pub fn has_pending(&self, rel: &str) -> bool {
        self.read_state().pending.contains_key(rel)
    }

    pub fn is_empty(&self) -> bool {
        let state = self.read_state();
        state.pending.is_empty() && state.stale.is_empty()
    }

    /// Make staged changes searchable: build one in-memory segment of every
    /// pending file's docs on this thread.
    pub fn commit(&self) -> tantivy::Result<()> {
        let (generation, files) = {
            let state = self.read_state();
            if state.generation == state.built {
                return Ok(());
            }
            let files: Vec<(String, Docs)> = state
                .in_flight
                .iter()
                .filter(|(rel, _)| !state.pending.contains_key(*rel))
                .chain(state.pending.iter())
                .map(|(rel, docs)| (rel.clone(), docs.clone()))
                .collect();
            (state.generation, files)
        };
        let index = Index::create_in_ram(schema::schema().0);
        crate::project::register_tokenizer(&index);
        let mut writer = SingleSegmentIndexWriter::new(index, OVERLAY_MEMORY_BYTES)?;
        for staged in files.iter().filter_map(|(_, docs)| docs.as_ref()) {
            for doc in &staged.docs {
                writer.add_document(doc.clone())?;
            }
        }
        let index = writer.finalize()?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let mut state = self.state();
        // A concurrent commit may have built a newer view already.
        if generation > state.built {
            state.built = generation;
            state.searcher = Some(reader.searcher());
            state.stale.extend(files.into_iter().map(|(rel, _)| rel));
        }
        Ok(())
    }

    /// The files to write to the disk index, taken out of the overlay (which
    /// keeps serving them until [`Self::persisted`]).
    fn take_pending(&self) -> HashMap<String, Docs> {
        let mut state = self.state();
        state.since = None;
        let taken = std::mem::take(&mut state.pending);
        state.in_flight = taken.clone();
        taken
    }

    /// The disk index now holds what [`Self::take_pending`] took: stop
    /// shadowing it. Returns whether edits were staged meanwhile (edits do
    /// not wait for a persist): then the overlay must be rebuilt from them
    /// alone, as its segment may still hold the persisted files.
    fn persisted(&self) -> bool {
        let mut state = self.state();
        state.in_flight.clear();
        if state.pending.is_empty() {
            state.stale.clear();
            state.searcher = None;
            state.built = state.generation;
            return false;
        }
        let State { pending, stale, .. } = &mut *state;
        stale.retain(|rel| pending.contains_key(rel));
        // Not built: the next commit rebuilds.
        state.built = 0;
        state.generation += 1;
        true
    }

    /// The overlay's searcher and the paths it shadows, or `None` when it is empty.
    pub fn view(&self) -> Option<OverlayView> {
        let state = self.read_state();
        if state.stale.is_empty() {
            return None;
        }
        Some(OverlayView {
            searcher: state.searcher.clone()?,
            stale: state.stale.clone(),
        })
    }
}

/// The disk index's side of a persist.
#[derive(Clone)]
pub(crate) struct Disk {
    pub writer: Arc<RwLock<IndexWriter>>,
    pub reader: IndexReader,
    pub fields: Fields,
}

/// Write every pending edit to the disk index, commit it, reload its reader
/// and empty the overlay.
pub(crate) fn persist(disk: &Disk, overlay: &Overlay) -> tantivy::Result<()> {
    let mut writer = disk.writer.write().unwrap_or_else(|p| p.into_inner());
    for (rel, docs) in overlay.take_pending() {
        writer.delete_term(Term::from_field_text(disk.fields.path, &rel));
        if let Some(staged) = docs {
            let file_doc = schema::file_doc(&disk.fields, &rel, &staged.record)
                .map_err(|error| tantivy::TantivyError::InternalError(error.to_string()))?;
            let docs = match Arc::try_unwrap(staged) {
                Ok(staged) => staged.docs,
                Err(shared) => shared.docs.clone(),
            };
            for doc in docs {
                writer.add_document(doc)?;
            }
            writer.add_document(file_doc)?;
        }
    }
    writer.commit()?;
    disk.reader.reload()?;
    let staged_meanwhile = overlay.persisted();
    drop(writer);
    if staged_meanwhile {
        overlay.commit()?;
    }
    Ok(())
}

/// The background thread that persists pending edits when they are due.
pub(crate) struct Persister {
    overlay: Arc<Overlay>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    pub fn start(disk: Disk, overlay: Arc<Overlay>) -> std::io::Result<Persister> {
        let watched = Arc::clone(&overlay);
        let thread = std::thread::Builder::new()
            .name("aicockpit-index-persist".into())
            .spawn(move || run_persister(&disk, &watched))?;
        Ok(Persister {
            overlay,
            thread: Some(thread),
        })
    }

    /// Stop the thread and wait for it (a persist under way finishes first).
    pub fn stop(&mut self) {
        *self
            .overlay
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.overlay.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_persister(disk: &Disk, overlay: &Overlay) {
    let mut stopped = overlay.stopped.lock().unwrap_or_else(|p| p.into_inner());
    while !*stopped {
        match overlay.until_due() {
            Some(wait) if wait.is_zero() => {
                drop(stopped);
                if let Err(error) = persist(disk, overlay) {
                    tracing::warn!(%error, "could not write recent edits to the index");
                }
                stopped = overlay.stopped.lock().unwrap_or_else(|p| p.into_inner());
            }
            Some(wait) => {
                stopped = overlay
                    .wake
                    .wait_timeout(stopped, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            None => {
                stopped = overlay
                    .wake
                    .wait(stopped)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicockpit_syntax::LanguageId;
    use tantivy::collector::Count;
    use tantivy::query::TermQuery;
    use tantivy::schema::IndexRecordOption;

    fn staged(fields: &Fields, rel: &str) -> Option<Staged> {
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.path, rel);
        Some(Staged {
            docs: vec![doc],
            record: Arc::new(FileRecord::of_symbols(LanguageId::Rust, Vec::new())),
        })
    }

    /// Whether the overlay serves `rel`: shadows the disk's docs and holds its own.
    fn serves(overlay: &Overlay, fields: &Fields, rel: &str) -> bool {
        let Some(view) = overlay.view() else {
            return false;
        };
        let query = TermQuery::new(
            Term::from_field_text(fields.path, rel),
            IndexRecordOption::Basic,
        );
        view.stale.contains(rel) && view.searcher.search(&query, &Count).unwrap() == 1
    }

    #[test]
    fn edits_staged_during_a_persist_stay_searchable_and_pending() {
        let (_, fields) = schema::schema();
        let overlay = Overlay::new();
        overlay.stage("a.rs", staged(&fields, "a.rs"));
        overlay.commit().unwrap();
        // A persist starts writing a.rs to the disk index…
        let taken = overlay.take_pending();
        assert!(taken.contains_key("a.rs"));
        // …and an edit arrives meanwhile (edits do not wait for it).
        overlay.stage("b.rs", staged(&fields, "b.rs"));
        overlay.commit().unwrap();
        assert!(
            serves(&overlay, &fields, "a.rs"),
            "a file being persisted is still served"
        );
        assert!(serves(&overlay, &fields, "b.rs"));
        assert!(overlay.persisted(), "b.rs was staged meanwhile");
        overlay.commit().unwrap();
        assert!(serves(&overlay, &fields, "b.rs"));
        assert!(
            !serves(&overlay, &fields, "a.rs"),
            "the disk index serves a.rs now"
        );
        assert!(overlay.has_pending("b.rs"));
        assert!(!overlay.has_pending("a.rs"));
        // With nothing staged meanwhile, a persist empties the overlay.
        overlay.take_pending();
        assert!(!overlay.persisted());
        assert!(overlay.view().is_none());
        assert!(overlay.is_empty());
    }
}
