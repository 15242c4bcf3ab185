//! The document store: the text of every document open in an editor, with
//! its version, kept in receive order. Unsaved text wins over the disk.
//!
//! Several editors (language-server sessions sharing one engine) may hold
//! the same document. Each holder's text is kept apart and its changes are
//! applied to its own copy, so incremental edits never land on another
//! editor's text; the document's text (what the index and every reader
//! sees) is the copy of the holder that wrote last. Closing a document
//! drops only that holder's copy: the disk wins again only when no holder
//! is left, and if the last writer closes, the most recent remaining copy
//! becomes the document's text.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aicockpit_syntax::{LanguageId, LineIndex, Symbol};

/// How columns in a [`TextPosition`] are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColumnUnit {
    /// UTF-8 bytes.
    Utf8,
    /// UTF-16 code units (the LSP default).
    #[default]
    Utf16,
}

/// A line and a column in some unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextPosition {
    pub line: u32,
    pub col: u32,
}

/// One edit of an incremental change: replace `range` (or the whole text) by `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChange {
    pub range: Option<(TextPosition, TextPosition)>,
    pub text: String,
}

/// Who holds a document open: one editor session. [`HolderId::DEFAULT`] is
/// the holder of the engine's plain document methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HolderId(pub u64);

impl HolderId {
    pub const DEFAULT: HolderId = HolderId(0);
}

/// One holder's copy of a document.
#[derive(Clone, Debug)]
struct View {
    version: i32,
    text: String,
    /// When this copy was last written (a store-wide sequence number).
    written: u64,
}

/// An open document.
#[derive(Clone, Debug)]
pub struct Document {
    pub version: i32,
    pub text: String,
    pub lang: Option<LanguageId>,
    /// Changed since the index last saw it.
    pub(crate) dirty: bool,
    /// Symbols of the current text, parsed on demand.
    pub(crate) symbols: Option<Arc<Vec<Symbol>>>,
    /// The symbol record of the last text parsed for `workspace/symbol`
    /// (the current one or an older one): kept through edits, so a query
    /// never has to parse every other editor's document.
    pub(crate) recent_record: Option<Arc<aicockpit_index::FileRecord>>,
    /// When the editor last changed it (not set by opening).
    pub(crate) edited_at: Option<std::time::Instant>,
    /// Each holder's copy; `text` is the copy of the last writer.
    views: HashMap<HolderId, View>,
}

/// What closing a document did.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The holder did not have it open.
    NotOpen,
    /// Other holders still have it open: the document stays.
    StillOpen,
    /// It was the last holder: the document is gone.
    Last,
}

/// Why a change was not applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("{0} is not open")]
    NotOpen(PathBuf),
    #[error("{path}: version {got} is older than the current version {current}; change ignored")]
    StaleVersion {
        path: PathBuf,
        got: i32,
        current: i32,
    },
}

#[derive(Default)]
pub(crate) struct DocumentStore {
    docs: HashMap<PathBuf, Document>,
    /// Sequence of writes, to find the most recent copy.
    writes: u64,
}

impl DocumentStore {
    /// A holder opened a document: its text becomes the document's.
    pub fn open(
        &mut self,
        holder: HolderId,
        path: PathBuf,
        version: i32,
        lang: Option<LanguageId>,
        text: String,
    ) {
        self.writes += 1;
        let view = View {
            version,
            text: text.clone(),
            written: self.writes,
        };
        let doc = self.docs.entry(path).or_insert_with(|| Document {
            version,
            text: String::new(),
            lang,
            dirty: true,
            symbols: None,
            recent_record: None,
            edited_at: None,
            views: HashMap::new(),
        });
        doc.views.insert(holder, view);
        doc.version = version;
        doc.text = text;
        doc.lang = lang.or(doc.lang);
        doc.dirty = true;
        doc.symbols = None;
    }

