//! Symbols: definitions found by each language's `tags.scm`, with their
//! container, signature line and doc comment.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use tree_sitter::{Node, ParseOptions, Parser, QueryCursor, QueryCursorOptions, StreamingIterator};

use crate::chunks::{self, Chunk};
use crate::language::LanguageId;
use crate::text::{LineIndex, Span};

/// How long one file may take to parse, or to query, before we give up on it.
const TIME_LIMIT: Duration = Duration::from_secs(5);
/// Signature lines and doc comments are cut to these many bytes.
const SIGNATURE_MAX_BYTES: usize = 240;
const DOC_MAX_BYTES: usize = 2000;
/// How many comment nodes above a definition are read as its doc.
const DOC_MAX_COMMENTS: usize = 64;

/// What a symbol is. The variants follow LSP's `SymbolKind` where one fits;
/// `Impl`, `Macro` and `TypeAlias` are mapped to the nearest LSP kind at the edge.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    Module,
    Namespace,
    Class,
    Struct,
    Enum,
    Interface,
    Impl,
    Function,
    Method,
    Constructor,
    Field,
    EnumMember,
    Variable,
    Constant,
    TypeAlias,
    Macro,
}

impl SymbolKind {
    /// Every kind, for listings and validation.
    pub const ALL: [SymbolKind; 16] = [
        SymbolKind::Module,
        SymbolKind::Namespace,
        SymbolKind::Class,
        SymbolKind::Struct,
        SymbolKind::Enum,
        SymbolKind::Interface,
        SymbolKind::Impl,
        SymbolKind::Function,
        SymbolKind::Method,
        SymbolKind::Constructor,
        SymbolKind::Field,
        SymbolKind::EnumMember,
        SymbolKind::Variable,
        SymbolKind::Constant,
        SymbolKind::TypeAlias,
        SymbolKind::Macro,
    ];

    /// The name used in queries (`@definition.<name>`), the index and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            SymbolKind::Module => "module",
            SymbolKind::Namespace => "namespace",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Interface => "interface",
            SymbolKind::Impl => "impl",
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Constructor => "constructor",
            SymbolKind::Field => "field",
            SymbolKind::EnumMember => "enum_member",
            SymbolKind::Variable => "variable",
            SymbolKind::Constant => "constant",
            SymbolKind::TypeAlias => "type",
            SymbolKind::Macro => "macro",
        }
    }

    /// The kind with this name, as written in queries and filters.
    pub fn from_name(name: &str) -> Option<SymbolKind> {
        SymbolKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Kinds that hold other definitions (a function inside one is a method).
    pub fn is_type_like(self) -> bool {
        matches!(
            self,
            SymbolKind::Class
                | SymbolKind::Struct
                | SymbolKind::Enum
                | SymbolKind::Interface
                | SymbolKind::Impl
        )
    }

    /// Whether go-to-definition and `workspace/symbol` should offer this
    /// symbol. An `impl` block names a type it does not define.
    pub fn is_definition(self) -> bool {
        self != SymbolKind::Impl
    }
}

impl std::fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A definition in a file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Symbol {
    pub name: Box<str>,
    pub kind: SymbolKind,
    /// The whole definition.
    pub range: Span,
    /// The name inside the definition.
    pub selection_range: Span,
    /// The enclosing definition's name (or the receiver type of a Go method, the scope of `A::f` in C++).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<str>>,
    /// Index of the enclosing symbol in the same list: the document outline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
    /// The first line of the definition, trimmed.
    pub signature: Box<str>,
    /// The doc comment or docstring, without comment markers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<Box<str>>,
}

/// Something worth telling about a parse that still produced a result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SyntaxNote {
    /// The text has syntax errors; the first is on this zero-based line.
    SyntaxError { line: u32 },
    /// Parsing or querying took longer than the time limit; results are partial or empty.
    TimedOut,
    /// The query matched too much and tree-sitter dropped some matches.
    MatchLimitExceeded,
    /// The grammar or query could not be loaded (a build problem, reported rather than panicking).
    LanguageUnavailable(String),
}

