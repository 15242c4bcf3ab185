//! A project holding what a hostile checkout or workspace container can put
//! there — a symlink to `/dev/zero`, a FIFO, a 3 GB sparse file, symlinks to
//! a file and a folder outside the project, ignore files that are a FIFO
//! and a symlink to `/dev/zero` — is indexed and navigated
//! promptly, without reading any of them, and nothing outside the root is read.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aicockpit_config::Config;
use aicockpit_engine::Engine;
use aicockpit_index::{IndexOptions, ProjectIndex, SkipReason};

const SECRET: &str = "SECRET_FROM_OUTSIDE";

/// Peak resident memory of this process so far, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
}

fn hostile_project(root: &Path, outside: &Path) {
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("src/lib.rs"),
        "/// The one real definition.\npub fn target_fn() -> u32 { 1 }\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() {\n    target_fn();\n}\n",
    )
    .unwrap();
    std::fs::write(
        outside.join("secret.rs"),
        format!("pub fn target_fn() {{}} // {SECRET}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("zero.rs")).unwrap();
    mkfifo(&root.join("fifo.rs"));
    // Ignore files are project files too: a FIFO and a symlink to /dev/zero.
    mkfifo(&root.join(".gitignore"));
    std::os::unix::fs::symlink("/dev/zero", root.join("src/.gitignore")).unwrap();
    let big = std::fs::File::create(root.join("big.rs")).unwrap();
    big.set_len(3 << 30).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.rs"), root.join("outside.rs")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("linked")).unwrap();
}

#[test]
fn hostile_files_are_never_read_and_every_request_returns_promptly() {
    let project = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    hostile_project(project.path(), outside.path());
    let (index, _) = ProjectIndex::open(IndexOptions::new(project.path(), cache.path())).unwrap();
    let engine = Arc::new(Engine::new(Config::default(), Some(Arc::new(index))));
    let root = engine.root().unwrap().to_path_buf();
    let before = peak_rss_kib();

    let (done, finished) = std::sync::mpsc::channel();
    let worker = {
        let engine = engine.clone();
        let root = root.clone();
        std::thread::spawn(move || {
            exercise(&engine, &root);
            let _ = done.send(());
        })
    };
    // A FIFO that blocks an open, or /dev/zero read to the end, never returns.
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("every request returned within the deadline");
    worker.join().unwrap();
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "peak memory grew by {grown_mib} MiB");
}

fn exercise(engine: &Engine, root: &Path) {
    let stats = engine.refresh(&|_| {}).unwrap();
    let index = engine.index().unwrap();
    assert_eq!(stats.files, 2, "only the two real files: {stats:?}");
    assert!(stats
        .skipped
        .iter()
        .any(|(rel, reason)| rel == "big.rs" && matches!(reason, SkipReason::TooLarge { .. })));

    // Harmless ones first, so a regression fails on an assertion before it
    // reads /dev/zero.
    let hostile: Vec<PathBuf> = [
        root.join("outside.rs"),
        root.join("linked/secret.rs"),
        PathBuf::from("/etc/passwd"),
        root.join("big.rs"),
        root.join("fifo.rs"),
        root.join("zero.rs"),
        PathBuf::from("/dev/zero"),
    ]
    .into();
    for path in &hostile {
        assert!(engine.text(path).is_none(), "{} read", path.display());
        assert!(engine.definition(path, 0).is_empty(), "{}", path.display());
        assert!(engine.hover(path, 0).is_none(), "{}", path.display());
        assert!(engine.references(path, 0, true).unwrap().is_empty());
        assert!(engine.document_symbols(path).is_empty());
    }
    // Watcher events for them index nothing (and read nothing).
    assert_eq!(engine.files_changed(&hostile).unwrap(), 0);
    for rel in [
        "zero.rs",
        "fifo.rs",
        "big.rs",
        "outside.rs",
        "linked/secret.rs",
    ] {
        assert!(index.file(rel).is_none(), "{rel} indexed");
    }

    // Navigation from a real file finds only real files.
    let main = root.join("src/main.rs");
    let text = engine.text(&main).unwrap();
    let at = text.find("target_fn").unwrap();
    let definitions = engine.definition(&main, at);
    assert_eq!(definitions.len(), 1, "{definitions:?}");
    assert_eq!(definitions[0].path, root.join("src/lib.rs"));
    let references = engine.references(&main, at, true).unwrap();
    assert!(
        references
            .iter()
            .all(|l| l.path == main || l.path == root.join("src/lib.rs")),
        "{references:?}"
    );
    assert_eq!(references.len(), 2, "{references:?}");
    let hover = engine.hover(&main, at).unwrap();
    assert!(!hover.markdown.contains(SECRET));
    let context = engine.completion_context(&main, &text, at, 2048);
    assert!(
        !context.commented_snippets().contains(SECRET),
        "{context:?}"
    );
}
