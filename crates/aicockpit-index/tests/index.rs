//! The project index against real files in a temp folder: the walk and its
//! ignore rules, bad input, persistence without re-parsing, one-file updates.

use std::fs;
use std::path::Path;

use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery, SkipReason};
use aicockpit_syntax::SymbolKind;

struct Fixture {
    project: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fixture = Fixture {
            project: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        };
        fixture.write("src/http.rs", "/// Parses a request.\npub fn parse_http_request(line: &str) -> usize {\n    line.len()\n}\n");
        fixture.write(
            "app/models.py",
            "class UserAccount:\n    \"\"\"An account.\"\"\"\n    def close(self):\n        pass\n",
        );
        fixture.write(
            "web/main.ts",
            "export function renderPage(): string {\n  return 'x';\n}\n",
        );
        fixture.write(".gitignore", "ignored/\n*.gen.go\n");
        fixture.write("ignored/secret.rs", "fn ignored_function() {}\n");
        fixture.write(
            "pkg/types.gen.go",
            "package pkg\nfunc GeneratedThing() {}\n",
        );
        fixture.write(".git/hooks/hook.py", "def git_internal(): pass\n");
        fixture.write("README.md", "not code\n");
        fixture
    }

    fn root(&self) -> &Path {
        self.project.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn options(&self) -> IndexOptions {
        let mut options = IndexOptions::new(self.root(), self.cache.path());
        options.threads = 2;
        options
    }

    fn open(&self) -> ProjectIndex {
        ProjectIndex::open(self.options()).unwrap().0
    }
}

fn names(index: &ProjectIndex, query: &str) -> Vec<String> {
    index
        .search(&SearchQuery::new(query))
        .unwrap()
        .into_iter()
        .filter_map(|hit| hit.symbol.map(|s| s.name.into()))
        .collect()
}

#[test]
fn walk_honours_ignore_rules_and_indexes_known_languages() {
    let fixture = Fixture::new();
    let index = fixture.open();
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!(stats.files, 3, "{stats:?}");
    assert_eq!(stats.parsed, 3);
    assert!(index.file("src/http.rs").is_some());
    assert!(index.file("ignored/secret.rs").is_none());
    assert!(index.file("pkg/types.gen.go").is_none());
    assert!(index.file(".git/hooks/hook.py").is_none());
    assert!(index.workspace_symbols("ignored_function", 10).is_empty());
}

#[test]
fn search_finds_identifiers_by_their_parts_and_whole_names() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    assert_eq!(names(&index, "http request")[0], "parse_http_request");
    assert_eq!(names(&index, "parse_http_request")[0], "parse_http_request");
    assert_eq!(names(&index, "user account")[0], "UserAccount");
    let hits = index.search(&SearchQuery::new("renderPage")).unwrap();
    assert_eq!(hits[0].path, "web/main.ts");
    assert_eq!(hits[0].span.start.line, 0);
    // Path and kind filters.
    let mut query = SearchQuery::new("request account page");
    query.paths = vec!["app".into()];
    let hits = index.search(&query).unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|hit| hit.path.starts_with("app/")),
        "{hits:?}"
    );
    query.paths.clear();
    query.kinds = vec![SymbolKind::Class];
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(&*hits[0].symbol.as_ref().unwrap().name, "UserAccount");
    assert!(index.search(&SearchQuery::new("  ++ ")).unwrap().is_empty());
}

#[test]
fn doc_comments_are_found_by_their_summary_and_their_details() {
    let fixture = Fixture::new();
    fixture.write(
        "src/upload.rs",
        "/// Retries a failed upload.\n///\n/// Waits with exponential backoff between attempts.\n\
         #[inline]\npub fn send_again() {}\n\npub fn unrelated() {}\n",
    );
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    // The whole comment is in the chunk that holds the definition (it
    // starts at the comment), so any of its words lead to the symbol.
    for words in ["failed upload", "exponential backoff"] {
        let hits = index.search(&SearchQuery::new(words)).unwrap();
        assert_eq!(
            &*hits[0].symbol.as_ref().unwrap().name,
            "send_again",
            "{hits:?}"
        );
    }
    let hits = index
        .search(&SearchQuery::new("exponential backoff"))
        .unwrap();
    assert_eq!(
        hits[0].span.start.line, 2,
        "the best line of the chunk: {hits:?}"
    );
    // Kind-filtered search reads symbol docs only: they hold the summary,
    // not the details.
    let mut query = SearchQuery::new("failed upload");
    query.kinds = vec![SymbolKind::Function];
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].span.start.line, 4, "at the symbol's name: {hits:?}");
    query.text = "exponential backoff".into();
    assert!(index.search(&query).unwrap().is_empty());
}

