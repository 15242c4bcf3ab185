//! Recent edits, searchable at once: the files changed since the last
//! commit of the index on disk, searched in memory beside it.
//!
//! Committing the index on disk writes a new segment and its files, which on
//! a real file system costs more than a keystroke can wait for. So an edit
//! ([`crate::ProjectIndex::update_file`], `remove_file`, `reindex_path`) goes
//! to the overlay only: [`crate::ProjectIndex::commit`] makes the overlay's
//! current files the ones searched (a snapshot, nothing is built) and search
//! reads them beside the disk index, dropping the disk index's docs of the
//! paths the overlay holds. The disk index gets the pending files in one
//! batch ([`persist`]), written by a background thread of the index once the
//! oldest edit is a few seconds old or many files are pending, and at the
//! end of a refresh and when the index is dropped. Only the last version of
//! a file edited many times is ever written to disk. A crash loses only the
//! batch, and the disk index is a cache: the next refresh re-reads files
//! whose timestamp moved.
//!
//! The overlay is not a tantivy segment: building one (its term dictionary
//! above all) cost 15 ms for a file of 1,500 constants, on every commit.
//! Each edited file's docs are tokenised once, when the edit is staged, into
//! a small inverted map ([`FileTerms`]), and [`OverlayView::search`] scores
//! them with tantivy's own BM25 over the statistics of the disk index and
//! the overlay together ([`Combined`]), which the disk index's search uses
//! too: a hit scores the same (to float rounding) before and after its
//! file reaches the disk.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tantivy::query::{Bm25StatisticsProvider, Bm25Weight};
use tantivy::schema::{Field, Value};
use tantivy::tokenizer::{TokenStream, Tokenizer, MAX_TOKEN_LEN};
use tantivy::{IndexReader, IndexWriter, Searcher, TantivyDocument, Term};

use crate::schema::{self, Fields};
use crate::tokenizer::CodeTokenizer;
use crate::FileRecord;

/// The disk index gets the pending files once the oldest is this old…
pub(crate) const PERSIST_AFTER: Duration = Duration::from_secs(5);
/// …or once this many files are pending (each commit re-indexes them all).
pub(crate) const PERSIST_FILES: usize = 16;

/// A file's docs waiting for the disk index, or `None` for a removal.
type Docs = Option<Arc<Staged>>;

/// One edited file: its symbol and chunk docs, which the overlay searches
/// (through `terms`), and its record, which only the disk index gets (as
/// the file doc, written by [`persist`]).
pub(crate) struct Staged {
    pub docs: Vec<TantivyDocument>,
    pub record: Arc<FileRecord>,
    terms: FileTerms,
}

impl Staged {
    /// Tokenise the docs for the overlay (on the calling thread, before the
    /// edit is staged).
    pub fn new(fields: &Fields, docs: Vec<TantivyDocument>, record: Arc<FileRecord>) -> Staged {
        let terms = FileTerms::new(fields, &docs);
        Staged {
            docs,
            record,
            terms,
        }
    }
}

/// The fields the overlay indexes: the scored text fields, as the code
/// tokenizer splits them, then `name_exact` whole (definition lookups).
fn indexed_fields(fields: &Fields) -> [Field; 6] {
    [
        fields.name,
        fields.chunk_name,
        fields.signature,
        fields.doc,
        fields.content,
        fields.name_exact,
    ]
}
/// Where `name_exact` is in [`indexed_fields`]; the fields before it are tokenised.
const EXACT_SLOT: usize = 5;
const SLOTS: usize = 6;

/// One field's terms: term → (doc, term frequency), docs ascending. A fast
/// hash with a per-process random seed: the text is the user's (or a
/// container's), so a fixed seed would let it choose colliding terms.
type Postings = foldhash::HashMap<Box<str>, Vec<(u32, u32)>>;