/// What one parse of a file yields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSyntax {
    /// Definitions in source order; `parent` links form the outline.
    pub symbols: Vec<Symbol>,
    /// Retrieval chunks covering the file's code.
    pub chunks: Vec<Chunk>,
    pub notes: Vec<SyntaxNote>,
}

/// The symbols of a text.
pub fn symbols(lang: LanguageId, text: &str) -> Vec<Symbol> {
    analyze(lang, text).symbols
}

/// Parse a text and nothing else, the way [`analyze`] parses it (same
/// grammar, same time limit): the floor an index built from syntax trees is
/// measured against. Returns whether a tree came out.
pub fn parse_only(lang: LanguageId, text: &str) -> bool {
    let mut parser = Parser::new();
    if parser.set_language(&lang.grammar()).is_err() {
        return false;
    }
    let started = Instant::now();
    let bytes = text.as_bytes();
    let mut over_time = |_: &tree_sitter::ParseState| started.elapsed() > TIME_LIMIT;
    parser
        .parse_with_options(
            &mut |offset, _| {
                if offset < bytes.len() {
                    &bytes[offset..]
                } else {
                    &[]
                }
            },
            None,
            Some(ParseOptions::new().progress_callback(&mut over_time)),
        )
        .is_some()
}

/// Parse a text once and extract its symbols and chunks. Never panics on
/// user text: what cannot be parsed is reported in `notes`.
pub fn analyze(lang: LanguageId, text: &str) -> FileSyntax {
    analyze_edit(lang, text, None).0
}

/// A file's syntax tree, kept to parse the file's next version: tree-sitter
/// reuses every part of it that an edit did not touch, so an editor's
/// keystroke re-parses a few nodes, not the file.
#[derive(Clone)]
pub struct SyntaxTree {
    lang: LanguageId,
    tree: tree_sitter::Tree,
}

impl std::fmt::Debug for SyntaxTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntaxTree")
            .field("lang", &self.lang)
            .finish()
    }
}