#[test]
fn a_field_is_found_by_its_name_and_its_line_by_the_rest() {
    let fixture = Fixture::new();
    fixture.write(
        "src/config.rs",
        "pub struct Settings {\n    pub name: String,\n    pub retry_after: Deadline,\n}\n",
    );
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let mut query = SearchQuery::new("retry after");
    query.kinds = vec![SymbolKind::Field];
    let hits = index.search(&query).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(&*hits[0].symbol.as_ref().unwrap().name, "retry_after");
    // Its type is only in the struct's chunk: the hit is the struct, at
    // the field's line.
    query.text = "deadline".into();
    assert!(index.search(&query).unwrap().is_empty());
    let hits = index.search(&SearchQuery::new("deadline")).unwrap();
    assert_eq!(
        &*hits[0].symbol.as_ref().unwrap().name,
        "Settings",
        "{hits:?}"
    );
    assert_eq!(hits[0].span.start.line, 2, "{hits:?}");
}

#[test]
fn workspace_symbols_rank_exact_then_prefix_then_subsequence() {
    let fixture = Fixture::new();
    fixture.write(
        "src/more.rs",
        "fn parse() {}\nfn parser_state() {}\nfn p_a_r_s_e() {}\n",
    );
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let found: Vec<String> = index
        .workspace_symbols("parse", 10)
        .into_iter()
        .map(|hit| hit.symbol.name.into())
        .collect();
    assert_eq!(
        found,
        ["parse", "parser_state", "parse_http_request", "p_a_r_s_e"]
    );
    assert_eq!(index.workspace_symbols("p", 2).len(), 2, "the cap applies");
    assert_eq!(
        index.definitions("close", 10)[0]
            .symbol
            .container
            .as_deref(),
        Some("UserAccount")
    );
}

/// The scan stops reading weaker candidates once enough better ones are
/// found across all its slices: the results must be those of a full scan.
#[test]
fn workspace_symbols_with_many_exact_matches_keep_the_full_ranking() {
    let fixture = Fixture::new();
    // More files than one scan slice (256), so several slices race.
    for n in 0..700 {
        fixture.write(
            &format!("many/f{n:03}.rs"),
            "fn i_n_i_t() {}\nfn init_state() {}\nfn init() {}\n",
        );
    }
    fixture.write("many/zz_only_prefix.rs", "fn initial() {}\n");
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let found: Vec<(String, String)> = index
        .workspace_symbols("init", 5)
        .into_iter()
        .map(|hit| (hit.path, hit.symbol.name.into()))
        .collect();
    let expected: Vec<(String, String)> = (0..5)
        .map(|n| (format!("many/f{n:03}.rs"), "init".to_string()))
        .collect();
    assert_eq!(found, expected, "exact matches first, in path order");
    // Asking for more than there are exact matches: then every prefix
    // match ranks before any subsequence, the shortest first.
    let all = index.workspace_symbols("init", 702);
    assert!(all[..700].iter().all(|hit| &*hit.symbol.name == "init"));
    assert_eq!(&*all[700].symbol.name, "initial");
    assert_eq!(&*all[701].symbol.name, "init_state");
    assert_eq!(all[701].path, "many/f000.rs");
}

#[test]
fn reopening_reparses_only_changed_files() {
    let fixture = Fixture::new();
    {
        let index = fixture.open();
        assert_eq!(index.refresh(&|_| {}).unwrap().parsed, 3);
    }
    let index = fixture.open();
    assert_eq!(index.stats().files, 3, "records load from disk");
    assert_eq!(
        &*index.workspace_symbols("parse_http", 5)[0].symbol.name,
        "parse_http_request"
    );
    assert_eq!(
        &*index.workspace_symbols("usracc", 5)[0].symbol.name,
        "UserAccount"
    );
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!((stats.parsed, stats.unchanged), (0, 3));
    assert_eq!(names(&index, "http request")[0], "parse_http_request");

    // Same content, new timestamp: read and hashed, not parsed.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fixture.write(
        "web/main.ts",
        "export function renderPage(): string {\n  return 'x';\n}\n",
    );
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!((stats.parsed, stats.unchanged), (0, 3));

    fixture.write("app/models.py", "def brand_new_function():\n    pass\n");
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!((stats.parsed, stats.unchanged), (1, 2));
    assert_eq!(names(&index, "brand new")[0], "brand_new_function");
    assert!(names(&index, "UserAccount").is_empty());

    fs::remove_file(fixture.root().join("app/models.py")).unwrap();
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!((stats.removed, stats.files), (1, 2));
    let left = index
        .search(&SearchQuery::new("brand_new_function"))
        .unwrap();
    assert!(
        left.iter().all(|hit| hit.path != "app/models.py"),
        "{left:#?}"
    );
}