/// One file's docs as an inverted map, per field: term → (doc, term
/// frequency), docs ascending; and each doc's token count per field (what
/// tantivy keeps as the field norm).
struct FileTerms {
    fields: [Field; SLOTS],
    postings: [Postings; SLOTS],
    /// `norms[doc * SLOTS + slot]`.
    norms: Vec<u32>,
    /// Tokens per field over all the docs.
    totals: [u64; SLOTS],
}

impl FileTerms {
    fn new(fields: &Fields, docs: &[TantivyDocument]) -> FileTerms {
        let fields = indexed_fields(fields);
        let mut terms = FileTerms {
            fields,
            postings: Default::default(),
            norms: vec![0; docs.len() * SLOTS],
            totals: [0; SLOTS],
        };
        let mut tokenizer = CodeTokenizer::default();
        for (n, doc) in docs.iter().enumerate() {
            let n = n as u32;
            for (field, value) in doc.field_values() {
                let Some(slot) = fields.iter().position(|f| *f == field) else {
                    continue;
                };
                let Some(text) = value.as_str() else {
                    continue;
                };
                let postings = &mut terms.postings[slot];
                let mut count = 0u32;
                let mut add = |token: &str| {
                    // tantivy drops tokens this long too.
                    if token.len() > MAX_TOKEN_LEN {
                        return;
                    }
                    count += 1;
                    match postings.get_mut(token) {
                        Some(list) => match list.last_mut() {
                            Some((doc, freq)) if *doc == n => *freq += 1,
                            _ => list.push((n, 1)),
                        },
                        None => {
                            postings.insert(token.into(), vec![(n, 1)]);
                        }
                    }
                };
                if slot == EXACT_SLOT {
                    add(text);
                } else {
                    let mut stream = tokenizer.token_stream(text);
                    while stream.advance() {
                        add(&stream.token().text);
                    }
                }
                terms.norms[n as usize * SLOTS + slot] += count;
                terms.totals[slot] += u64::from(count);
            }
        }
        terms
    }

    fn slot(&self, field: Field) -> Option<usize> {
        self.fields.iter().position(|f| *f == field)
    }

    /// The docs holding a term, with its frequency in each.
    fn postings(&self, field: Field, text: &str) -> &[(u32, u32)] {
        self.slot(field)
            .and_then(|slot| self.postings[slot].get(text))
            .map_or(&[], Vec::as_slice)
    }
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
    /// from the overlay (and taken into its view by commits) until it is there.
    in_flight: HashMap<String, Docs>,
    /// Paths a refresh is writing to the disk index itself: nothing to
    /// persist, but still served (their disk docs are stale) until the
    /// refresh's commit, which is a persist.
    discarded: HashMap<String, Docs>,
    /// Bumped by every stage; the view below was taken at `built`.
    generation: u64,
    built: u64,
    /// Paths whose docs in the disk index are stale (changed or removed
    /// since its last commit) as of the last overlay commit: search drops
    /// the disk index's hits on them.
    stale: HashSet<String>,
    /// The files searched, as of the last commit, in path order.
    files: Arc<Vec<Arc<Staged>>>,
    since: Option<Instant>,
}

impl State {
    /// Make the pending, in-flight and discarded files (the newest version
    /// of each path) the ones searched, in path order, and shadow their
    /// paths in the disk index.
    fn rebuild(&mut self) {
        let State {
            pending,
            in_flight,
            discarded,
            stale,
            ..
        } = self;
        let mut newest: Vec<(&String, &Docs)> =
            pending
                .iter()
                .chain(
                    in_flight
                        .iter()
                        .filter(|(rel, _)| !pending.contains_key(*rel)),
                )
                .chain(discarded.iter().filter(|(rel, _)| {
                    !pending.contains_key(*rel) && !in_flight.contains_key(*rel)
                }))
                .collect();
        newest.sort_by(|a, b| a.0.cmp(b.0));
        stale.extend(newest.iter().map(|(rel, _)| (*rel).clone()));
        let files: Vec<Arc<Staged>> = newest
            .into_iter()
            .filter_map(|(_, docs)| docs.clone())
            .collect();
        self.files = Arc::new(files);
        self.built = self.generation;
    }
}