/// [`analyze`], parsing incrementally from `previous` (the text a tree was
/// parsed from, and the tree) when given and of the same language. Returns
/// the tree of `text` for the next edit (none when the parse timed out or
/// the language is unavailable). Where the text has syntax errors,
/// tree-sitter's error recovery may place them differently than a parse from
/// scratch would.
pub fn analyze_edit(
    lang: LanguageId,
    text: &str,
    previous: Option<(&str, &SyntaxTree)>,
) -> (FileSyntax, Option<SyntaxTree>) {
    let mut result = FileSyntax::default();
    let query = match lang.tags_query() {
        Ok(query) => query,
        Err(error) => {
            result
                .notes
                .push(SyntaxNote::LanguageUnavailable(error.to_string()));
            return (result, None);
        }
    };
    let mut parser = Parser::new();
    if let Err(error) = parser.set_language(&lang.grammar()) {
        result
            .notes
            .push(SyntaxNote::LanguageUnavailable(error.to_string()));
        return (result, None);
    }
    let old_tree =
        previous
            .filter(|(_, previous)| previous.lang == lang)
            .map(|(old_text, previous)| {
                let mut tree = previous.tree.clone();
                tree.edit(&edit_between(old_text.as_bytes(), text.as_bytes()));
                tree
            });
    let started = Instant::now();
    let bytes = text.as_bytes();
    let mut over_time = |_: &tree_sitter::ParseState| started.elapsed() > TIME_LIMIT;
    let tree = parser.parse_with_options(
        &mut |offset, _| {
            if offset < bytes.len() {
                &bytes[offset..]
            } else {
                &[]
            }
        },
        old_tree.as_ref(),
        Some(ParseOptions::new().progress_callback(&mut over_time)),
    );
    let Some(tree) = tree else {
        result.notes.push(SyntaxNote::TimedOut);
        return (result, None);
    };
    let root = tree.root_node();
    if root.has_error() {
        result.notes.push(SyntaxNote::SyntaxError {
            line: first_error_line(root),
        });
    }

    let lines = LineIndex::new(text);
    let (found, mut links) = definitions(lang, query, root, text, &mut result.notes);
    let mut symbols: Vec<Symbol> = Vec::with_capacity(found.len());
    let mut byte_ranges = Vec::with_capacity(found.len());
    // Open definitions enclosing the current one, innermost last.
    let mut stack: Vec<usize> = Vec::new();
    for definition in found {
        while let Some(&top) = stack.last() {
            let (start, end) = byte_ranges[top];
            let same = (start, end) == (definition.node_start, definition.node_end);
            if start <= definition.node_start && definition.node_end <= end && !same {
                break;
            }
            stack.pop();
        }
        let parent = stack.last().copied();
        let mut kind = definition.kind;
        if kind == SymbolKind::Function && parent.is_some_and(|p| symbols[p].kind.is_type_like()) {
            kind = SymbolKind::Method;
        }
        if kind == SymbolKind::Variable
            && lang == LanguageId::Python
            && is_upper_case(&definition.name)
        {
            kind = SymbolKind::Constant;
        }
        let container = definition
            .container
            .or_else(|| parent.map(|p| symbols[p].name.to_string()));
        symbols.push(Symbol {
            name: definition.name.into(),
            kind,
            range: lines.span(text, definition.node_start..definition.node_end),
            selection_range: lines.span(text, definition.name_start..definition.name_end),
            container: container.map(Into::into),
            parent: parent.map(|p| p as u32),
            signature: signature(text, definition.node_start, definition.node_end).into(),
            doc: doc_comment(lang, definition.node, text, &mut links).map(Into::into),
        });
        byte_ranges.push((definition.node_start, definition.node_end));
        stack.push(symbols.len() - 1);
    }
    result.chunks = chunks::chunks(text, &lines, &symbols);
    result.symbols = symbols;
    (result, Some(SyntaxTree { lang, tree }))
}

/// The edit that turns `old` into `new`: everything between their common
/// prefix and their common suffix was replaced.
fn edit_between(old: &[u8], new: &[u8]) -> tree_sitter::InputEdit {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let room = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let (old_end, new_end) = (old.len() - suffix, new.len() - suffix);
    tree_sitter::InputEdit {
        start_byte: prefix,
        old_end_byte: old_end,
        new_end_byte: new_end,
        start_position: point_at(old, prefix),
        old_end_position: point_at(old, old_end),
        new_end_position: point_at(new, new_end),
    }
}

/// The row and byte column of a byte offset.
fn point_at(text: &[u8], offset: usize) -> tree_sitter::Point {
    let before = &text[..offset];
    let row = before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    tree_sitter::Point {
        row,
        column: offset - line_start,
    }
}

/// One `@definition` match, before nesting is worked out.
struct Definition<'tree> {
    node: Node<'tree>,
    name: String,
    kind: SymbolKind,
    container: Option<String>,
    node_start: usize,
    node_end: usize,
    name_start: usize,
    name_end: usize,
    pattern: usize,
}

/// Parents and previous siblings of a tree's nodes, for doc comments.
/// tree-sitter finds a node's parent and previous sibling by walking down
/// from the root, which costs as much as the siblings before it: quadratic
/// over a file of a thousand definitions. The tags walk records the parents
/// it passes, and each parent's children are listed once.
struct Links<'tree> {
    /// Parents by node id, as the walk met them; `None`: ask the tree.
    parents: Option<HashMap<usize, Node<'tree>>>,
    /// Listed parents' children, by parent id.
    children: HashMap<usize, Vec<Node<'tree>>>,
    /// A listed child's parent id and index.
    position: HashMap<usize, (usize, usize)>,
}