/// An edited file is searched in memory, not in a tantivy segment: its
/// hits must score exactly as the same text's hits from the index on disk,
/// with filters, and name lookups and reference candidates must see it.
#[test]
fn edits_in_memory_score_like_the_index_on_disk() {
    let fixture = Fixture::new();
    let text = "/// Retries a failed upload.\npub fn retry_upload(attempts: u32) -> bool {\n    attempts > 0 // retry later\n}\n\npub struct UploadQueue;\n";
    fixture.write("disk/a.rs", text);
    fixture.write("edit/a.rs", "fn unrelated() {}\n");
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    index
        .update_file("edit/a.rs", aicockpit_syntax::LanguageId::Rust, text)
        .unwrap();
    index.commit().unwrap();
    for (query, kinds, paths) in [
        ("retry upload", vec![], vec![]),
        ("upload queue attempts", vec![], vec![]),
        ("upload", vec![SymbolKind::Struct], vec![]),
        (
            "retry",
            vec![],
            vec!["edit".to_string(), "disk/a.rs".to_string()],
        ),
    ] {
        let hits = index
            .search(&SearchQuery {
                kinds: kinds.clone(),
                paths: paths.clone(),
                limit: 50,
                ..SearchQuery::new(query)
            })
            .unwrap();
        // Each file's hits by position (the disk may order exact ties
        // either way), with their scores.
        let of = |path: &str| -> Vec<(String, u32, f32)> {
            let mut found: Vec<(String, u32, f32)> = hits
                .iter()
                .filter(|hit| hit.path == path)
                .map(|hit| (hit.snippet.clone(), hit.span.start.line, hit.score))
                .collect();
            found.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            found
        };
        let (disk, edited) = (of("disk/a.rs"), of("edit/a.rs"));
        assert!(!disk.is_empty(), "{query:?} {kinds:?} {paths:?}: {hits:?}");
        assert_eq!(disk.len(), edited.len(), "{query:?}: {hits:?}");
        for (d, e) in disk.iter().zip(&edited) {
            assert_eq!((&d.0, d.1), (&e.0, e.1), "{query:?}");
            assert!((d.2 - e.2).abs() < 1e-4, "{query:?}: {} vs {}", d.2, e.2);
        }
        assert!(
            hits.iter().all(|hit| hit
                .symbol
                .as_ref()
                .map_or(kinds.is_empty(), |s| kinds.is_empty()
                    || kinds.contains(&s.kind))),
            "{query:?}: the kind filter holds for both"
        );
    }
    // The disk's stale docs of the edited path are gone.
    assert!(names(&index, "unrelated").is_empty());
    let defs: Vec<String> = index
        .definitions("retry_upload", 10)
        .into_iter()
        .map(|hit| hit.path)
        .collect();
    assert_eq!(defs, ["disk/a.rs", "edit/a.rs"]);
    let mut files = index.files_containing("attempts", 10).unwrap();
    files.sort();
    assert_eq!(files, ["disk/a.rs", "edit/a.rs"]);
    assert!(index.files_containing("unrelated", 10).unwrap().is_empty());
}

fn ranked(index: &ProjectIndex, query: &str, limit: usize) -> Vec<(String, u32, f32)> {
    index
        .search(&SearchQuery {
            limit,
            ..SearchQuery::new(query)
        })
        .unwrap()
        .into_iter()
        .map(|hit| (hit.path, hit.span.start.line, hit.score))
        .collect()
}

