//! Chunks: the pieces of a file that retrieval returns — one per function or
//! class when it fits, windows of lines otherwise, and windows over the code
//! between definitions.

use std::ops::Range;

use crate::symbols::{Symbol, SymbolKind};
use crate::text::{LineIndex, Span};

/// A definition longer than this many lines is split into its members, or into windows.
pub const CHUNK_MAX_LINES: u32 = 120;
/// Code between definitions is cut into windows of at most this many lines.
const GAP_WINDOW_LINES: u32 = 40;

/// A piece of a file for retrieval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// First and last line (inclusive) and the columns of the byte range.
    pub span: Span,
    /// The byte range in the text.
    pub bytes: Range<usize>,
    /// The symbol (index into the file's symbols) whose body this chunk is,
    /// or that encloses this window.
    pub symbol: Option<u32>,
}

fn is_chunk_kind(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Module
            | SymbolKind::Namespace
            | SymbolKind::Class
            | SymbolKind::Struct
            | SymbolKind::Enum
            | SymbolKind::Interface
            | SymbolKind::Impl
            | SymbolKind::Function
            | SymbolKind::Method
            | SymbolKind::Constructor
            | SymbolKind::Macro
    )
}

/// Cut a text into chunks along its symbols (as returned by `analyze`).
pub(crate) fn chunks(text: &str, lines: &LineIndex, symbols: &[Symbol]) -> Vec<Chunk> {
    // The nearest chunk-worthy ancestor of each chunk-worthy symbol; slot 0 is the file.
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); symbols.len() + 1];
    for (index, symbol) in symbols.iter().enumerate() {
        if !is_chunk_kind(symbol.kind) {
            continue;
        }
        let mut parent = symbol.parent;
        while let Some(p) = parent {
            if is_chunk_kind(symbols[p as usize].kind) {
                break;
            }
            parent = symbols[p as usize].parent;
        }
        let slot = parent.map_or(0, |p| p as usize + 1);
        children[slot].push(index as u32);
    }

    let mut out = Vec::new();
    let last_line = lines.line_count().saturating_sub(1) as u32;
    // Work list of regions: (first line, last line, symbol, whether it may stay whole).
    let mut work: Vec<(u32, u32, Option<u32>)> = vec![(0, last_line, None)];
    while let Some((first, last, symbol)) = work.pop() {
        let fits = last - first < CHUNK_MAX_LINES;
        if let Some(index) = symbol.filter(|_| fits) {
            push_chunk(text, lines, first, last, Some(index), &mut out);
            continue;
        }
        let members = &children[symbol.map_or(0, |s| s as usize + 1)];
        if members.is_empty() && symbol.is_some() {
            windows(text, lines, first, last, CHUNK_MAX_LINES, symbol, &mut out);
            continue;
        }
        let mut cursor = first;
        let mut pending = Vec::new();
        for &member in members {
            let range = symbols[member as usize].range;
            let (start, end) = (range.start.line.max(cursor), range.end.line.min(last));
            if start > end || range.start.line < cursor {
                continue; // Shares a line with the previous member.
            }
            // The comments, attributes and decorators right above a
            // definition belong to its chunk: its doc is searched there.
            let start = leading_lines(text, lines, cursor, start);
            if start > cursor {
                windows(
                    text,
                    lines,
                    cursor,
                    start - 1,
                    GAP_WINDOW_LINES,
                    symbol,
                    &mut out,
                );
            }
            pending.push((start, end, Some(member)));
            cursor = end + 1;
        }
        if cursor <= last {
            windows(
                text,
                lines,
                cursor,
                last,
                GAP_WINDOW_LINES,
                symbol,
                &mut out,
            );
        }
        work.extend(pending.into_iter().rev());
    }
    out.sort_by_key(|chunk| chunk.bytes.start);
    out
}

/// The most lines of comments and attributes a chunk takes in above its definition.
const LEADING_MAX_LINES: u32 = 60;