impl<'tree> Links<'tree> {
    fn new() -> Links<'tree> {
        Links {
            parents: None,
            children: HashMap::new(),
            position: HashMap::new(),
        }
    }

    fn parent(&self, node: Node<'tree>) -> Option<Node<'tree>> {
        match &self.parents {
            Some(parents) => parents.get(&node.id()).copied().or_else(|| node.parent()),
            None => node.parent(),
        }
    }

    /// The previous sibling (named only, or any).
    fn prev(&mut self, node: Node<'tree>, named: bool) -> Option<Node<'tree>> {
        let from_tree = |node: Node<'tree>| {
            if named {
                node.prev_named_sibling()
            } else {
                node.prev_sibling()
            }
        };
        if self.parents.is_none() {
            return from_tree(node);
        }
        if !self.position.contains_key(&node.id()) {
            let parent = self.parent(node)?;
            if !self.children.contains_key(&parent.id()) {
                let mut cursor = parent.walk();
                let list: Vec<Node<'tree>> = parent.children(&mut cursor).collect();
                for (index, child) in list.iter().enumerate() {
                    self.position.insert(child.id(), (parent.id(), index));
                }
                self.children.insert(parent.id(), list);
            }
        }
        let Some(&(parent, index)) = self.position.get(&node.id()) else {
            return from_tree(node);
        };
        self.children[&parent][..index]
            .iter()
            .rev()
            .find(|sibling| !named || sibling.is_named())
            .copied()
    }
}

fn definitions<'tree>(
    lang: LanguageId,
    query: &tree_sitter::Query,
    root: Node<'tree>,
    text: &str,
    notes: &mut Vec<SyntaxNote>,
) -> (Vec<Definition<'tree>>, Links<'tree>) {
    let started = Instant::now();
    let mut cursor = QueryCursor::new();
    cursor.set_match_limit(4096);
    // Keyed by the name node's start: the earliest pattern wins (see queries/README.md).
    let mut by_name: HashMap<usize, Definition<'tree>> = HashMap::new();
    let mut links = Links::new();
    match lang.tags_walk() {
        None => collect(&mut cursor, query, root, text, started, &mut by_name),
        Some(walk) => {
            // Most of a tree is expressions, where no definition sits: walk
            // the containers only and match the query from each node a
            // pattern can start at, rather than letting the query cursor
            // visit every node.
            cursor.set_max_start_depth(Some(0));
            let mut parents = HashMap::new();
            // The ancestors of the cursor's node.
            let mut stack: Vec<Node<'tree>> = Vec::new();
            let mut nodes = root.walk();
            'walk: loop {
                let node = nodes.node();
                if let Some(&parent) = stack.last() {
                    parents.insert(node.id(), parent);
                }
                let kind = node.kind_id();
                if walk.is_root(kind) {
                    collect(&mut cursor, query, node, text, started, &mut by_name);
                }
                if walk.descends(kind) && nodes.goto_first_child() {
                    stack.push(node);
                    continue;
                }
                while !nodes.goto_next_sibling() {
                    if !nodes.goto_parent() {
                        break 'walk;
                    }
                    stack.pop();
                }
                if started.elapsed() > TIME_LIMIT {
                    break;
                }
            }
            links.parents = Some(parents);
        }
    }
    if started.elapsed() > TIME_LIMIT {
        notes.push(SyntaxNote::TimedOut);
    }
    if cursor.did_exceed_match_limit() {
        notes.push(SyntaxNote::MatchLimitExceeded);
    }
    let mut definitions: Vec<Definition<'tree>> = by_name.into_values().collect();
    // Outer definitions before the ones they enclose.
    definitions.sort_by(|a, b| {
        a.node_start
            .cmp(&b.node_start)
            .then(b.node_end.cmp(&a.node_end))
            .then(a.name_start.cmp(&b.name_start))
    });
    (definitions, links)
}