/// Hits of equal score from the overlay come in the same order every time
/// (path, then document), and a hit scores the same before and after its
/// file reaches the disk. (Which of many tied docs the disk index returns
/// depends on its segments, which parallel indexing lays out differently
/// from run to run, so the disk's order of ties is not compared; the
/// overlay's scores against the disk's are, in
/// `edits_in_memory_score_like_the_index_on_disk`.)
#[test]
fn edited_hits_rank_stably_and_score_alike_after_persist() {
    let fixture = Fixture::new();
    let text: String = (0..400)
        .map(|n| format!("pub const FOO_{n}: u32 = {n};\n"))
        .collect();
    fixture.write("big/consts.rs", &text);
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let lines = |hits: &[(String, u32, f32)]| hits.iter().map(|hit| hit.1).collect::<Vec<_>>();
    assert_eq!(ranked(&index, "foo", 5).len(), 5);
    let edited = format!("{text}// edit\n");
    index
        .update_file("big/consts.rs", aicockpit_syntax::LanguageId::Rust, &edited)
        .unwrap();
    index.commit().unwrap();
    let first = ranked(&index, "foo", 5);
    for _ in 0..5 {
        assert_eq!(
            lines(&ranked(&index, "foo", 5)),
            lines(&first),
            "same order every time"
        );
    }
    assert_eq!(
        lines(&first),
        [0, 40, 80, 120, 160],
        "tied hits in document order: the symbol docs' chunks first"
    );
    // (Which of several exactly tied hits fills the last place may differ
    // between the overlay and the disk, where the order of the traversal
    // decides: compare the scores.)
    let before = ranked(&index, "foo 17", 3);
    index.persist().unwrap();
    let after = ranked(&index, "foo 17", 3);
    assert_eq!(before[0].1, after[0].1);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert!((b.2 - a.2).abs() < 1e-4, "{before:?} vs {after:?}");
    }
}

/// An editor's text over the size limit is not indexed, as a file on disk
/// over it is not: the file leaves the index.
#[test]
fn editor_text_over_the_size_limit_is_not_indexed() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.max_file_bytes = 4096;
    let index = ProjectIndex::open(options).unwrap().0;
    index.refresh(&|_| {}).unwrap();
    assert!(index.file("src/http.rs").is_some());
    let huge = format!("fn too_big() {{}}\n{}", "// padding\n".repeat(1000));
    assert!(index
        .update_file("src/http.rs", aicockpit_syntax::LanguageId::Rust, &huge)
        .unwrap());
    index.commit().unwrap();
    assert!(index.file("src/http.rs").is_none());
    assert!(names(&index, "too_big").is_empty());
    assert!(names(&index, "parse_http_request").is_empty());
}

/// The symbol scan's early exit against a full scan, over random names in
/// more files than one scan slice, for many queries and limits: wherever
/// exact and prefix matches fill the results (subsequence matches are
/// capped per slice by design, so only those results are exact).
#[test]
fn workspace_symbols_early_exit_matches_a_full_scan() {
    let fixture = Fixture::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let syllables = ["in", "it", "In", "IT", "_", "ab", "x", "i", "t", "n"];
    for f in 0..900 {
        let mut text = String::new();
        for s in 0..next() % 6 {
            let parts = 1 + next() % 4;
            let name: String = (0..parts)
                .map(|_| syllables[(next() % syllables.len() as u64) as usize])
                .collect();
            let name = format!("a{name}");
            text.push_str(&format!("fn {name}_{s}() {{}}\nfn {name}() {{}}\n"));
        }
        fixture.write(&format!("r/f{f:04}.rs"), &text);
    }
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let key = |hit: &aicockpit_index::SymbolHit| {
        (
            hit.path.clone(),
            hit.symbol.name.clone(),
            hit.symbol.range.start.line,
        )
    };
    let mut compared = 0;
    for query in ["ain", "ait", "a", "aab", "ainIT", "ax", "ai_0", "ii", "at"] {
        let full = index.workspace_symbols(query, 1_000_000);
        let strong = full
            .iter()
            .filter(|hit| {
                hit.symbol
                    .name
                    .to_ascii_lowercase()
                    .starts_with(&query.to_ascii_lowercase())
            })
            .count();
        for limit in [1, 2, 5, 10, 50, 200, 1000] {
            if strong < limit {
                continue;
            }
            let got: Vec<_> = index
                .workspace_symbols(query, limit)
                .iter()
                .map(key)
                .collect();
            let want: Vec<_> = full[..limit].iter().map(key).collect();
            assert_eq!(got, want, "{query} {limit}");
            compared += 1;
        }
    }
    assert!(compared > 30, "only {compared} comparisons");
}