    /// A holder closed a document.
    pub fn close(&mut self, holder: HolderId, path: &Path) -> Closed {
        let Some(doc) = self.docs.get_mut(path) else {
            return Closed::NotOpen;
        };
        if doc.views.remove(&holder).is_none() {
            return Closed::NotOpen;
        }
        let Some(latest) = doc.views.values().max_by_key(|view| view.written) else {
            self.docs.remove(path);
            return Closed::Last;
        };
        if latest.text != doc.text {
            doc.text = latest.text.clone();
            doc.dirty = true;
            doc.symbols = None;
        }
        doc.version = latest.version;
        Closed::StillOpen
    }

    /// The documents only this holder has open, and how many it had.
    pub fn held_by(&self, holder: HolderId) -> Vec<PathBuf> {
        self.docs
            .iter()
            .filter(|(_, doc)| doc.views.contains_key(&holder))
            .map(|(path, _)| path.clone())
            .collect()
    }

    pub fn get(&self, path: &Path) -> Option<&Document> {
        self.docs.get(path)
    }

    pub fn get_mut(&mut self, path: &Path) -> Option<&mut Document> {
        self.docs.get_mut(path)
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Document)> {
        self.docs.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&PathBuf, &mut Document)> {
        self.docs.iter_mut()
    }

