//! The project's ignore files (`.ignore`, `.gitignore` in every folder,
//! `.git/info/exclude`), read through [`read_project_file`] like any other
//! project file: a FIFO, a symlink or a huge file named `.gitignore` is
//! treated as absent instead of hanging or filling memory (the `ignore`
//! crate's own reading opens them by path and reads them whole).
//!
//! Rules of a folder's ignore file match paths relative to that folder; the
//! deepest folder with a matching rule decides, `.ignore` before
//! `.gitignore` within a folder, `.git/info/exclude` last — as git and the
//! `ignore` crate's walker do.
//!
//! Folders named in the skip list (`index.skip_folders`: `node_modules`,
//! `.venv`, `target`, …) are skipped wherever they are, unless an ignore file
//! decides otherwise (a `!vendor/` line re-includes one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::source::read_project_file;
use crate::walk::relative;

/// The most bytes of one ignore file that are read; a bigger one is ignored.
const MAX_IGNORE_FILE_BYTES: u64 = 1024 * 1024;

/// The ignore files of one project, read once per folder.
pub(crate) struct IgnoreRules {
    root: PathBuf,
    /// Per folder, the matchers that apply in it: its own, then its
    /// parent's, up to the root (deepest first).
    chains: Mutex<HashMap<PathBuf, Chain>>,
    exclude: Option<Gitignore>,
    /// Folder names skipped when no ignore file decides.
    skip_folders: Vec<String>,
}

type Chain = Arc<Vec<Arc<Gitignore>>>;

impl IgnoreRules {
    pub fn new(root: &Path, skip_folders: &[String]) -> IgnoreRules {
        IgnoreRules {
            root: root.to_path_buf(),
            chains: Mutex::new(HashMap::new()),
            exclude: matcher(root, root, ".git/info/exclude"),
            skip_folders: skip_folders.to_vec(),
        }
    }

    /// Whether a folder of the skip list is `path` itself (a folder) or,
    /// unless the walk checked them already, one of its folders below the root.
    fn in_skipped_folder(&self, path: &Path, is_dir: bool, parents_checked: bool) -> bool {
        if self.skip_folders.is_empty() {
            return false;
        }
        let skipped = |name: &std::ffi::OsStr| {
            name.to_str()
                .is_some_and(|name| self.skip_folders.iter().any(|s| s == name))
        };
        if parents_checked {
            return is_dir && path.file_name().is_some_and(skipped);
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let mut folders: Vec<&std::ffi::OsStr> = rel.iter().collect();
        if !is_dir {
            folders.pop();
        }
        folders.into_iter().any(skipped)
    }

    /// Whether `path` (inside the root) is ignored. With `parents_checked`
    /// (the walk, which never enters an ignored folder) only the path itself
    /// is matched; otherwise its folders below each ignore file too.
    pub fn is_ignored(&self, path: &Path, is_dir: bool, parents_checked: bool) -> bool {
        let decide = |matcher: &Gitignore| {
            let found = if parents_checked {
                matcher.matched(path, is_dir)
            } else {
                matcher.matched_path_or_any_parents(path, is_dir)
            };
            match found {
                ignore::Match::None => None,
                ignore::Match::Ignore(_) => Some(true),
                ignore::Match::Whitelist(_) => Some(false),
            }
        };
        let Some(parent) = path.parent().filter(|p| p.starts_with(&self.root)) else {
            return false;
        };
        self.chain(parent)
            .iter()
            .find_map(|matcher| decide(matcher))
            .or_else(|| self.exclude.as_ref().and_then(decide))
            .unwrap_or_else(|| self.in_skipped_folder(path, is_dir, parents_checked))
    }

    /// The matchers that apply in `dir` (inside the root), deepest first.
    fn chain(&self, dir: &Path) -> Chain {
        if let Some(found) = self
            .chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dir)
        {
            return found.clone();
        }
        let mut chain: Vec<Arc<Gitignore>> = [".ignore", ".gitignore"]
            .iter()
            .filter(|name| {
                // Most folders have none: one lstat instead of a walk from the root.
                std::fs::symlink_metadata(dir.join(name)).is_ok()
            })
            .filter_map(|name| {
                let rel = match relative(&self.root, dir) {
                    Some(folder) => format!("{folder}/{name}"),
                    None => (*name).to_string(),
                };
                matcher(&self.root, dir, &rel).map(Arc::new)
            })
            .collect();
        if dir != self.root {
            if let Some(parent) = dir.parent().filter(|p| p.starts_with(&self.root)) {
                chain.extend(self.chain(parent).iter().cloned());
            }
        }
        let chain = Arc::new(chain);
        self.chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_path_buf(), chain.clone());
        chain
    }
}

/// The rules of the ignore file `rel` (relative to `root`), matching paths
/// relative to `folder`; `None` when it is absent, unreadable or empty.
fn matcher(root: &Path, folder: &Path, rel: &str) -> Option<Gitignore> {
    let text = match read_project_file(root, rel, MAX_IGNORE_FILE_BYTES) {
        Ok(text) => text,
        Err(crate::SkipReason::Unreadable { .. }) => return None,
        Err(reason) => {
            tracing::warn!(file = %rel, %reason, "ignore file not used");
            return None;
        }
    };
    let origin = root.join(rel);
    let mut builder = GitignoreBuilder::new(folder);
    for line in text.lines() {
        if let Err(error) = builder.add_line(Some(origin.clone()), line) {
            tracing::debug!(file = %rel, %error, "bad ignore pattern");
        }
    }
    builder.build().ok().filter(|matcher| !matcher.is_empty())
}