#[test]
fn one_file_updates_create_edit_rename_delete() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();

    // Edit from an editor (unsaved text).
    index
        .update_file(
            "src/http.rs",
            aicockpit_syntax::LanguageId::Rust,
            "fn edited_in_editor() {}\n",
        )
        .unwrap();
    index.commit().unwrap();
    assert_eq!(names(&index, "edited in editor"), ["edited_in_editor"]);
    assert!(names(&index, "parse_http_request").is_empty());

    // Create on disk.
    fixture.write("src/created.rs", "fn created_on_disk() {}\n");
    assert!(index
        .reindex_path(&fixture.root().join("src/created.rs"))
        .unwrap());
    index.commit().unwrap();
    assert_eq!(names(&index, "created_on_disk"), ["created_on_disk"]);

    // Rename: the old path is gone, the new one is indexed.
    fs::rename(
        fixture.root().join("src/created.rs"),
        fixture.root().join("src/renamed.rs"),
    )
    .unwrap();
    index
        .reindex_path(&fixture.root().join("src/created.rs"))
        .unwrap();
    index
        .reindex_path(&fixture.root().join("src/renamed.rs"))
        .unwrap();
    index.commit().unwrap();
    let hits = index.search(&SearchQuery::new("created_on_disk")).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.path.as_str()).collect::<Vec<_>>(),
        ["src/renamed.rs"]
    );

    // Delete (also: a file deleted between the event and the read).
    fs::remove_file(fixture.root().join("src/renamed.rs")).unwrap();
    assert!(index
        .reindex_path(&fixture.root().join("src/renamed.rs"))
        .unwrap());
    index.commit().unwrap();
    assert!(names(&index, "created_on_disk").is_empty());

    // Ignored and outside paths are not indexed.
    fixture.write("ignored/new.rs", "fn not_me() {}\n");
    assert!(!index
        .reindex_path(&fixture.root().join("ignored/new.rs"))
        .unwrap());
    assert!(!index.reindex_path(Path::new("/etc/passwd")).unwrap());
}

#[test]
fn bad_files_are_skipped_with_a_reason_and_nothing_else_is_lost() {
    let fixture = Fixture::new();
    fixture.write("bad/latin1.py", "");
    fs::write(
        fixture.root().join("bad/latin1.py"),
        b"def caf\xe9(): pass\n",
    )
    .unwrap();
    fs::write(fixture.root().join("bad/blob.c"), b"int x;\0\0\0\x01\x02").unwrap();
    fixture.write("bad/empty.go", "");
    // 50 MB, well over the 1 MiB default limit.
    let big = fs::File::create(fixture.root().join("bad/huge.js")).unwrap();
    big.set_len(50 * 1024 * 1024).unwrap();
    let deep = format!(
        "x = {}1{}\ndef after_deep_nesting(): pass\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    fixture.write("bad/deep.py", &deep);

    let index = fixture.open();
    let stats = index.refresh(&|_| {}).unwrap();
    let reason = |rel: &str| {
        stats
            .skipped
            .iter()
            .find(|(path, _)| path == rel)
            .map(|(_, r)| r.clone())
    };
    assert_eq!(reason("bad/latin1.py"), Some(SkipReason::InvalidUtf8));
    assert_eq!(reason("bad/blob.c"), Some(SkipReason::Binary));
    assert!(matches!(
        reason("bad/huge.js"),
        Some(SkipReason::TooLarge { .. })
    ));
    assert!(index
        .file("bad/empty.go")
        .is_some_and(|r| r.symbols.is_empty()));
    assert_eq!(names(&index, "after_deep_nesting"), ["after_deep_nesting"]);
    assert_eq!(names(&index, "http request")[0], "parse_http_request");
}

#[cfg(unix)]
#[test]
fn symlinks_are_not_followed_out_of_the_root() {
    let fixture = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    fs::write(
        outside.path().join("outside.rs"),
        "fn outside_function() {}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), fixture.root().join("linked_dir")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("outside.rs"),
        fixture.root().join("linked.rs"),
    )
    .unwrap();
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    assert!(index.workspace_symbols("outside_function", 5).is_empty());
    assert!(!index
        .reindex_path(&fixture.root().join("linked.rs"))
        .unwrap());
    assert!(!index
        .reindex_path(&fixture.root().join("linked_dir/outside.rs"))
        .unwrap());
    assert!(index.file("linked.rs").is_none() && index.file("linked_dir/outside.rs").is_none());
}

#[test]
fn a_corrupted_index_is_rebuilt_with_a_reason() {
    let fixture = Fixture::new();
    let dir = {
        let index = fixture.open();
        index.refresh(&|_| {}).unwrap();
        index.dir().to_path_buf()
    };
    fs::write(dir.join("meta.json"), b"{ not json").unwrap();
    let (index, report) = ProjectIndex::open(fixture.options()).unwrap();
    assert!(report.rebuilt.is_some(), "{report:?}");
    assert_eq!(index.stats().files, 0);
    assert_eq!(index.refresh(&|_| {}).unwrap().parsed, 3);
}

#[test]
fn a_second_writer_falls_back_to_read_only() {
    let fixture = Fixture::new();
    let first = fixture.open();
    first.refresh(&|_| {}).unwrap();
    let (second, report) = ProjectIndex::open(fixture.options()).unwrap();
    assert!(report.read_only_because_locked);
    assert!(second.is_read_only());
    assert_eq!(names(&second, "http request")[0], "parse_http_request");
    assert!(second.refresh(&|_| {}).is_err());
}

#[test]
fn a_missing_root_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let error = ProjectIndex::open(IndexOptions::new("/no/such/project", cache.path()))
        .err()
        .unwrap();
    assert!(error.to_string().contains("/no/such/project"), "{error}");
}

