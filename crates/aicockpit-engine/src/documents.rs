//! The document store: the text of every document open in an editor, with
//! its version, kept in receive order. Unsaved text wins over the disk.

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
    /// When the editor last changed it (not set by opening).
    pub(crate) edited_at: Option<std::time::Instant>,
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
}

impl DocumentStore {
    pub fn open(&mut self, path: PathBuf, version: i32, lang: Option<LanguageId>, text: String) {
        self.docs.insert(
            path,
            Document {
                version,
                text,
                lang,
                dirty: true,
                symbols: None,
                edited_at: None,
            },
        );
    }

    pub fn close(&mut self, path: &Path) -> Option<Document> {
        self.docs.remove(path)
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

    /// Apply changes in order, each against the text the previous one left.
    pub fn change(
        &mut self,
        path: &Path,
        version: i32,
        unit: ColumnUnit,
        changes: &[TextChange],
    ) -> Result<(), DocumentError> {
        let doc = self
            .docs
            .get_mut(path)
            .ok_or_else(|| DocumentError::NotOpen(path.to_path_buf()))?;
        if version < doc.version {
            return Err(DocumentError::StaleVersion {
                path: path.to_path_buf(),
                got: version,
                current: doc.version,
            });
        }
        for change in changes {
            match change.range {
                None => doc.text = change.text.clone(),
                Some((start, end)) => {
                    let lines = LineIndex::new(&doc.text);
                    let start = offset(&lines, &doc.text, start, unit);
                    let end = offset(&lines, &doc.text, end, unit).max(start);
                    doc.text.replace_range(start..end, &change.text);
                }
            }
        }
        doc.version = version;
        doc.dirty = true;
        doc.symbols = None;
        doc.edited_at = Some(std::time::Instant::now());
        Ok(())
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
        store.change(&path, 2, ColumnUnit::Utf16, &changes).unwrap();
        assert_eq!(
            store.get(&path).unwrap().text,
            "let é = 2;\npub fn x() {}\n"
        );
        let stale = store.change(
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
    fn occurrences_are_whole_identifiers() {
        let text = "foo foo_bar afoo foo(1) $foo .foo";
        let found: Vec<usize> = occurrences(text, "foo")
            .into_iter()
            .map(|r| r.start)
            .collect();
        assert_eq!(found, [0, 17, 30]);
    }
}