/// A consistent view for one search: the overlay's files and the paths it
/// shadows in the disk index.
pub(crate) struct OverlayView {
    files: Arc<Vec<Arc<Staged>>>,
    pub stale: HashSet<String>,
}

impl OverlayView {
    /// Docs holding any of `tokens` in the weighted fields, scored as the
    /// sum over the matching (field, token) pairs of tantivy's BM25 times the
    /// field's weight, with `stats`; only docs `keep` accepts, best first
    /// (ties in path and doc order, as tantivy breaks them by address), at
    /// most `limit`; each with the record its ordinals refer to.
    pub fn search(
        &self,
        clauses: &[(Field, f32)],
        tokens: &[String],
        stats: &dyn Bm25StatisticsProvider,
        keep: &dyn Fn(&TantivyDocument) -> bool,
        limit: usize,
    ) -> tantivy::Result<Vec<(f32, TantivyDocument, Arc<FileRecord>)>> {
        let mut weights = Vec::new();
        for &(field, boost) in clauses {
            for token in tokens {
                let term = Term::from_field_text(field, token);
                let weight = Bm25Weight::for_terms(stats, &[term])?.boost_by(boost);
                weights.push((field, token.as_str(), weight));
            }
        }
        let mut scored: Vec<(f32, &Arc<Staged>, u32)> = Vec::new();
        let mut scores: Vec<Option<f32>> = Vec::new();
        for file in self.files.iter() {
            let terms = &file.terms;
            scores.clear();
            scores.resize(file.docs.len(), None);
            for (field, token, weight) in &weights {
                let Some(slot) = terms.slot(*field) else {
                    continue;
                };
                for &(doc, freq) in terms.postings(*field, token) {
                    let norm = terms.norms[doc as usize * SLOTS + slot];
                    let id = tantivy::fieldnorm::FieldNormReader::fieldnorm_to_id(norm);
                    *scores[doc as usize].get_or_insert(0.0) += weight.score(id, freq);
                }
            }
            for (doc, score) in scores.iter().enumerate() {
                if let Some(score) = *score {
                    if keep(&file.docs[doc]) {
                        scored.push((score, file, doc as u32));
                    }
                }
            }
        }
        // Stable: equal scores keep path and doc order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(limit);
        Ok(scored
            .into_iter()
            .map(|(score, file, doc)| {
                (
                    score,
                    file.docs[doc as usize].clone(),
                    Arc::clone(&file.record),
                )
            })
            .collect())
    }

    /// Docs holding `text` as a term of `field` (whole, for `name_exact`;
    /// one token, lower-cased, for the tokenised fields), at most `limit`.
    pub fn docs_with(&self, field: Field, text: &str, limit: usize) -> Vec<&TantivyDocument> {
        self.files
            .iter()
            .flat_map(|file| {
                file.terms
                    .postings(field, text)
                    .iter()
                    .map(|&(doc, _)| &file.docs[doc as usize])
            })
            .take(limit)
            .collect()
    }
}

/// BM25 statistics of the disk index and the overlay together, as if the
/// overlay's docs were one more segment of the disk index. Each figure is
/// looked up once per search (the overlay's scoring and the disk index's
/// query ask for the same terms; each lookup reads every segment's term
/// dictionary).
pub(crate) struct Combined<'a> {
    disk: &'a Searcher,
    overlay: &'a OverlayView,
    tokens: RefCell<HashMap<Field, u64>>,
    docs: Cell<Option<u64>>,
    doc_freqs: RefCell<HashMap<Term, u64>>,
}

impl<'a> Combined<'a> {
    pub fn new(disk: &'a Searcher, overlay: &'a OverlayView) -> Combined<'a> {
        Combined {
            disk,
            overlay,
            tokens: RefCell::default(),
            docs: Cell::default(),
            doc_freqs: RefCell::default(),
        }
    }
}