#[test]
fn anchored_patterns_in_a_nested_gitignore_apply_to_their_own_folder_on_watcher_events() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    fixture.write("sub/.gitignore", "/gen.py\n");
    for rel in ["gen.py", "sub/gen.py", "sub/deeper/gen.py"] {
        fixture.write(rel, "def generated_thing():\n    pass\n");
    }
    let root = fs::canonicalize(fixture.root()).unwrap();
    assert!(aicockpit_index::is_indexable(&root, &root.join("gen.py")));
    assert!(!aicockpit_index::is_indexable(
        &root,
        &root.join("sub/gen.py")
    ));
    assert!(aicockpit_index::is_indexable(
        &root,
        &root.join("sub/deeper/gen.py")
    ));
    // The same three paths as watcher events.
    for rel in ["gen.py", "sub/gen.py", "sub/deeper/gen.py"] {
        index.reindex_path(&root.join(rel)).unwrap();
    }
    index.commit().unwrap();
    assert!(index.file("gen.py").is_some());
    assert!(
        index.file("sub/gen.py").is_none(),
        "ignored by sub/.gitignore"
    );
    assert!(index.file("sub/deeper/gen.py").is_some());
    // The walk agrees with the events.
    index.refresh(&|_| {}).unwrap();
    assert!(index.file("gen.py").is_some());
    assert!(index.file("sub/gen.py").is_none());
    assert!(index.file("sub/deeper/gen.py").is_some());
    // A re-include in the deeper folder wins over an ignore above it.
    fixture.write(".gitignore", "ignored/\n*.gen.go\nkeep_*.py\n");
    fixture.write("sub/.gitignore", "/gen.py\n!keep_me.py\n");
    fixture.write("sub/keep_me.py", "def kept():\n    pass\n");
    assert!(aicockpit_index::is_indexable(
        &root,
        &root.join("sub/keep_me.py")
    ));
    assert!(!aicockpit_index::is_indexable(
        &root,
        &root.join("keep_x.py")
    ));
}

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

fn function_hits(index: &ProjectIndex, name: &str) -> usize {
    let query = SearchQuery {
        kinds: vec![SymbolKind::Function],
        ..SearchQuery::new(name)
    };
    index
        .search(&query)
        .unwrap()
        .into_iter()
        .filter(|hit| hit.symbol.as_ref().is_some_and(|s| *s.name == *name))
        .count()
}

