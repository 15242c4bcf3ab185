//! The language table: which file extensions map to which grammar and query.
//!
//! Languages are data: adding one means a grammar crate, a row here and a
//! `queries/<lang>/tags.scm` file.

use std::path::Path;
use std::sync::OnceLock;

use tree_sitter::{Language, Query};

/// A language AiCockpit parses.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LanguageId {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

struct LanguageRow {
    id: LanguageId,
    name: &'static str,
    /// LSP `languageId`s and common aliases that mean this language.
    aliases: &'static [&'static str],
    extensions: &'static [&'static str],
    grammar: fn() -> Language,
    tags: &'static str,
    /// When set, the tags query runs only on the nodes reached by a walk
    /// that descends into these kinds (bodies of modules, classes, impls,
    /// functions, blocks), never into expressions; see [`TagsWalk`]. `None`:
    /// the query runs over the whole tree.
    descend: Option<&'static [&'static str]>,
}

/// Where a language's definitions can sit (see `LanguageRow::descend`).
const RUST_DESCEND: &[&str] = &[
    "source_file",
    "declaration_list",
    "mod_item",
    "impl_item",
    "trait_item",
    "foreign_mod_item",
    "function_item",
    "block",
    "unsafe_block",
    "expression_statement",
    "let_declaration",
    "const_item",
    "static_item",
    "const_block",
    "async_block",
    "closure_expression",
    "if_expression",
    "else_clause",
    "match_expression",
    "match_block",
    "match_arm",
    "loop_expression",
    "while_expression",
    "for_expression",
    "struct_item",
    "union_item",
    "enum_item",
    "enum_variant_list",
    "enum_variant",
    "field_declaration_list",
];
const PYTHON_DESCEND: &[&str] = &[
    "module",
    "block",
    "class_definition",
    "function_definition",
    "decorated_definition",
    "if_statement",
    "elif_clause",
    "else_clause",
    "try_statement",
    "except_clause",
    "finally_clause",
    "with_statement",
    "for_statement",
    "while_statement",
    "match_statement",
    "case_clause",
];

/// A language's walk for the tags query, by node kind id.
pub(crate) struct TagsWalk {
    /// Kinds whose children the walk visits.
    pub descend: Vec<bool>,
    /// Kinds some pattern of the query starts at: the query runs on these
    /// nodes only, matching from the node itself.
    pub roots: Vec<bool>,
}

impl TagsWalk {
    fn new(grammar: &Language, tags: &str, descend: &[&str]) -> TagsWalk {
        let roots = pattern_roots(tags);
        let count = grammar.node_kind_count();
        let mut walk = TagsWalk {
            descend: vec![false; count],
            roots: vec![false; count],
        };
        // A kind name can have several ids (aliases): mark them all.
        for id in 0..count as u16 {
            if !grammar.node_kind_is_named(id) {
                continue;
            }
            let Some(kind) = grammar.node_kind_for_id(id) else {
                continue;
            };
            walk.descend[id as usize] = descend.contains(&kind);
            walk.roots[id as usize] = roots.contains(&kind);
        }
        walk
    }

    pub fn descends(&self, kind: u16) -> bool {
        self.descend.get(kind as usize).copied().unwrap_or(false)
    }

    pub fn is_root(&self, kind: u16) -> bool {
        self.roots.get(kind as usize).copied().unwrap_or(false)
    }
}