/// Run the tags query from `node` and keep its definitions in `by_name`.
fn collect<'tree>(
    cursor: &mut QueryCursor,
    query: &tree_sitter::Query,
    node: Node<'tree>,
    text: &str,
    started: Instant,
    by_name: &mut HashMap<usize, Definition<'tree>>,
) {
    let capture_names = query.capture_names();
    let mut over_time = |_: &tree_sitter::QueryCursorState| started.elapsed() > TIME_LIMIT;
    let mut matches = cursor.matches_with_options(
        query,
        node,
        text.as_bytes(),
        QueryCursorOptions::new().progress_callback(&mut over_time),
    );
    while let Some(found) = matches.next() {
        let mut definition_node = None;
        let mut kind = None;
        let mut name_node = None;
        let mut container = None;
        for capture in found.captures {
            let capture_name = capture_names[capture.index as usize];
            if let Some(kind_name) = capture_name.strip_prefix("definition.") {
                definition_node = Some(capture.node);
                kind = SymbolKind::from_name(kind_name);
            } else if capture_name == "name" {
                name_node = Some(capture.node);
            } else if capture_name == "container" {
                container = capture
                    .node
                    .utf8_text(text.as_bytes())
                    .ok()
                    .map(str::to_string);
            }
        }
        let (Some(node), Some(kind), Some(name_node)) = (definition_node, kind, name_node) else {
            continue;
        };
        let Ok(name) = name_node.utf8_text(text.as_bytes()) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        match by_name.get(&name_node.start_byte()) {
            Some(existing) if existing.pattern <= found.pattern_index => continue,
            _ => {}
        }
        // Some nodes (a C `#define`) end with their line's newline; the range should not.
        let mut node_end = node.end_byte();
        while node_end > node.start_byte() && matches!(text.as_bytes()[node_end - 1], b'\n' | b'\r')
        {
            node_end -= 1;
        }
        let definition = Definition {
            node,
            name: name.to_string(),
            kind,
            container,
            node_start: node.start_byte(),
            node_end,
            name_start: name_node.start_byte(),
            name_end: name_node.end_byte(),
            pattern: found.pattern_index,
        };
        by_name.insert(definition.name_start, definition);
    }
}

/// The zero-based line of the first error or missing node, found without recursion.
fn first_error_line(root: Node<'_>) -> u32 {
    let mut node = root;
    'descend: loop {
        if node.is_error() || node.is_missing() {
            return node.start_position().row as u32;
        }
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.is_error() || child.is_missing() || child.has_error() {
                node = child;
                continue 'descend;
            }
        }
        return node.start_position().row as u32;
    }
}

fn signature(text: &str, start: usize, end: usize) -> String {
    let body = &text[start..end];
    let line = body.split('\n').next().unwrap_or("").trim();
    truncate(line, SIGNATURE_MAX_BYTES).to_string()
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn is_upper_case(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase()) && !name.chars().any(|c| c.is_ascii_lowercase())
}

/// The doc of a definition: a Python docstring, or the comments right above it.
fn doc_comment<'tree>(
    lang: LanguageId,
    node: Node<'tree>,
    text: &str,
    links: &mut Links<'tree>,
) -> Option<String> {
    if lang == LanguageId::Python {
        if let Some(doc) = python_docstring(node, text) {
            return Some(doc);
        }
    }
    // Comments sit above the outermost wrapper (decorators, `export`, templates,
    // a Go `type`/`const`/`var` keyword) when the definition is its first part.
    const WRAPPERS: &[&str] = &[
        "decorated_definition",
        "export_statement",
        "template_declaration",
        "type_declaration",
        "const_declaration",
        "var_declaration",
    ];
    let mut anchor = node;
    while let Some(parent) = links.parent(anchor) {
        let first_part = links
            .prev(anchor, true)
            .is_none_or(|before| before.kind() == "decorator");
        if WRAPPERS.contains(&parent.kind()) && first_part {
            anchor = parent;
        } else {
            break;
        }
    }
    let mut comments: Vec<&str> = Vec::new();
    let mut next_row = anchor.start_position().row;
    let mut sibling = links.prev(anchor, false);
    while let Some(current) = sibling {
        if comments.len() >= DOC_MAX_COMMENTS {
            break;
        }
        let kind = current.kind();
        if kind == "attribute_item" || kind == "decorator" {
            next_row = current.start_position().row;
            sibling = links.prev(current, false);
            continue;
        }
        if !kind.contains("comment") || current.end_position().row + 1 < next_row {
            break;
        }
        // A comment trailing code on the same line belongs to that code.
        if let Some(before) = links.prev(current, false) {
            if before.end_position().row == current.start_position().row
                && !before.kind().contains("comment")
            {
                break;
            }
        }
        let Ok(comment) = current.utf8_text(text.as_bytes()) else {
            break;
        };
        if lang == LanguageId::Rust && !is_rust_doc_comment(comment) {
            break;
        }
        comments.push(comment);
        next_row = current.start_position().row;
        sibling = links.prev(current, false);
    }
    if comments.is_empty() {
        return None;
    }
    comments.reverse();
    let cleaned: Vec<String> = comments
        .iter()
        .flat_map(|comment| clean_comment(comment))
        .collect();
    finish_doc(&cleaned.join("\n"))
}