#[test]
fn concurrent_updates_of_one_path_leave_exactly_one_version() {
    let fixture = Fixture::new();
    let index = std::sync::Arc::new(fixture.open());
    index.refresh(&|_| {}).unwrap();
    const THREADS: usize = 4;
    const ROUNDS: usize = 12;
    // Many documents per version: adding them takes long enough for two
    // updates of the path to overlap.
    const FILLERS: usize = 300;
    let filler: String = (0..FILLERS)
        .map(|n| format!("fn filler_{n}() {{}}\n"))
        .collect();
    // Every round starts all threads' updates at once, the last one too,
    // so nothing after it cleans up an interleaving.
    let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let index = index.clone();
            let filler = filler.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let name = marker(thread * ROUNDS + round);
                    start.wait();
                    index
                        .update_file(
                            "src/flood.rs",
                            aicockpit_syntax::LanguageId::Rust,
                            &format!("pub fn {name}() {{}}\n{filler}"),
                        )
                        .unwrap();
                    if round % 4 == 0 {
                        index.commit().unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    index.commit().unwrap();
    let record = index.file("src/flood.rs").unwrap();
    let last = record.symbols[0].name.to_string();
    assert_eq!(function_hits(&index, &last), 1, "{last}: one version, once");
    let survivors: Vec<String> = (0..THREADS * ROUNDS)
        .map(marker)
        .filter(|name| name != &last && function_hits(&index, name) > 0)
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
    assert_eq!(
        index.search(&fillers).unwrap().len(),
        FILLERS,
        "each function of the file once"
    );
    assert_eq!(
        index.stats().files,
        4,
        "one record for the flooded file besides the fixture's three"
    );
}

#[test]
fn dependency_and_build_folders_are_skipped_unless_re_included() {
    let fixture = Fixture::new();
    let skipped = [
        "node_modules/dep/index.js",
        "web/node_modules/dep/index.js",
        ".venv/lib/site.py",
        "target/debug/build.rs",
        "vendor/lib.go",
    ];
    for rel in skipped {
        fixture.write(rel, "function vendoredOnly() {}\n");
    }
    let root = fixture.root().to_path_buf();
    let walked = |skip: Option<&[String]>| -> Vec<String> {
        let (entries, _) = match skip {
            Some(skip) => aicockpit_index::walk_skipping(&root, 1 << 20, skip),
            None => aicockpit_index::walk(&root, 1 << 20),
        };
        entries.into_iter().map(|e| e.rel).collect()
    };
    let found = walked(None);
    assert!(found.contains(&"src/http.rs".to_string()), "{found:?}");
    assert!(
        skipped.iter().all(|rel| !found.contains(&rel.to_string())),
        "{found:?}"
    );
    assert!(!aicockpit_index::is_indexable(
        &root,
        &root.join("web/node_modules/dep/index.js")
    ));
    // An ignore file re-includes one folder; an empty list skips none.
    fixture.write(".ignore", "!vendor/\n");
    let found = walked(None);
    assert!(found.contains(&"vendor/lib.go".to_string()), "{found:?}");
    assert!(!found.contains(&"node_modules/dep/index.js".to_string()));
    let found = walked(Some(&[]));
    assert!(
        skipped.iter().all(|rel| found.contains(&rel.to_string())),
        "{found:?}"
    );
    let mut options = fixture.options();
    options.skip_folders = Vec::new();
    let (index, _) = ProjectIndex::open(options).unwrap();
    let stats = index.refresh(&|_| {}).unwrap();
    assert_eq!(stats.files, found.len(), "{stats:?}");
}

#[test]
fn test_files_rank_below_library_code_of_the_same_score() {
    let fixture = Fixture::new();
    // The test file sorts (and is indexed) first; the same text scores the same.
    let text = "def open_user_session(key):\n    return key\n";
    fixture.write("spec/session_spec.py", text);
    fixture.write("src/session.py", text);
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let mut query = SearchQuery::new("open user session");
    query.limit = 2;
    let hits = index.search(&query).unwrap();
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(hits[0].score, hits[1].score, "{hits:?}");
    assert_eq!(paths, ["src/session.py", "spec/session_spec.py"]);
    query.limit = 1;
    assert_eq!(index.search(&query).unwrap()[0].path, "src/session.py");
    let definitions = index.definitions("open_user_session", 3);
    let paths: Vec<&str> = definitions.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["src/session.py", "spec/session_spec.py"]);
}

#[test]
fn test_paths_are_recognised_by_folder_and_name() {
    for test in [
        "tests/util.py",
        "pkg/test/helpers.go",
        "web/__tests__/app.tsx",
        "test_store.py",
        "store_test.go",
        "app.test.ts",
        "app.spec.js",
        "src/StoreTest.java",
    ] {
        assert!(aicockpit_index::is_test_path(test), "{test}");
    }
    for library in [
        "src/store.py",
        "contest/entry.rs",
        "Test.java",
        "latest.py",
        "testing_utils.py",
    ] {
        assert!(!aicockpit_index::is_test_path(library), "{library}");
    }
}

#[test]
fn watched_folders_are_the_walked_ones_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for folder in ["src/a", "src/b", "build/out", ".git/objects", "docs"] {
        fs::create_dir_all(root.join(folder)).unwrap();
    }
    fs::write(root.join(".gitignore"), "build/\n").unwrap();
    let (folders, truncated) = aicockpit_index::walk_folders(&root, 100);
    let mut rels: Vec<String> = folders
        .iter()
        .map(|f| aicockpit_index::relative(&root, f).unwrap_or_default())
        .collect();
    rels.sort();
    assert_eq!(rels, ["", "docs", "src", "src/a", "src/b"]);
    assert!(!truncated);
    let (folders, truncated) = aicockpit_index::walk_folders(&root, 2);
    assert_eq!(folders.len(), 2);
    assert!(truncated);
    assert!(aicockpit_index::is_walked_folder(
        &root,
        &root.join("src/new")
    ));
    assert!(!aicockpit_index::is_walked_folder(
        &root,
        &root.join("build/new")
    ));
    assert!(!aicockpit_index::is_walked_folder(
        &root,
        &root.join(".git/x")
    ));
    assert!(!aicockpit_index::is_walked_folder(
        &root,
        Path::new("/elsewhere")
    ));
    // A planted symlink to `/` is no folder to walk, even as a starting point.
    std::os::unix::fs::symlink("/", root.join("planted")).unwrap();
    let (folders, _) = aicockpit_index::walk_folders(&root.join("planted"), 100);
    assert!(folders.is_empty(), "{folders:?}");
    let (folders, _) = aicockpit_index::walk_folders(&root, 100);
    assert!(
        !folders.iter().any(|f| f.starts_with(root.join("planted"))),
        "{folders:?}"
    );
}

