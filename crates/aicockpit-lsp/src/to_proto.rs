//! Engine → LSP conversions.

use std::path::Path;

use aicockpit_engine::ColumnUnit;
use aicockpit_engine::{Pos, Span, Symbol, SymbolKind};
use tower_lsp::lsp_types::{self, DocumentSymbol, Position, Range, Url};

/// Outline nesting deeper than this is flattened onto the deepest allowed parent,
/// so pathological files cannot blow the serializer's stack.
pub const MAX_OUTLINE_DEPTH: usize = 64;

pub fn position(pos: Pos, unit: ColumnUnit) -> Position {
    let character = match unit {
        ColumnUnit::Utf8 => pos.col,
        ColumnUnit::Utf16 => pos.col_utf16,
    };
    Position {
        line: pos.line,
        character,
    }
}

pub fn range(span: Span, unit: ColumnUnit) -> Range {
    Range {
        start: position(span.start, unit),
        end: position(span.end, unit),
    }
}

pub fn url(path: &Path) -> Option<Url> {
    Url::from_file_path(path).ok()
}

pub fn symbol_kind(kind: SymbolKind) -> lsp_types::SymbolKind {
    match kind {
        SymbolKind::Module => lsp_types::SymbolKind::MODULE,
        SymbolKind::Namespace => lsp_types::SymbolKind::NAMESPACE,
        SymbolKind::Class => lsp_types::SymbolKind::CLASS,
        SymbolKind::Struct => lsp_types::SymbolKind::STRUCT,
        SymbolKind::Enum => lsp_types::SymbolKind::ENUM,
        SymbolKind::Interface => lsp_types::SymbolKind::INTERFACE,
        SymbolKind::Impl => lsp_types::SymbolKind::OBJECT,
        SymbolKind::Function | SymbolKind::Macro => lsp_types::SymbolKind::FUNCTION,
        SymbolKind::Method => lsp_types::SymbolKind::METHOD,
        SymbolKind::Constructor => lsp_types::SymbolKind::CONSTRUCTOR,
        SymbolKind::Field => lsp_types::SymbolKind::FIELD,
        SymbolKind::EnumMember => lsp_types::SymbolKind::ENUM_MEMBER,
        SymbolKind::Variable => lsp_types::SymbolKind::VARIABLE,
        SymbolKind::Constant => lsp_types::SymbolKind::CONSTANT,
        SymbolKind::TypeAlias => lsp_types::SymbolKind::TYPE_PARAMETER,
    }
}

/// The symbol kinds a client takes when it declares no `valueSet`: File to Array.
const DEFAULT_SYMBOL_KINDS: std::ops::RangeInclusive<i32> = 1..=18;

/// `kind`, or the nearest kind the client declared it can show: clients from
/// before LSP 3.x know only File to Array, and may declare any subset.
pub fn symbol_kind_within(
    kind: lsp_types::SymbolKind,
    value_set: Option<&[lsp_types::SymbolKind]>,
) -> lsp_types::SymbolKind {
    use lsp_types::SymbolKind as K;
    let known = |k: K| match value_set {
        Some(set) if !set.is_empty() => set.contains(&k),
        _ => serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_i64())
            .is_some_and(|n| DEFAULT_SYMBOL_KINDS.contains(&(n as i32))),
    };
    let fallbacks: &[K] = match kind {
        K::STRUCT | K::OBJECT => &[K::CLASS, K::INTERFACE],
        K::ENUM_MEMBER => &[K::CONSTANT, K::FIELD, K::PROPERTY],
        K::TYPE_PARAMETER => &[K::CLASS, K::INTERFACE, K::VARIABLE],
        K::CONSTRUCTOR => &[K::METHOD, K::FUNCTION],
        K::METHOD => &[K::FUNCTION],
        K::NAMESPACE => &[K::MODULE, K::PACKAGE],
        K::MODULE => &[K::NAMESPACE, K::PACKAGE, K::FILE],
        K::INTERFACE | K::ENUM => &[K::CLASS],
        K::CONSTANT | K::FIELD => &[K::VARIABLE, K::PROPERTY],
        _ => &[],
    };
    std::iter::once(kind)
        .chain(fallbacks.iter().copied())
        .chain([K::VARIABLE, K::FUNCTION, K::CLASS, K::FILE])
        .find(|&k| known(k))
        .or_else(|| value_set.and_then(|set| set.first().copied()))
        .unwrap_or(kind)
}

