//! Go to definition, find references and hover, answered from the open
//! document first and the project index second.

use std::path::{Path, PathBuf};

use aicockpit_syntax::{word_at, LineIndex, Span, Symbol};

use crate::documents::occurrences;
use crate::{Engine, EngineError, Location};

/// Definitions looked at for one request.
const MAX_DEFINITIONS: usize = 50;
/// Files searched for references, and references returned.
const MAX_REFERENCE_FILES: usize = 500;
const MAX_REFERENCES: usize = 2000;

/// What hover shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hover {
    /// Markdown: the signature in a code block, the doc, and where it is defined.
    pub markdown: String,
    /// The identifier hovered.
    pub span: Span,
}

impl Engine {
    /// The identifier at a byte offset of a file's current text.
    fn identifier_at(&self, path: &Path, offset: usize) -> Option<(String, Span)> {
        let text = self.text(path)?;
        let range = word_at(&text, offset)?;
        let span = LineIndex::new(&text).span(&text, range.clone());
        Some((text[range].to_string(), span))
    }

    /// Definitions of the identifier at `offset`: the current file's first,
    /// then the index's, nearest folders first.
    pub fn definition_symbols(&self, path: &Path, offset: usize) -> Vec<(PathBuf, Symbol)> {
        let Some((name, _)) = self.identifier_at(path, offset) else {
            return Vec::new();
        };
        let local: Vec<(PathBuf, Symbol)> = self
            .symbols_arc(path)
            .map(|symbols| {
                symbols
                    .iter()
                    .filter(|s| *s.name == *name && s.kind.is_definition())
                    .map(|s| (path.to_path_buf(), s.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !local.is_empty() {
            return local;
        }
        let Some(index) = &self.index else {
            return Vec::new();
        };
        let current = self.rel(path);
        let mut found: Vec<(PathBuf, Symbol)> = index
            .definitions(&name, MAX_DEFINITIONS)
            .into_iter()
            .filter(|hit| Some(&hit.path) != current.as_ref())
            .map(|hit| (index.absolute(&hit.path), hit.symbol))
            .collect();
        // The same place twice would make an editor open a list instead of jumping.
        let mut seen = Vec::with_capacity(found.len());
        found.retain(|(file, symbol)| {
            let key = (file.clone(), symbol.selection_range);
            let new = !seen.contains(&key);
            if new {
                seen.push(key);
            }
            new
        });
        let here = path.parent().map(Path::to_path_buf).unwrap_or_default();
        found.sort_by_key(|(other, _)| {
            let shared = other
                .components()
                .zip(here.components())
                .take_while(|(a, b)| a == b)
                .count();
            std::cmp::Reverse(shared)
        });
        found
    }

    /// Go to definition.
    pub fn definition(&self, path: &Path, offset: usize) -> Vec<Location> {
        self.definition_symbols(path, offset)
            .into_iter()
            .map(|(path, symbol)| Location {
                path,
                span: symbol.selection_range,
            })
            .collect()
    }

    /// Signature and doc of the identifier at `offset`.
    pub fn hover(&self, path: &Path, offset: usize) -> Option<Hover> {
        let (_, span) = self.identifier_at(path, offset)?;
        let (file, symbol) = self.definition_symbols(path, offset).into_iter().next()?;
        let lang = aicockpit_syntax::LanguageId::from_path(&file).map_or("", |lang| lang.name());
        let mut markdown = format!("```{lang}\n{}\n```\n", symbol.signature);
        if let Some(doc) = &symbol.doc {
            markdown.push('\n');
            markdown.push_str(doc);
            markdown.push('\n');
        }
        let place = self
            .rel(&file)
            .unwrap_or_else(|| file.display().to_string());
        let container = symbol
            .container
            .as_deref()
            .map(|c| format!(" in `{c}`"))
            .unwrap_or_default();
        markdown.push_str(&format!(
            "\n*{}*{container} — {place}:{}",
            symbol.kind,
            symbol.range.start.line + 1
        ));
        Some(Hover { markdown, span })
    }

    /// Whole-word occurrences of the identifier at `offset`: the current file
    /// first, then files the index says contain it.
    pub fn references(
        &self,
        path: &Path,
        offset: usize,
        include_declaration: bool,
    ) -> Result<Vec<Location>, EngineError> {
        let Some((name, _)) = self.identifier_at(path, offset) else {
            return Ok(Vec::new());
        };
        let mut files = vec![path.to_path_buf()];
        if let Some(index) = &self.index {
            self.flush()?;
            let current = self.rel(path);
            for rel in index.files_containing(&name, MAX_REFERENCE_FILES)? {
                if Some(&rel) != current.as_ref() {
                    files.push(index.absolute(&rel));
                }
            }
        }
        let mut out = Vec::new();
        for file in files {
            let Some(text) = self.text(&file) else {
                continue;
            };
            let lines = LineIndex::new(&text);
            let declarations: Vec<Span> = if include_declaration {
                Vec::new()
            } else {
                self.symbols_arc(&file)
                    .map(|symbols| {
                        symbols
                            .iter()
                            .filter(|s| *s.name == *name)
                            .map(|s| s.selection_range)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for range in occurrences(&text, &name) {
                let span = lines.span(&text, range);
                if declarations.contains(&span) {
                    continue;
                }
                out.push(Location {
                    path: file.clone(),
                    span,
                });
                if out.len() >= MAX_REFERENCES {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aicockpit_config::Config;
    use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery};

    use crate::{ColumnUnit, Engine, TextChange, TextPosition};

    fn project() -> (tempfile::TempDir, tempfile::TempDir, Engine) {
        let root = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("lib.rs"),
            "/// Adds one.\npub fn add_one(x: i32) -> i32 { x + 1 }\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("main.rs"),
            "fn main() {\n    let y = add_one(2);\n    add_one(y);\n}\n",
        )
        .unwrap();
        let (index, _) = ProjectIndex::open(IndexOptions::new(root.path(), cache.path())).unwrap();
        let engine = Engine::new(Config::default(), Some(Arc::new(index)));
        engine.refresh(&|_| {}).unwrap();
        (root, cache, engine)
    }

    #[test]
    fn definition_hover_and_references_cross_files() {
        let (_project, _cache, engine) = project();
        let root = engine.root().unwrap().to_path_buf();
        let main = root.join("main.rs");
        let text = std::fs::read_to_string(&main).unwrap();
        let at = text.find("add_one").unwrap() + 2;
        let found = engine.definition(&main, at);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, root.join("lib.rs"));
        assert_eq!((found[0].span.start.line, found[0].span.start.col), (1, 7));
        let hover = engine.hover(&main, at).unwrap();
        assert!(
            hover.markdown.contains("pub fn add_one(x: i32) -> i32"),
            "{}",
            hover.markdown
        );
        assert!(hover.markdown.contains("Adds one."), "{}", hover.markdown);
        let refs = engine.references(&main, at, true).unwrap();
        assert_eq!(refs.len(), 3, "{refs:?}");
        assert_eq!(refs[0].path, main, "same file first");
        let refs = engine.references(&main, at, false).unwrap();
        assert_eq!(refs.len(), 2, "declaration left out");
    }

    #[test]
    fn unsaved_text_wins_and_is_searchable_after_a_flush() {
        let (_root, _cache, engine) = project();
        let lib = engine.root().unwrap().join("lib.rs");
        engine.open_document(&lib, 1, None, std::fs::read_to_string(&lib).unwrap());
        let change = TextChange {
            range: Some((
                TextPosition { line: 1, col: 7 },
                TextPosition { line: 1, col: 14 },
            )),
            text: "increment_value".into(),
        };
        engine
            .change_document(&lib, 2, ColumnUnit::Utf16, &[change])
            .unwrap();
        assert_eq!(&*engine.document_symbols(&lib)[0].name, "increment_value");
        let hits = engine.search(&SearchQuery::new("increment value")).unwrap();
        assert_eq!(&*hits[0].symbol.as_ref().unwrap().name, "increment_value");
        assert_eq!(
            &*engine.workspace_symbols("increment", 5)[0].1.name,
            "increment_value"
        );
        // Closing without saving: the disk's version comes back.
        engine.close_document(&lib).unwrap();
        assert_eq!(
            &*engine.workspace_symbols("add_one", 5)[0].1.name,
            "add_one"
        );
        assert!(engine.workspace_symbols("increment_value", 5).is_empty());
    }
}