fn is_rust_doc_comment(comment: &str) -> bool {
    (comment.starts_with("///") && !comment.starts_with("////"))
        || (comment.starts_with("/**") && !comment.starts_with("/***"))
}

fn clean_comment(comment: &str) -> Vec<String> {
    let comment = comment.trim();
    let is_block = comment.starts_with("/*");
    let body = if is_block {
        comment
            .trim_start_matches('/')
            .trim_start_matches('*')
            .trim_end_matches('/')
            .trim_end_matches('*')
    } else {
        comment
    };
    body.lines()
        .map(|line| {
            let line = line.trim();
            let line = if is_block {
                line.strip_prefix('*').unwrap_or(line)
            } else {
                line.trim_start_matches('/')
                    .trim_start_matches('!')
                    .trim_start_matches('#')
            };
            line.strip_prefix(' ')
                .unwrap_or(line)
                .trim_end()
                .to_string()
        })
        .collect()
}

fn python_docstring(node: Node<'_>, text: &str) -> Option<String> {
    let body = node.child_by_field_name("body")?;
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" {
        return None;
    }
    let string = first.named_child(0)?;
    if string.kind() != "string" {
        return None;
    }
    let raw = string.utf8_text(text.as_bytes()).ok()?;
    let unprefixed = raw.trim_start_matches(|c: char| "rRuUbBfF".contains(c));
    let inner = ["\"\"\"", "'''", "\"", "'"].iter().find_map(|quote| {
        unprefixed
            .strip_prefix(quote)
            .and_then(|s| s.strip_suffix(quote))
    })?;
    Some(dedent(inner)).and_then(|doc| finish_doc(&doc))
}

/// Remove the common indentation of all lines but the first (like Python's `inspect.cleandoc`).
fn dedent(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim().to_string();
    let rest: Vec<&str> = lines.collect();
    let indent = rest
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = vec![first];
    out.extend(
        rest.iter()
            .map(|line| line.get(indent..).unwrap_or("").trim_end().to_string()),
    );
    out.join("\n")
}

