//! Snapshot tests: each file in `tests/fixtures/` is parsed and its outline,
//! signatures, docs and chunks are compared with `tests/snapshots/`.
//! Adding a language or a case adds a fixture file, not code.

use std::fmt::Write;
use std::path::Path;

use aicockpit_syntax::{analyze, LanguageId, Symbol};

fn depth(symbols: &[Symbol], mut index: usize) -> usize {
    let mut depth = 0;
    while let Some(parent) = symbols[index].parent {
        depth += 1;
        index = parent as usize;
    }
    depth
}

fn render(path: &Path, text: &str) -> String {
    let lang = LanguageId::from_path(path).expect("fixture has a known extension");
    let file = analyze(lang, text);
    let mut out = String::new();
    for (index, symbol) in file.symbols.iter().enumerate() {
        let indent = "  ".repeat(depth(&file.symbols, index));
        let r = symbol.range;
        let s = symbol.selection_range;
        let _ = write!(
            out,
            "{indent}{} {} [{}:{}-{}:{}] name [{}:{}-{}:{}]",
            symbol.kind,
            symbol.name,
            r.start.line,
            r.start.col,
            r.end.line,
            r.end.col,
            s.start.line,
            s.start.col,
            s.end.line,
            s.end.col,
        );
        if let Some(container) = &symbol.container {
            let _ = write!(out, " in {container}");
        }
        let _ = writeln!(out, "\n{indent}  sig: {}", symbol.signature);
        if let Some(doc) = &symbol.doc {
            let _ = writeln!(out, "{indent}  doc: {}", doc.replace('\n', "\\n"));
        }
    }
    out.push_str("-- chunks\n");
    for chunk in &file.chunks {
        let owner = chunk
            .symbol
            .map_or("-", |s| file.symbols[s as usize].name.as_str());
        let _ = writeln!(
            out,
            "lines {}-{} {owner}",
            chunk.span.start.line, chunk.span.end.line
        );
    }
    for note in &file.notes {
        let _ = writeln!(out, "note: {note:?}");
    }
    out
}

#[test]
fn fixtures_match_their_snapshots() {
    insta::glob!("fixtures/*", |path| {
        let text = std::fs::read_to_string(path).expect("fixture is UTF-8");
        insta::assert_snapshot!(render(path, &text));
    });
}

#[test]
fn every_language_has_a_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let covered: Vec<LanguageId> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|entry| LanguageId::from_path(&entry.ok()?.path()))
        .collect();
    for lang in LanguageId::ALL {
        assert!(
            covered.contains(&lang),
            "no fixture for {lang} in {}",
            dir.display()
        );
    }
}