impl Bm25StatisticsProvider for Combined<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        if let Some(&known) = self.tokens.borrow().get(&field) {
            return Ok(known);
        }
        let overlay: u64 = self
            .overlay
            .files
            .iter()
            .filter_map(|file| Some(file.terms.totals[file.terms.slot(field)?]))
            .sum();
        let total = self.disk.total_num_tokens(field)? + overlay;
        self.tokens.borrow_mut().insert(field, total);
        Ok(total)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        if let Some(known) = self.docs.get() {
            return Ok(known);
        }
        // Each file also has its file doc on disk (written by the persist).
        let overlay: usize = self
            .overlay
            .files
            .iter()
            .map(|file| file.docs.len() + 1)
            .sum();
        let total = Bm25StatisticsProvider::total_num_docs(self.disk)? + overlay as u64;
        self.docs.set(Some(total));
        Ok(total)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        if let Some(&known) = self.doc_freqs.borrow().get(term) {
            return Ok(known);
        }
        let value = term.value();
        let text = value.as_str().unwrap_or_default();
        let overlay: usize = self
            .overlay
            .files
            .iter()
            .map(|file| file.terms.postings(term.field(), text).len())
            .sum();
        let total = self.disk.doc_freq(term)? + overlay as u64;
        self.doc_freqs.borrow_mut().insert(term.clone(), total);
        Ok(total)
    }
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
    /// for it. The overlay keeps serving its last edit (the disk docs are
    /// shadowed) until the refresh's commit.
    pub fn discard(&self, rel: &str) {
        let mut state = self.state();
        if let Some(docs) = state.pending.remove(rel) {
            state.discarded.insert(rel.to_string(), docs);
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

    /// Make staged changes searchable: the overlay's view becomes its
    /// current files (their terms were built when they were staged).
    pub fn commit(&self) {
        let mut state = self.state();
        if state.generation != state.built {
            state.rebuild();
        }
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

    /// A persist failed: what it was writing is pending again (behind any
    /// newer edit of the same paths), to be retried.
    fn persist_failed(&self) {
        let mut state = self.state();
        let in_flight = std::mem::take(&mut state.in_flight);
        for (rel, docs) in in_flight {
            state.pending.entry(rel).or_insert(docs);
        }
        state.since.get_or_insert_with(Instant::now);
        state.generation += 1;
        state.rebuild();
    }

    /// The disk index now holds what [`Self::take_pending`] took (and what
    /// a refresh wrote): stop shadowing it. Edits staged meanwhile (edits do
    /// not wait for a persist) stay served, in the same step, so no search
    /// sees a path twice or not at all.
    fn persisted(&self) {
        let mut state = self.state();
        state.in_flight.clear();
        state.discarded.clear();
        let State { pending, stale, .. } = &mut *state;
        stale.retain(|rel| pending.contains_key(rel));
        state.rebuild();
    }

    /// The overlay's files and the paths it shadows, or `None` when it is empty.
    /// (A path shadowed with no files is a removal.)
    pub fn view(&self) -> Option<OverlayView> {
        let state = self.read_state();
        if state.stale.is_empty() {
            return None;
        }
        Some(OverlayView {
            files: Arc::clone(&state.files),
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
    let written = write_pending(disk, &mut writer, overlay.take_pending());
    if let Err(error) = written {
        drop(writer);
        overlay.persist_failed();
        return Err(error);
    }
    overlay.persisted();
    Ok(())
}

fn write_pending(
    disk: &Disk,
    writer: &mut IndexWriter,
    pending: HashMap<String, Docs>,
) -> tantivy::Result<()> {
    for (rel, docs) in pending {
        writer.delete_term(Term::from_field_text(disk.fields.path, &rel));
        if let Some(staged) = docs {
            let file_doc = schema::file_doc(&disk.fields, &rel, &staged.record)
                .map_err(|error| tantivy::TantivyError::InternalError(error.to_string()))?;
            // One doc copied at a time: the overlay keeps serving these
            // until the disk index has them.
            for doc in &staged.docs {
                writer.add_document(doc.clone())?;
            }
            writer.add_document(file_doc)?;
        }
    }
    writer.commit()?;
    disk.reader.reload()?;
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

    fn staged(fields: &Fields, rel: &str) -> Option<Staged> {
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.path, rel);
        Some(Staged::new(
            fields,
            vec![doc],
            Arc::new(FileRecord::of_symbols(LanguageId::Rust, Vec::new())),
        ))
    }

    /// Whether the overlay serves `rel`: shadows the disk's docs and holds its own.
    fn serves(overlay: &Overlay, fields: &Fields, rel: &str) -> bool {
        let Some(view) = overlay.view() else {
            return false;
        };
        let holds = view.files.iter().any(|file| {
            file.docs
                .iter()
                .any(|doc| doc.get_first(fields.path).and_then(|v| v.as_str()) == Some(rel))
        });
        view.stale.contains(rel) && holds
    }

    #[test]
    fn a_failed_persist_keeps_its_files_pending_and_served() {
        let (_, fields) = schema::schema();
        let overlay = Overlay::new();
        overlay.stage("a.rs", staged(&fields, "a.rs"));
        overlay.stage("b.rs", staged(&fields, "b.rs"));
        overlay.commit();
        let taken = overlay.take_pending();
        assert_eq!(taken.len(), 2);
        // A newer edit of b.rs arrives while the persist fails.
        overlay.stage("b.rs", None);
        overlay.persist_failed();
        assert!(overlay.has_pending("a.rs"), "retried later");
        assert!(overlay.has_pending("b.rs"));
        assert!(serves(&overlay, &fields, "a.rs"));
        assert!(
            !serves(&overlay, &fields, "b.rs"),
            "the newer edit (a removal) wins"
        );
        assert!(overlay.view().unwrap().stale.contains("b.rs"));
        assert_eq!(
            overlay.until_due().map(|due| due <= PERSIST_AFTER),
            Some(true)
        );
    }

    #[test]
    fn a_path_a_refresh_rewrites_stays_served_until_its_commit() {
        let (_, fields) = schema::schema();
        let overlay = Overlay::new();
        overlay.stage("a.rs", staged(&fields, "a.rs"));
        overlay.commit();
        // A refresh writes a.rs to the disk index itself…
        overlay.discard("a.rs");
        assert!(!overlay.has_pending("a.rs"), "nothing to persist");
        // …and an editor commits meanwhile: a.rs must not vanish.
        overlay.stage("b.rs", staged(&fields, "b.rs"));
        overlay.commit();
        assert!(serves(&overlay, &fields, "a.rs"));
        assert!(serves(&overlay, &fields, "b.rs"));
        // The refresh ends with a persist: the disk index serves a.rs.
        let taken = overlay.take_pending();
        assert!(!taken.contains_key("a.rs"));
        overlay.persisted();
        assert!(!serves(&overlay, &fields, "a.rs"));
        assert!(overlay.view().is_none(), "b.rs was persisted too");
    }

    #[test]
    fn edits_staged_during_a_persist_stay_searchable_and_pending() {
        let (_, fields) = schema::schema();
        let overlay = Overlay::new();
        overlay.stage("a.rs", staged(&fields, "a.rs"));
        overlay.commit();
        // A persist starts writing a.rs to the disk index…
        let taken = overlay.take_pending();
        assert!(taken.contains_key("a.rs"));
        // …and an edit arrives meanwhile (edits do not wait for it).
        overlay.stage("b.rs", staged(&fields, "b.rs"));
        overlay.commit();
        assert!(
            serves(&overlay, &fields, "a.rs"),
            "a file being persisted is still served"
        );
        assert!(serves(&overlay, &fields, "b.rs"));
        overlay.persisted();
        assert!(serves(&overlay, &fields, "b.rs"));
        assert!(
            !serves(&overlay, &fields, "a.rs"),
            "the disk index serves a.rs now"
        );
        assert!(overlay.has_pending("b.rs"));
        assert!(!overlay.has_pending("a.rs"));
        // With nothing staged meanwhile, a persist empties the overlay.
        overlay.take_pending();
        overlay.persisted();
        assert!(overlay.view().is_none());
        assert!(overlay.is_empty());
    }
}