/// The first line of the run of comment, attribute and decorator lines
/// that ends right above line `start` (no blank line between), not above
/// `floor`; `start` when there is none. Inner docs (`//!`, `#![…]`) belong
/// to the enclosing module, not to the next definition.
fn leading_lines(text: &str, lines: &LineIndex, floor: u32, start: u32) -> u32 {
    let mut first = start;
    while first > floor && start - first < LEADING_MAX_LINES {
        let Some(range) = lines.line_range(text, first as usize - 1) else {
            break;
        };
        let line = text[range].trim();
        let leading = (line.starts_with("//") && !line.starts_with("//!"))
            || line.starts_with("/*")
            || line.starts_with('*')
            || line.starts_with("#[")
            || line.starts_with('@')
            || line == "#"
            || line.starts_with("# ")
            || line.starts_with("--");
        if !leading {
            break;
        }
        first -= 1;
    }
    first
}

fn windows(
    text: &str,
    lines: &LineIndex,
    first: u32,
    last: u32,
    size: u32,
    symbol: Option<u32>,
    out: &mut Vec<Chunk>,
) {
    let mut start = first;
    while start <= last {
        let end = (start + size - 1).min(last);
        push_chunk(text, lines, start, end, symbol, out);
        start = end + 1;
    }
}

fn push_chunk(
    text: &str,
    lines: &LineIndex,
    first: u32,
    last: u32,
    symbol: Option<u32>,
    out: &mut Vec<Chunk>,
) {
    let (Some(first_range), Some(last_range)) = (
        lines.line_range(text, first as usize),
        lines.line_range(text, last as usize),
    ) else {
        return;
    };
    let bytes = first_range.start..last_range.end;
    if text[bytes.clone()].trim().is_empty() {
        return;
    }
    out.push(Chunk {
        span: lines.span(text, bytes.clone()),
        bytes,
        symbol,
    });
}

#[cfg(test)]
mod tests {
    use crate::{analyze, LanguageId};

    #[test]
    fn small_functions_are_one_chunk_each_and_gaps_are_windows() {
        let text = "use std::io;\n\nfn a() {\n    1;\n}\n\nfn b() {}\n";
        let file = analyze(LanguageId::Rust, text);
        let pieces: Vec<&str> = file.chunks.iter().map(|c| &text[c.bytes.clone()]).collect();
        assert_eq!(
            pieces,
            vec!["use std::io;\n", "fn a() {\n    1;\n}", "fn b() {}"]
        );
        assert_eq!(file.chunks[1].symbol, Some(0));
    }

    #[test]
    fn comments_and_attributes_above_a_definition_join_its_chunk() {
        let text = "//! The module.\nuse std::io;\n\n// Unrelated, then a blank line.\n\n\
                    /// Adds one.\n///\n/// Long details.\n#[inline]\nfn a() {}\n\n\
                    @decorator_lookalike\nfn b() {}\n";
        let file = analyze(LanguageId::Rust, text);
        let pieces: Vec<(&str, Option<u32>)> = file
            .chunks
            .iter()
            .map(|c| (&text[c.bytes.clone()], c.symbol))
            .collect();
        assert_eq!(
            pieces,
            vec![
                (
                    "//! The module.\nuse std::io;\n\n// Unrelated, then a blank line.\n",
                    None
                ),
                (
                    "/// Adds one.\n///\n/// Long details.\n#[inline]\nfn a() {}",
                    Some(0)
                ),
                ("@decorator_lookalike\nfn b() {}", Some(1)),
            ]
        );
        // A run of comments longer than the cap stays partly in a window.
        let long: String = (0..100).map(|i| format!("// line {i}\n")).collect();
        let text = format!("{long}fn c() {{}}\n");
        let file = analyze(LanguageId::Rust, &text);
        let own = file.chunks.iter().find(|c| c.symbol == Some(0)).unwrap();
        assert_eq!(own.span.start.line, 100 - super::LEADING_MAX_LINES);
    }

    #[test]
    fn long_classes_split_into_their_methods() {
        let body: String = (0..200).map(|i| format!("        x{i} = {i}\n")).collect();
        let text =
            format!("class Big:\n    def one(self):\n{body}\n    def two(self):\n        pass\n");
        let file = analyze(LanguageId::Python, &text);
        let names: Vec<Option<&str>> = file
            .chunks
            .iter()
            .map(|c| c.symbol.map(|s| file.symbols[s as usize].name.as_ref()))
            .collect();
        // The class header, `one` in two windows, then `two`.
        assert_eq!(
            names,
            vec![Some("Big"), Some("one"), Some("one"), Some("two")]
        );
        let covered: usize = file.chunks.iter().map(|c| c.bytes.len()).sum();
        assert!(
            covered + 10 >= text.trim_end().len(),
            "chunks cover the file"
        );
    }
}