fn finish_doc(doc: &str) -> Option<String> {
    let doc = doc.trim();
    if doc.is_empty() {
        None
    } else {
        Some(truncate(doc, DOC_MAX_BYTES).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_stays_small() {
        // An index keeps every symbol of a project in memory (1.8 M for the
        // cargo registry of the index bench): each of its strings is a
        // `Box<str>` (16 bytes, no spare capacity) rather than a `String`.
        assert!(
            std::mem::size_of::<Symbol>() <= 128,
            "{}",
            std::mem::size_of::<Symbol>()
        );
    }

    fn names(lang: LanguageId, text: &str) -> Vec<(String, SymbolKind, Option<String>)> {
        symbols(lang, text)
            .into_iter()
            .map(|s| (s.name.into(), s.kind, s.container.map(Into::into)))
            .collect()
    }

    #[test]
    fn rust_methods_get_their_impl_as_container() {
        let found = names(
            LanguageId::Rust,
            "struct P;\nimpl P {\n    fn new() -> P { P }\n}\n",
        );
        assert_eq!(
            found,
            vec![
                ("P".into(), SymbolKind::Struct, None),
                ("P".into(), SymbolKind::Impl, None),
                ("new".into(), SymbolKind::Method, Some("P".into())),
            ]
        );
    }

    #[test]
    fn the_tags_walk_reaches_nested_definitions_and_their_docs() {
        let rust = "mod outer {\n    /// Inner.\n    pub mod inner {\n        #[derive(Debug)]\n        /// A point.\n        pub struct P { x: i32 }\n        impl P {\n            /// Makes one.\n            fn new() -> P { fn helper() {} let _ = if true { struct InIf; }; P { x: 0 } }\n        }\n    }\n}\nconst _: () = { fn in_const() {} };\nfn main() { call(|| { fn in_closure_arg() {} }); }\n";
        let found = symbols(LanguageId::Rust, rust);
        let named = |name: &str| found.iter().find(|s| *s.name == *name);
        for name in [
            "outer", "inner", "P", "x", "new", "helper", "InIf", "in_const", "main",
        ] {
            assert!(named(name).is_some(), "{name} in {found:#?}");
        }
        assert_eq!(named("new").map(|s| s.kind), Some(SymbolKind::Method));
        assert_eq!(
            named("inner").and_then(|s| s.doc.as_deref()),
            Some("Inner.")
        );
        assert_eq!(named("P").and_then(|s| s.doc.as_deref()), Some("A point."));
        assert_eq!(
            named("new").and_then(|s| s.doc.as_deref()),
            Some("Makes one.")
        );
        // Definitions inside call arguments are expressions: not walked.
        assert!(named("in_closure_arg").is_none());

        let python = "X = 1\nif True:\n    def in_if(): pass\nclass A:\n    y = 2\n    class B:\n        @property\n        def deep(self):\n            \"\"\"Deep.\"\"\"\n            def local(): pass\n";
        let found = symbols(LanguageId::Python, python);
        let named = |name: &str| found.iter().find(|s| *s.name == *name);
        for name in ["X", "in_if", "A", "y", "B", "deep", "local"] {
            assert!(named(name).is_some(), "{name} in {found:#?}");
        }
        assert_eq!(named("deep").and_then(|s| s.doc.as_deref()), Some("Deep."));
        assert_eq!(
            named("deep").and_then(|s| s.container.as_deref()),
            Some("B")
        );
    }

    #[test]
    fn empty_and_garbage_text_give_no_symbols_and_no_panic() {
        for lang in LanguageId::ALL {
            assert!(symbols(lang, "").is_empty());
            let garbage = "\u{0}\u{1}}{)(][ fn class def \u{fffd} \"\"\" /* ";
            let _ = analyze(lang, garbage);
        }
    }

    #[test]
    fn deep_nesting_is_parsed_without_overflowing_the_stack() {
        let depth = 10_000;
        let text = format!(
            "fn f() {{ let x = {}1{}; }}\n",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let file = analyze(LanguageId::Rust, &text);
        assert_eq!(file.symbols.len(), 1);
        let python = format!(
            "x = {}1{}\ndef g(): pass\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let file = analyze(LanguageId::Python, &python);
        assert!(file.symbols.iter().any(|s| &*s.name == "g"));
        let braces = format!(
            "int main() {{ {} }}\n",
            "{".repeat(depth) + &"}".repeat(depth)
        );
        let file = analyze(LanguageId::C, &braces);
        assert_eq!(&*file.symbols[0].name, "main");
    }

    #[test]
    fn syntax_errors_are_reported_with_what_could_be_parsed() {
        let file = analyze(LanguageId::Rust, "fn ok() {}\n\nfn broken( {\n");
        assert!(file.symbols.iter().any(|s| &*s.name == "ok"));
        assert!(
            matches!(file.notes[0], SyntaxNote::SyntaxError { .. }),
            "{:?}",
            file.notes
        );
    }
}
