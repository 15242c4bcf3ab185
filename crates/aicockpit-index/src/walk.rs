//! The file walk: which files of a project are indexed, and reading them.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use aicockpit_syntax::LanguageId;

use crate::ignore_rules::IgnoreRules;

/// A file the walk found: a known language, not ignored, within the size limit.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Relative to the root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub lang: LanguageId,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (0 when unknown).
    pub mtime: i64,
}

/// Why a file was left out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum SkipReason {
    TooLarge {
        size: u64,
        limit: u64,
    },
    Binary,
    InvalidUtf8,
    Unreadable {
        error: String,
    },
    /// A FIFO, a device, a socket or a folder where a file was expected.
    NotAFile,
    /// A symlink in the path below the project root (never followed).
    Symlink,
    /// A path that leaves the project root.
    OutsideRoot,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::TooLarge { size, limit } => {
                write!(f, "{size} bytes is over the {limit}-byte limit")
            }
            SkipReason::Binary => f.write_str("binary content"),
            SkipReason::InvalidUtf8 => f.write_str("not valid UTF-8"),
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
            SkipReason::NotAFile => f.write_str("not a regular file"),
            SkipReason::Symlink => f.write_str("a symlink (not followed)"),
            SkipReason::OutsideRoot => f.write_str("outside the project root"),
        }
    }
}

/// Walk a root: honours `.gitignore`, `.ignore` and git's exclude files (even
/// outside a git repository), skips `.git` and the default skip folders
/// (`node_modules`, `.venv`, `target`, …), never follows symlinks, and keeps
/// files of known languages. Files over the size limit are reported as skipped.
pub fn walk(root: &Path, max_file_bytes: u64) -> (Vec<WalkEntry>, Vec<(String, SkipReason)>) {
    walk_skipping(root, max_file_bytes, &default_skip_folders())
}

/// The folders skipped when the config names none: see `index.skip_folders`.
pub fn default_skip_folders() -> Vec<String> {
    aicockpit_config::DEFAULT_SKIP_FOLDERS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// [`walk`] with the folders to skip wherever they are (unless an ignore file re-includes them).
pub fn walk_skipping(
    root: &Path,
    max_file_bytes: u64,
    skip_folders: &[String],
) -> (Vec<WalkEntry>, Vec<(String, SkipReason)>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    // The project's own ignore files are read by `IgnoreRules` (safely);
    // the `ignore` crate only walks, and applies the user's global excludes.
    let walker = project_walker(root, IgnoreRules::new(root, skip_folders), false);
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(%error, "walk error");
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Some(lang) = LanguageId::from_path(path) else {
            continue;
        };
        let Some(rel) = relative(root, path) else {
            continue;
        };
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) => {
                skipped.push((
                    rel,
                    SkipReason::Unreadable {
                        error: error.to_string(),
                    },
                ));
                continue;
            }
        };
        if metadata.len() > max_file_bytes {
            skipped.push((
                rel,
                SkipReason::TooLarge {
                    size: metadata.len(),
                    limit: max_file_bytes,
                },
            ));
            continue;
        }
        entries.push(WalkEntry {
            rel,
            abs: path.to_path_buf(),
            lang,
            size: metadata.len(),
            mtime: mtime(&metadata),
        });
    }
    entries.sort_by(|a, b| a.rel.cmp(&b.rel));
    (entries, skipped)
}

/// The walk over a project: symlinks never followed, `.git` and what
/// `rules` ignore left out. The project's own ignore files are read by
/// `IgnoreRules` (safely); the `ignore` crate only walks, and applies the
/// user's global excludes. With `folders_only`, files are not listed.
fn project_walker(root: &Path, rules: IgnoreRules, folders_only: bool) -> ignore::Walk {
    let rules = std::sync::Arc::new(rules);
    ignore::WalkBuilder::new(root)
        .follow_links(false)
        .hidden(false)
        .require_git(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_exclude(false)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            (is_dir || !folders_only)
                && entry.file_name() != ".git"
                && (entry.depth() == 0 || !rules.is_ignored(entry.path(), is_dir, true))
        })
        .build()
}

/// The folders the walk would enter (with the default skipped folders), root first, at most `limit` of them
/// (for a file watcher that watches each folder on its own). The second
/// value is true when more folders were left out.
pub fn walk_folders(root: &Path, limit: usize) -> (Vec<PathBuf>, bool) {
    // The walker would follow a symlinked starting folder: a planted
    // `x -> /` must not become thousands of host folders to watch.
    if !std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        return (Vec::new(), false);
    }
    let walker = project_walker(root, IgnoreRules::new(root, &default_skip_folders()), true);
    let mut folders = Vec::new();
    for entry in walker.flatten() {
        if folders.len() == limit {
            return (folders, true);
        }
        folders.push(entry.into_path());
    }
    (folders, false)
}

/// Whether the walk would enter this folder (inside the root, not `.git`,
/// not ignored): used when a watcher sees a new folder.
pub fn is_walked_folder(root: &Path, path: &Path) -> bool {
    match relative(root, path) {
        None => path == root,
        Some(rel) => {
            !rel.split('/').any(|part| part == ".git")
                && !IgnoreRules::new(root, &default_skip_folders()).is_ignored(path, true, false)
        }
    }
}

/// Whether the walk would index this path (used for single-file events):
/// inside the root, a known language, and not ignored (default skip folders).
pub fn is_indexable(root: &Path, path: &Path) -> bool {
    is_indexable_skipping(root, path, &default_skip_folders())
}

/// [`is_indexable`] with the folders to skip.
pub fn is_indexable_skipping(root: &Path, path: &Path, skip_folders: &[String]) -> bool {
    let Some(rel) = relative(root, path) else {
        return false;
    };
    if LanguageId::from_path(path).is_none() || rel.split('/').any(|part| part == ".git") {
        return false;
    }
    !IgnoreRules::new(root, skip_folders).is_ignored(path, false, false)
}

/// Whether a relative path is a test file: in a `test`/`tests`/`__tests__`/
/// `spec` folder, or named like one (`test_x.py`, `x_test.go`, `x.test.ts`,
/// `x.spec.js`, `XTest.java`). Test code ranks below library code of the
/// same score: it is rarely what a search or a completion is after.
pub fn is_test_path(rel: &str) -> bool {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let Some(file) = parts.pop() else {
        return false;
    };
    if parts.iter().any(|folder| {
        matches!(
            folder.to_ascii_lowercase().as_str(),
            "test" | "tests" | "testing" | "__tests__" | "spec" | "specs"
        )
    }) {
        return true;
    }
    let stem = file.split('.').next().unwrap_or(file);
    let lower = file.to_ascii_lowercase();
    stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || lower.contains(".test.")
        || lower.contains(".spec.")
        || (stem.len() > 4 && (stem.ends_with("Test") || stem.ends_with("Tests")))
}

/// `path` relative to `root`, `/`-separated; `None` when it is outside the root.
pub fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let joined = parts?.join("/");
    (!joined.is_empty() && !joined.split('/').any(|p| p == "..")).then_some(joined)
}

pub(crate) fn mtime(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |duration| duration.as_nanos() as i64)
}