/// Markdown as plain text, for clients that take no Markdown: code fences
/// and emphasis marks go, the text stays.
pub fn markdown_to_plaintext(markdown: &str) -> String {
    markdown
        .lines()
        .filter(|line| !line.trim_start().starts_with("```"))
        .map(|line| line.replace(['`', '*'], ""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An outline flattened for clients without `hierarchicalDocumentSymbolSupport`:
/// each symbol with its parent's name as the container.
#[allow(deprecated)] // `SymbolInformation::deprecated` must still be filled in.
pub fn flat_document_symbols(
    outline: Vec<DocumentSymbol>,
    uri: &Url,
) -> Vec<lsp_types::SymbolInformation> {
    let mut flat = Vec::new();
    let mut stack: Vec<(DocumentSymbol, Option<String>)> =
        outline.into_iter().rev().map(|s| (s, None)).collect();
    while let Some((mut symbol, container)) = stack.pop() {
        let children = symbol.children.take().unwrap_or_default();
        stack.extend(
            children
                .into_iter()
                .rev()
                .map(|child| (child, Some(symbol.name.clone()))),
        );
        flat.push(lsp_types::SymbolInformation {
            name: symbol.name,
            kind: symbol.kind,
            tags: None,
            deprecated: None,
            location: lsp_types::Location {
                uri: uri.clone(),
                range: symbol.range,
            },
            container_name: container,
        });
    }
    flat
}

/// Every kind in an outline mapped into the client's `valueSet`.
pub fn restrict_outline_kinds(
    outline: &mut [DocumentSymbol],
    value_set: Option<&[lsp_types::SymbolKind]>,
) {
    let mut stack: Vec<&mut DocumentSymbol> = outline.iter_mut().collect();
    while let Some(symbol) = stack.pop() {
        symbol.kind = symbol_kind_within(symbol.kind, value_set);
        if let Some(children) = symbol.children.as_mut() {
            stack.extend(children.iter_mut());
        }
    }
}

/// A hierarchical outline from symbols in source order with parent links.
#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be filled in.
pub fn document_symbols(symbols: &[Symbol], unit: ColumnUnit) -> Vec<DocumentSymbol> {
    // Effective parents, with nesting capped at MAX_OUTLINE_DEPTH.
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(symbols.len());
    let mut depth: Vec<usize> = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        let mut p = symbol
            .parent
            .map(|p| p as usize)
            .filter(|&p| p < parent.len());
        while let Some(candidate) = p {
            if depth[candidate] < MAX_OUTLINE_DEPTH {
                break;
            }
            p = parent[candidate];
        }
        depth.push(p.map_or(0, |p| depth[p] + 1));
        parent.push(p);
    }
    let mut nodes: Vec<Option<DocumentSymbol>> = symbols
        .iter()
        .map(|symbol| {
            let detail = match (&symbol.container, symbol.signature.is_empty()) {
                (_, false) => Some(symbol.signature.to_string()),
                (Some(container), true) => Some(container.to_string()),
                (None, true) => None,
            };
            Some(DocumentSymbol {
                name: symbol.name.to_string(),
                detail,
                kind: symbol_kind(symbol.kind),
                tags: None,
                deprecated: None,
                range: range(symbol.range, unit),
                selection_range: range(symbol.selection_range, unit),
                children: None,
            })
        })
        .collect();
    // Children come after their parents, so a reverse pass finishes each child first.
    let mut roots = Vec::new();
    for index in (0..nodes.len()).rev() {
        let Some(node) = nodes[index].take() else {
            continue;
        };
        match parent[index].and_then(|p| nodes[p].as_mut()) {
            Some(parent) => parent.children.get_or_insert_with(Vec::new).push(node),
            None => roots.push(node),
        }
    }
    roots.reverse();
    let mut stack: Vec<&mut DocumentSymbol> = roots.iter_mut().collect();
    while let Some(node) = stack.pop() {
        if let Some(children) = node.children.as_mut() {
            children.reverse();
            stack.extend(children.iter_mut());
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicockpit_engine::{analyze, LanguageId};

    #[test]
    fn outline_nests_in_source_order() {
        let text = "struct A;\nimpl A {\n    fn one() {}\n    fn two() {}\n}\nfn three() {}\n";
        let outline = document_symbols(&analyze(LanguageId::Rust, text).symbols, ColumnUnit::Utf16);
        let names: Vec<&str> = outline.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["A", "A", "three"]);
        let methods: Vec<&str> = outline[1]
            .children
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(methods, ["one", "two"]);
    }

    #[test]
    fn kinds_outside_the_clients_set_fall_back_to_known_ones() {
        use lsp_types::SymbolKind as K;
        // No valueSet: File to Array only.
        assert_eq!(symbol_kind_within(K::STRUCT, None), K::CLASS);
        assert_eq!(symbol_kind_within(K::ENUM_MEMBER, None), K::CONSTANT);
        assert_eq!(symbol_kind_within(K::TYPE_PARAMETER, None), K::CLASS);
        assert_eq!(symbol_kind_within(K::FUNCTION, None), K::FUNCTION);
        let all: Vec<K> = (1..=26)
            .map(|n| serde_json::from_value(serde_json::json!(n)).unwrap())
            .collect();
        assert_eq!(symbol_kind_within(K::STRUCT, Some(&all)), K::STRUCT);
        assert_eq!(
            symbol_kind_within(K::METHOD, Some(&[K::FUNCTION, K::VARIABLE])),
            K::FUNCTION
        );
        assert_eq!(symbol_kind_within(K::STRUCT, Some(&[K::FILE])), K::FILE);
    }

    #[test]
    fn flat_outlines_name_their_containers() {
        let text = "struct A;\nimpl A {\n    fn one() {}\n}\n";
        let outline = document_symbols(&analyze(LanguageId::Rust, text).symbols, ColumnUnit::Utf16);
        let uri = Url::parse("file:///x/a.rs").unwrap();
        let flat = flat_document_symbols(outline, &uri);
        let names: Vec<(&str, Option<&str>)> = flat
            .iter()
            .map(|s| (s.name.as_str(), s.container_name.as_deref()))
            .collect();
        assert_eq!(names, [("A", None), ("A", None), ("one", Some("A"))]);
    }

    #[test]
    fn plaintext_hover_keeps_the_words() {
        let plain = markdown_to_plaintext("```rust\nfn f()\n```\n\n*function* in `m`");
        assert_eq!(plain, "fn f()\n\nfunction in m");
    }

    #[test]
    fn deep_outlines_are_capped() {
        let depth = 500;
        let text = format!("{}{}", "mod m { ".repeat(depth), "}".repeat(depth));
        let symbols = analyze(LanguageId::Rust, &text).symbols;
        assert_eq!(symbols.len(), depth);
        let outline = document_symbols(&symbols, ColumnUnit::Utf16);
        let mut deepest = 0;
        let mut level: Vec<&DocumentSymbol> = outline.iter().collect();
        while !level.is_empty() {
            deepest += 1;
            level = level
                .iter()
                .flat_map(|s| s.children.iter().flatten())
                .collect();
        }
        assert_eq!(deepest, MAX_OUTLINE_DEPTH + 1);
        assert!(serde_json::to_string(&outline).is_ok());
    }
}