/// The node kinds the top-level patterns of a query start with: `(kind` at
/// nesting depth zero, outside strings and comments.
fn pattern_roots(query: &str) -> Vec<&str> {
    let mut roots = Vec::new();
    let mut depth = 0usize;
    let bytes = query.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b';' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' => {
                if depth == 0 && bytes[at] == b'(' {
                    let start = at + 1;
                    let end = query[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(query.len(), |n| start + n);
                    roots.push(&query[start..end]);
                }
                depth += 1;
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    roots
}

const TABLE: &[LanguageRow] = &[
    LanguageRow {
        id: LanguageId::Rust,
        name: "rust",
        aliases: &["rs"],
        extensions: &["rs"],
        grammar: || tree_sitter_rust::LANGUAGE.into(),
        tags: include_str!("../../../queries/rust/tags.scm"),
        descend: Some(RUST_DESCEND),
    },
    LanguageRow {
        id: LanguageId::Python,
        name: "python",
        aliases: &["py"],
        extensions: &["py", "pyi"],
        grammar: || tree_sitter_python::LANGUAGE.into(),
        tags: include_str!("../../../queries/python/tags.scm"),
        descend: Some(PYTHON_DESCEND),
    },
    LanguageRow {
        id: LanguageId::JavaScript,
        name: "javascript",
        aliases: &["js", "javascriptreact", "jsx"],
        extensions: &["js", "mjs", "cjs", "jsx"],
        grammar: || tree_sitter_javascript::LANGUAGE.into(),
        tags: include_str!("../../../queries/javascript/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::TypeScript,
        name: "typescript",
        aliases: &["ts"],
        extensions: &["ts", "mts", "cts"],
        grammar: || tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        tags: include_str!("../../../queries/typescript/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::Tsx,
        name: "tsx",
        aliases: &["typescriptreact"],
        extensions: &["tsx"],
        grammar: || tree_sitter_typescript::LANGUAGE_TSX.into(),
        tags: include_str!("../../../queries/typescript/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::Go,
        name: "go",
        aliases: &["golang"],
        extensions: &["go"],
        grammar: || tree_sitter_go::LANGUAGE.into(),
        tags: include_str!("../../../queries/go/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::Java,
        name: "java",
        aliases: &[],
        extensions: &["java"],
        grammar: || tree_sitter_java::LANGUAGE.into(),
        tags: include_str!("../../../queries/java/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::C,
        name: "c",
        aliases: &[],
        extensions: &["c", "h"],
        grammar: || tree_sitter_c::LANGUAGE.into(),
        tags: include_str!("../../../queries/c/tags.scm"),
        descend: None,
    },
    LanguageRow {
        id: LanguageId::Cpp,
        name: "cpp",
        aliases: &["c++"],
        extensions: &["cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "ipp"],
        grammar: || tree_sitter_cpp::LANGUAGE.into(),
        tags: include_str!("../../../queries/cpp/tags.scm"),
        descend: None,
    },
];

impl LanguageId {
    /// Every language, in table order.
    pub const ALL: [LanguageId; 9] = [
        LanguageId::Rust,
        LanguageId::Python,
        LanguageId::JavaScript,
        LanguageId::TypeScript,
        LanguageId::Tsx,
        LanguageId::Go,
        LanguageId::Java,
        LanguageId::C,
        LanguageId::Cpp,
    ];

    fn row(self) -> &'static LanguageRow {
        // The table is in enum order; the test `table_is_in_enum_order` keeps it so.
        &TABLE[self as usize]
    }

    /// The language's short name, as used in the index and in `--json` output.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The file extensions (without dot) this language claims.
    pub fn extensions(self) -> &'static [&'static str] {
        self.row().extensions
    }

    /// The language of a path, judged by its extension.
    pub fn from_path(path: &Path) -> Option<LanguageId> {
        let extension = path.extension()?.to_str()?;
        Self::from_extension(extension)
    }

    /// The language that claims a file extension (without the dot).
    pub fn from_extension(extension: &str) -> Option<LanguageId> {
        let lower = extension.to_ascii_lowercase();
        TABLE
            .iter()
            .find(|row| row.extensions.contains(&lower.as_str()))
            .map(|row| row.id)
    }

    /// The language named by an LSP `languageId` or by its short name.
    pub fn from_name(name: &str) -> Option<LanguageId> {
        let lower = name.to_ascii_lowercase();
        TABLE
            .iter()
            .find(|row| row.name == lower || row.aliases.contains(&lower.as_str()))
            .map(|row| row.id)
    }

    /// The tree-sitter grammar.
    pub fn grammar(self) -> Language {
        (self.row().grammar)()
    }

    /// The source of the embedded `tags.scm` query.
    pub fn tags_source(self) -> &'static str {
        self.row().tags
    }

    /// The compiled tags query, or the compile error (which names the
    /// position in the query file). Compiled once per process.
    pub fn tags_query(self) -> Result<&'static Query, &'static str> {
        static QUERIES: OnceLock<Vec<Result<Query, String>>> = OnceLock::new();
        let queries = QUERIES.get_or_init(|| {
            LanguageId::ALL
                .iter()
                .map(|lang| {
                    Query::new(&lang.grammar(), lang.tags_source())
                        .map_err(|error| format!("queries/{}/tags.scm: {error}", lang.query_dir()))
                })
                .collect()
        });
        queries[self as usize].as_ref().map_err(String::as_str)
    }

    /// The walk the tags query runs along, for languages that have one.
    pub(crate) fn tags_walk(self) -> Option<&'static TagsWalk> {
        static WALKS: OnceLock<Vec<Option<TagsWalk>>> = OnceLock::new();
        let walks = WALKS.get_or_init(|| {
            LanguageId::ALL
                .iter()
                .map(|lang| {
                    let row = lang.row();
                    row.descend
                        .map(|descend| TagsWalk::new(&lang.grammar(), row.tags, descend))
                })
                .collect()
        });
        walks[self as usize].as_ref()
    }

    /// The folder under `queries/` holding this language's query files.
    pub fn query_dir(self) -> &'static str {
        match self {
            LanguageId::Tsx => "typescript",
            other => other.name(),
        }
    }
}

impl std::fmt::Display for LanguageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order() {
        for (index, lang) in LanguageId::ALL.iter().enumerate() {
            assert_eq!(TABLE[index].id, *lang);
        }
        assert_eq!(TABLE.len(), LanguageId::ALL.len());
    }

    #[test]
    fn every_tags_query_compiles_against_its_grammar() {
        for lang in LanguageId::ALL {
            if let Err(error) = lang.tags_query() {
                panic!("{lang}: {error}");
            }
        }
    }

    #[test]
    fn walks_know_every_kind_they_name() {
        for lang in LanguageId::ALL {
            let row = lang.row();
            let Some(descend) = row.descend else { continue };
            let grammar = lang.grammar();
            for kind in descend.iter().chain(pattern_roots(row.tags).iter()) {
                assert!(
                    grammar.id_for_node_kind(kind, true) != 0,
                    "{lang}: no node kind {kind}"
                );
            }
        }
        assert_eq!(
            pattern_roots("; (x)\n(a b: (c)) @d\n[(e) (f)]\n(g \"(h\")"),
            vec!["a", "g"]
        );
    }

    #[test]
    fn extensions_and_names_resolve() {
        assert_eq!(
            LanguageId::from_path(Path::new("a/b.tsx")),
            Some(LanguageId::Tsx)
        );
        assert_eq!(
            LanguageId::from_path(Path::new("X.HPP")),
            Some(LanguageId::Cpp)
        );
        assert_eq!(LanguageId::from_path(Path::new("Makefile")), None);
        assert_eq!(
            LanguageId::from_name("typescriptreact"),
            Some(LanguageId::Tsx)
        );
        assert_eq!(LanguageId::from_name("python"), Some(LanguageId::Python));
        assert_eq!(LanguageId::from_name("cobol"), None);
    }
}
