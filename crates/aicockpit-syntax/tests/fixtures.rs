//! Snapshot tests: each file in `tests/fixtures/` is parsed and its outline,
//! signatures, docs and chunks are compared with `tests/snapshots/`.
//! Adding a language or a case adds a fixture file, not code.

use std::fmt::Write;
use std::path::Path;

use aicockpit_syntax::{analyze, analyze_edit, LanguageId, Symbol};

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
            .map_or("-", |s| file.symbols[s as usize].name.as_ref());
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

/// Editing a file and parsing it from its previous tree gives what a parse
/// from scratch gives, edit after edit, for every language: lines moved,
/// deleted and duplicated, text typed mid-line (multi-byte characters too),
/// the file emptied and refilled. Where an edit leaves a syntax error,
/// tree-sitter's recovery may differ between the two parses, so only error-free
/// versions are compared (and the others must still not fail).
#[test]
fn incremental_parses_match_parses_from_scratch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("fixture").path();
        let Some(lang) = LanguageId::from_path(&path) else {
            continue;
        };
        let original = std::fs::read_to_string(&path).expect("fixture is UTF-8");
        let lines: Vec<&str> = original.split_inclusive('\n').collect();
        // A fixed pseudo-random walk of edits (xorshift), the same every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ original.len() as u64;
        let mut next = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below.max(1) as u64) as usize
        };
        let mut text = original.clone();
        let (_, mut tree) = analyze_edit(lang, &text, None);
        for step in 0..120 {
            let mut current: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
            match step % 6 {
                // Delete a line.
                0 if !current.is_empty() => {
                    current.remove(next(current.len()));
                }
                // Duplicate a line of the original somewhere.
                1 => {
                    let line = lines[next(lines.len())].to_string();
                    current.insert(next(current.len() + 1), line);
                }
                // Type into a line, at a character boundary.
                2 if !current.is_empty() => {
                    let at = next(current.len());
                    let line = &mut current[at];
                    let boundaries: Vec<usize> = (0..=line.len())
                        .filter(|i| line.is_char_boundary(*i))
                        .collect();
                    let cut = boundaries[next(boundaries.len())];
                    line.insert_str(cut, ["x", "_é", " ", "(", "ü1"][next(5)]);
                }
                // Move a block of lines.
                3 if current.len() > 4 => {
                    let from = next(current.len() - 3);
                    let block: Vec<String> = current.drain(from..from + 3).collect();
                    let to = next(current.len() + 1);
                    for (k, line) in block.into_iter().enumerate() {
                        current.insert(to + k, line);
                    }
                }
                // Empty the file, then restore the original.
                4 if step == 28 => current.clear(),
                5 if step == 29 || step == 89 => {
                    current = lines.iter().map(|l| l.to_string()).collect();
                }
                _ => {
                    let line = lines[next(lines.len())].to_string();
                    current.push(line);
                }
            }
            let edited = current.concat();
            let previous = tree.as_ref().map(|tree| (text.as_str(), tree));
            let (incremental, new_tree) = analyze_edit(lang, &edited, previous);
            let fresh = analyze(lang, &edited);
            assert!(
                new_tree.is_some(),
                "{}: step {step} gave no tree",
                path.display()
            );
            let clean = !fresh
                .notes
                .iter()
                .any(|note| matches!(note, aicockpit_syntax::SyntaxNote::SyntaxError { .. }));
            if clean {
                assert_eq!(
                    incremental,
                    fresh,
                    "{}: step {step} parsed incrementally differs",
                    path.display()
                );
                compared += 1;
            }
            text = edited;
            tree = new_tree;
        }
    }
    assert!(
        compared > 100,
        "only {compared} error-free versions compared"
    );
}