    /// Apply a holder's changes to its copy, in order, each against the
    /// text the previous one left; that copy becomes the document's text.
    pub fn change(
        &mut self,
        holder: HolderId,
        path: &Path,
        version: i32,
        unit: ColumnUnit,
        changes: &[TextChange],
    ) -> Result<(), DocumentError> {
        let not_open = || DocumentError::NotOpen(path.to_path_buf());
        let doc = self.docs.get_mut(path).ok_or_else(not_open)?;
        let view = doc.views.get_mut(&holder).ok_or_else(not_open)?;
        if version < view.version {
            return Err(DocumentError::StaleVersion {
                path: path.to_path_buf(),
                got: version,
                current: view.version,
            });
        }
        apply_changes(&mut view.text, unit, changes);
        self.writes += 1;
        view.version = version;
        view.written = self.writes;
        doc.text.clone_from(&view.text);
        doc.version = version;
        doc.dirty = true;
        doc.symbols = None;
        doc.edited_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// A holder saved a document with this text.
    pub fn save(&mut self, holder: HolderId, path: &Path, text: String) {
        let Some(doc) = self.docs.get_mut(path) else {
            return;
        };
        let Some(view) = doc.views.get_mut(&holder) else {
            return;
        };
        self.writes += 1;
        view.written = self.writes;
        if view.text != text {
            view.text.clone_from(&text);
        }
        if doc.text != text {
            doc.text = text;
            doc.version = view.version;
            doc.dirty = true;
            doc.symbols = None;
        }
    }
}

/// Apply incremental changes to a text, in order; ranges past the end clamp.
pub fn apply_changes(text: &mut String, unit: ColumnUnit, changes: &[TextChange]) {
    for change in changes {
        match change.range {
            None => text.clone_from(&change.text),
            Some((start, end)) => {
                let lines = LineIndex::new(text);
                let start = offset(&lines, text, start, unit);
                let end = offset(&lines, text, end, unit).max(start);
                text.replace_range(start..end, &change.text);
            }
        }
    }
}

/// The byte offset of a position, clamped to the text.
pub fn offset(lines: &LineIndex, text: &str, position: TextPosition, unit: ColumnUnit) -> usize {
    match unit {
        ColumnUnit::Utf8 => lines.offset_utf8(text, position.line, position.col),
        ColumnUnit::Utf16 => lines.offset_utf16(text, position.line, position.col),
    }
}

/// Byte ranges of whole-identifier occurrences of `name` in `text`.
pub fn occurrences(text: &str, name: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    text.match_indices(name)
        .map(|(start, _)| start..start + name.len())
        .filter(|range| {
            let before = range.start.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(range.end).copied();
            !before.is_some_and(aicockpit_syntax::is_identifier_byte)
                && !after.is_some_and(aicockpit_syntax::is_identifier_byte)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, col: u32) -> TextPosition {
        TextPosition { line, col }
    }

    #[test]
    fn incremental_changes_apply_in_order_with_utf16_columns() {
        let mut store = DocumentStore::default();
        let path = PathBuf::from("/p/a.rs");
        store.open(
            HolderId::DEFAULT,
            path.clone(),
            1,
            Some(LanguageId::Rust),
            "let é = 1;\nfn x() {}\n".into(),
        );
        let changes = [
            // Replace `1` (UTF-16 column 8, byte column 9) with `2`.
            TextChange {
                range: Some((pos(0, 8), pos(0, 9))),
                text: "2".into(),
            },
            // Then insert at the start of line 1, against the text the first change left.
            TextChange {
                range: Some((pos(1, 0), pos(1, 0))),
                text: "pub ".into(),
            },
        ];
        store
            .change(HolderId::DEFAULT, &path, 2, ColumnUnit::Utf16, &changes)
            .unwrap();
        assert_eq!(
            store.get(&path).unwrap().text,
            "let é = 2;\npub fn x() {}\n"
        );
        let stale = store.change(
            HolderId::DEFAULT,
            &path,
            1,
            ColumnUnit::Utf16,
            &[TextChange {
                range: None,
                text: "x".into(),
            }],
        );
        assert!(matches!(stale, Err(DocumentError::StaleVersion { .. })));
        store
            .change(
                HolderId::DEFAULT,
                &path,
                3,
                ColumnUnit::Utf8,
                &[TextChange {
                    range: None,
                    text: "whole".into(),
                }],
            )
            .unwrap();
        assert_eq!(store.get(&path).unwrap().text, "whole");
        // Ranges past the end clamp instead of panicking.
        store
            .change(
                HolderId::DEFAULT,
                &path,
                4,
                ColumnUnit::Utf8,
                &[TextChange {
                    range: Some((pos(9, 9), pos(99, 0))),
                    text: "!".into(),
                }],
            )
            .unwrap();
        assert_eq!(store.get(&path).unwrap().text, "whole!");
    }

    #[test]
    fn holders_keep_their_own_copies_and_the_last_writer_wins() {
        let mut store = DocumentStore::default();
        let path = PathBuf::from("/p/a.rs");
        let (a, b) = (HolderId(1), HolderId(2));
        store.open(
            a,
            path.clone(),
            1,
            Some(LanguageId::Rust),
            "fn a() {}\n".into(),
        );
        store.open(
            b,
            path.clone(),
            7,
            Some(LanguageId::Rust),
            "fn b() {}\n".into(),
        );
        assert_eq!(store.get(&path).unwrap().text, "fn b() {}\n");
        // A's incremental change applies to A's own text, not to B's.
        let insert = |text: &str| TextChange {
            range: Some((pos(0, 4), pos(0, 4))),
            text: text.into(),
        };
        store
            .change(a, &path, 2, ColumnUnit::Utf8, &[insert("x")])
            .unwrap();
        assert_eq!(store.get(&path).unwrap().text, "fn ax() {}\n");
        // Versions are per holder: B's 8 is not stale though A wrote 2 last.
        store
            .change(b, &path, 8, ColumnUnit::Utf8, &[insert("y")])
            .unwrap();
        assert_eq!(store.get(&path).unwrap().text, "fn by() {}\n");
        // The last writer closes: the other copy is the text again.
        assert!(matches!(store.close(b, &path), Closed::StillOpen));
        let doc = store.get(&path).unwrap();
        assert_eq!((doc.text.as_str(), doc.version), ("fn ax() {}\n", 2));
        assert!(matches!(store.close(b, &path), Closed::NotOpen));
        assert_eq!(store.held_by(a), vec![path.clone()]);
        assert!(matches!(store.close(a, &path), Closed::Last));
        assert!(store.get(&path).is_none());
        let unknown = store.change(b, &path, 9, ColumnUnit::Utf8, &[insert("z")]);
        assert!(matches!(unknown, Err(DocumentError::NotOpen(_))));
    }

    #[test]
    fn occurrences_are_whole_identifiers() {
        let text = "foo foo_bar afoo foo(1) $foo .foo";
        let found: Vec<usize> = occurrences(text, "foo")
            .into_iter()
            .map(|r| r.start)
            .collect();
        assert_eq!(found, [0, 17, 30]);
    }
}
