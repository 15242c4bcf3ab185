//! Edits and saves of one document flooded from several threads, with
//! flushes racing each other: the index ends with exactly the last text.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use aicockpit_config::Config;
use aicockpit_engine::{ColumnUnit, Engine, TextChange};
use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery};
use aicockpit_syntax::SymbolKind;

/// A name made of letters only, so the code tokenizer keeps it as one token.
fn marker(mut n: usize) -> String {
    let mut name = String::from("marker");
    loop {
        name.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return name;
        }
    }
}

fn function_hits(engine: &Engine, name: &str) -> usize {
    let query = SearchQuery {
        kinds: vec![SymbolKind::Function],
        ..SearchQuery::new(name)
    };
    engine
        .index()
        .unwrap()
        .search(&query)
        .unwrap()
        .into_iter()
        .filter(|hit| hit.symbol.as_ref().is_some_and(|s| *s.name == *name))
        .count()
}

#[test]
fn flooded_edits_saves_and_flushes_leave_exactly_the_last_version_searchable() {
    // The race is a matter of timing; a few rounds make it near certain
    // that the old code (flushes interleaving, clean before written) fails.
    for _ in 0..3 {
        flood_once();
    }
}

fn flood_once() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("flood.rs"), "pub fn markerstart() {}\n").unwrap();
    let (index, _) = ProjectIndex::open(IndexOptions::new(project.path(), cache.path())).unwrap();
    let engine = Arc::new(Engine::new(Config::default(), Some(Arc::new(index))));
    engine.refresh(&|_| {}).unwrap();
    let path = engine.root().unwrap().join("flood.rs");
    engine.open_document(&path, 0, None, "pub fn markerstart() {}\n".into());

    // Fast threads make short edits and saves and flush each; a slow thread
    // keeps flushing long texts (long parses) until the fast ones are done,
    // so the last edit lands while an older text is being written.
    const FAST: usize = 3;
    const ROUNDS: usize = 8;
    const SLOW_BASE: usize = 100_000;
    let version = Arc::new(AtomicI32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let edit = {
        let version = version.clone();
        move |engine: &Engine, path: &std::path::Path, text: String, save: bool| {
            if save {
                engine.save_document(path, Some(text));
            } else {
                let change = TextChange { range: None, text };
                // A change older than the current version is refused; that is fine.
                let _ = engine.change_document(
                    path,
                    version.fetch_add(1, Ordering::SeqCst) + 1,
                    ColumnUnit::Utf8,
                    &[change],
                );
            }
            engine.flush().unwrap();
        }
    };
    let slow = {
        let (engine, path, stop, edit) = (engine.clone(), path.clone(), stop.clone(), edit.clone());
        std::thread::spawn(move || {
            // Long to parse, few documents to index: most of a slow flush
            // is the window in which a newer edit can arrive.
            let filler: String = (0..4000)
                .map(|line| format!("    let value_{line} = left + right * {line};\n"))
                .collect();
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                let text = format!(
                    "pub fn {}() {{\n{filler}}}\nfn filler_tail() {{}}\n",
                    marker(SLOW_BASE + round)
                );
                edit(&engine, &path, text, round % 2 == 1);
                round += 1;
            }
            round
        })
    };
    let fast: Vec<_> = (0..FAST)
        .map(|thread| {
            let (engine, path, edit) = (engine.clone(), path.clone(), edit.clone());
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let text = format!("pub fn {}() {{}}\n", marker(thread * ROUNDS + round));
                    edit(&engine, &path, text, round % 3 == 2);
                }
            })
        })
        .collect();
    for worker in fast {
        worker.join().unwrap();
    }
    // The last word is a short edit, made while the slow thread may be mid-flush.
    edit(
        &engine,
        &path,
        "pub fn markerfinal() {}\n".to_string(),
        false,
    );
    stop.store(true, Ordering::SeqCst);
    let slow_rounds = slow.join().unwrap();
    // Whatever was still pending is written now; the text the editor holds is the truth.
    engine.flush().unwrap();
    let text = engine.text(&path).unwrap();
    let last = text
        .trim_start_matches("pub fn ")
        .split('(')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(function_hits(&engine, &last), 1, "{last} searchable, once");
    let survivors: Vec<String> = std::iter::once("markerstart".to_string())
        .chain((0..FAST * ROUNDS).map(marker))
        .chain((0..slow_rounds).map(|round| marker(SLOW_BASE + round)))
        .filter(|name| name != &last && function_hits(&engine, name) > 0)
        .collect();
    assert!(
        survivors.is_empty(),
        "older versions still searchable: {survivors:?}"
    );
    let fillers = SearchQuery {
        kinds: vec![SymbolKind::Function],
        limit: 1000,
        ..SearchQuery::new("filler")
    };
    let filler_hits = engine.index().unwrap().search(&fillers).unwrap().len();
    assert_eq!(
        filler_hits,
        text.matches("fn filler_").count(),
        "the long texts' functions are searchable exactly when the last text has them"
    );
    let index = engine.index().unwrap();
    assert_eq!(index.stats().files, 1, "one file record");
    let record = index.file("flood.rs").unwrap();
    assert_eq!(
        &*record.symbols[0].name, last,
        "the record is the last text's"
    );
    assert_eq!(record.symbols.len(), text.matches("fn ").count());
}