#[test]
fn edits_are_searchable_at_once_and_reach_the_disk_index_on_persist_and_on_drop() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let read_only = || {
        let options = IndexOptions {
            read_only: true,
            ..fixture.options()
        };
        ProjectIndex::open(options).unwrap().0
    };
    // Snippets of files indexed from disk are read back from the file.
    let hits = index.search(&SearchQuery::new("line len")).unwrap();
    assert!(
        hits.iter().any(|hit| hit.snippet.contains("line.len()")),
        "{hits:#?}"
    );

    // Served from the in-memory overlay: searchable here, not yet on disk.
    let text = "fn overlay_only() {\n    let unsaved_marker_word = 1;\n}\n";
    index
        .update_file("src/http.rs", aicockpit_syntax::LanguageId::Rust, text)
        .unwrap();
    index.commit().unwrap();
    assert_eq!(names(&index, "overlay_only"), ["overlay_only"]);
    // The disk index's docs of the edited file are shadowed, not merged in.
    assert!(names(&index, "parse_http_request").is_empty());
    assert_eq!(index.definitions("overlay_only", 5).len(), 1);
    assert!(index.definitions("parse_http_request", 5).is_empty());
    assert_eq!(
        index.files_containing("unsaved_marker_word", 5).unwrap(),
        ["src/http.rs"]
    );
    // A chunk snippet is cut from the editor's text (not stored in the index).
    let hits = index
        .search(&SearchQuery::new("unsaved_marker_word"))
        .unwrap();
    let chunk = hits
        .iter()
        .find(|hit| hit.snippet.contains("unsaved_marker_word"));
    assert!(chunk.is_some(), "{hits:#?}");
    assert!(names(&read_only(), "overlay_only").is_empty());

    // A removal is shadowed the same way.
    index.remove_file("web/main.ts").unwrap();
    index.commit().unwrap();
    assert!(names(&index, "renderPage").is_empty());

    index.persist().unwrap();
    assert_eq!(names(&index, "overlay_only"), ["overlay_only"]);
    assert_eq!(names(&read_only(), "overlay_only"), ["overlay_only"]);
    assert!(names(&read_only(), "renderPage").is_empty());

    // Dropping the index writes what is still pending.
    index
        .update_file(
            "app/models.py",
            aicockpit_syntax::LanguageId::Python,
            "def written_on_drop():\n    pass\n",
        )
        .unwrap();
    index.commit().unwrap();
    drop(index);
    let reopened = read_only();
    assert_eq!(names(&reopened, "written_on_drop"), ["written_on_drop"]);
    assert!(names(&reopened, "UserAccount").is_empty());
}

#[test]
fn path_filters_keep_a_folder_and_its_subfolders_only() {
    let fixture = Fixture::new();
    let body = |name: &str| format!("pub fn shared_{name}() {{}}\n");
    fixture.write("lib/sub/a.rs", &body("a"));
    fixture.write("lib/sub/deep/b.rs", &body("b"));
    fixture.write("lib/sub-x/c.rs", &body("c"));
    fixture.write("lib/sub0/d.rs", &body("d"));
    fixture.write("lib/subway.rs", &body("e"));
    let index = fixture.open();
    index.refresh(&|_| {}).unwrap();
    let found = |paths: &[&str]| {
        let query = SearchQuery {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            limit: 50,
            ..SearchQuery::new("shared")
        };
        let mut files: Vec<String> = index
            .search(&query)
            .unwrap()
            .into_iter()
            .map(|hit| hit.path)
            .collect();
        files.sort();
        files.dedup();
        files
    };
    assert_eq!(found(&["lib/sub"]), ["lib/sub/a.rs", "lib/sub/deep/b.rs"]);
    assert_eq!(found(&["/lib/sub/"]), ["lib/sub/a.rs", "lib/sub/deep/b.rs"]);
    assert_eq!(found(&["lib/subway.rs"]), ["lib/subway.rs"]);
    assert_eq!(
        found(&["lib/sub/deep", "lib/sub0"]),
        ["lib/sub/deep/b.rs", "lib/sub0/d.rs"]
    );
    assert_eq!(found(&[]).len(), 5);
}