#[test]
fn workspace_symbols_see_unsaved_edits_without_indexing_them() {
    let project = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("lib.rs"), "pub fn markerold() {}\n").unwrap();
    std::fs::write(project.path().join("other.rs"), "pub fn markerdisk() {}\n").unwrap();
    let (index, _) = ProjectIndex::open(IndexOptions::new(project.path(), cache.path())).unwrap();
    let engine = Engine::new(Config::default(), Some(Arc::new(index)));
    engine.refresh(&|_| {}).unwrap();
    let (mine, theirs) = (engine.new_holder(), engine.new_holder());
    let lib = engine.root().unwrap().join("lib.rs");
    let other = engine.root().unwrap().join("other.rs");
    let names = |engine: &Engine, holder| -> Vec<String> {
        let mut names: Vec<String> = engine
            .workspace_symbols_for("marker", 10, Some(holder))
            .into_iter()
            .map(|(_, s)| s.name.into())
            .collect();
        names.sort();
        names
    };
    engine.open_document_as(mine, &lib, 1, None, "pub fn markermine() {}\n".into());
    engine.open_document_as(theirs, &other, 1, None, "pub fn markertheirs() {}\n".into());
    // The asker's own edit at once, and another editor's never-parsed one too.
    assert_eq!(names(&engine, mine), vec!["markermine", "markertheirs"]);
    assert_eq!(engine.parse_edited_documents(), 0, "nothing left to parse");
    // Nothing was indexed: full-text search still has the disk's text.
    assert_eq!(
        engine
            .index()
            .unwrap()
            .search(&SearchQuery::new("markermine"))
            .unwrap()
            .len(),
        0
    );
    // An edit after the last parse: the other editor sees the last parsed text until the next parse.
    let whole = TextChange {
        range: None,
        text: "pub fn markernewer() {}\n".into(),
    };
    engine
        .change_document_as(mine, &lib, 2, ColumnUnit::Utf8, &[whole])
        .unwrap();
    assert_eq!(names(&engine, theirs), vec!["markermine", "markertheirs"]);
    assert_eq!(engine.parse_edited_documents(), 1);
    assert_eq!(names(&engine, theirs), vec!["markernewer", "markertheirs"]);
    assert_eq!(names(&engine, mine), vec!["markernewer", "markertheirs"]);
    // A flush indexes the editors' text; closing unsaved brings the disk's back.
    engine.flush().unwrap();
    assert_eq!(function_hits(&engine, "markernewer"), 1);
    engine.close_document_as(mine, &lib).unwrap();
    engine.close_document_as(theirs, &other).unwrap();
    assert_eq!(names(&engine, mine), vec!["markerdisk", "markerold"]);
}
