//! Serving a project the client did not name, and watching it: a client that
//! sends no root folder gets the first opened file's project (the nearest
//! folder with a project marker, else the file's folder), and is told so with
//! `window/showMessage`; a client that cannot register file watchers gets the
//! server's own watcher (`watch.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aicockpit_engine::Engine;
use tower_lsp::lsp_types::MessageType;

use super::Backend;
use crate::project::SharedEngine;

/// Files or folders that mark a version-control root: the nearest one wins
/// over every other marker.
const VCS_MARKERS: &[&str] = &[".git", ".hg", ".jj", ".svn"];

/// Files that mark a project root, nearest first.
const PROJECT_MARKERS: &[&str] = &[
    "Cargo.toml",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "package.json",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "CMakeLists.txt",
    "Gemfile",
    "composer.json",
    "deno.json",
];

/// The project a file belongs to, and the marker that decided it (`None`:
/// no marker, the file's own folder). The filesystem root and the home
/// folder are never chosen through a marker: a `.git` there is a dotfiles
/// repository, not the project.
pub(crate) fn project_root_for(file: &Path) -> Option<(PathBuf, Option<&'static str>)> {
    let folder = file.parent()?.to_path_buf();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates: Vec<&Path> = folder
        .ancestors()
        .filter(|dir| dir.parent().is_some() && Some(*dir) != home.as_deref())
        .collect();
    for markers in [VCS_MARKERS, PROJECT_MARKERS] {
        for dir in &candidates {
            if let Some(marker) = markers.iter().find(|m| dir.join(m).exists()) {
                return Some((dir.to_path_buf(), Some(*marker)));
            }
        }
    }
    Some((folder, None))
}

impl Backend {
    /// On the first `didOpen` of a client that sent no root: open the file's
    /// project and serve it from now on. Synchronous, so edits that follow
    /// the open are applied to the new engine in order.
    pub(super) fn adopt_root_for(&self, file: &Path) {
        if !self.inner.root_pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some((old, _)) = self.inner.project.get() else {
            return;
        };
        let Some((root, marker)) = project_root_for(file) else {
            return;
        };
        let old = old.engine();
        let config = old.config();
        let opened = Engine::open(
            &root,
            &self.inner.options.paths.cache_dir,
            old.file_config().clone(),
            config,
            None,
        );
        let (engine, notes) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let message = format!(
                    "AiCockpit: the editor sent no root folder, and {} cannot be indexed: {error}",
                    root.display()
                );
                self.inner.record_error(&message);
                self.spawn_message(MessageType::ERROR, message);
                return;
            }
        };
        let engine = Arc::new(engine);
        if let Err(error) = engine.configure_ai(&self.inner.options.paths.data_dir) {
            self.inner.record_error(format!("AI service: {error}"));
        }
        let project = SharedEngine::from_engine(engine, self.inner.options.paths.clone());
        for message in notes.messages(&root) {
            project.record_error(message);
        }
        self.inner.project.set(project);
        let why = match marker {
            Some(marker) => format!("the nearest folder above {} with {marker}", file.display()),
            None => format!(
                "the folder of {}: no project marker (.git, Cargo.toml, pyproject.toml, package.json, go.mod, …) above it",
                file.display()
            ),
        };
        self.spawn_message(
            MessageType::INFO,
            format!(
                "AiCockpit: the editor sent no root folder; serving {} ({why}). \
                 Set the editor's root folder to choose another.",
                root.display(),
            ),
        );
        let backend = self.clone_handle();
        tokio::spawn(async move {
            backend.index_with_progress().await;
        });
        self.start_own_watcher();
    }

    /// Watch the project ourselves unless the client watches for us.
    pub(super) fn start_own_watcher(&self) {
        if self
            .inner
            .client_supports_watch_registration
            .load(Ordering::SeqCst)
        {
            return;
        }
        let Some((project, _)) = self.inner.project.get() else {
            return;
        };
        let client = self.client.clone();
        project.start_watcher(move |message| {
            let client = client.clone();
            tokio::spawn(async move { client.show_message(MessageType::WARNING, message).await });
        });
    }

    /// `window/showMessage` from a synchronous context.
    pub(super) fn spawn_message(&self, kind: MessageType, message: String) {
        let client = self.client.clone();
        tokio::spawn(async move { client.show_message(kind, message).await });
    }

    pub(super) fn clone_handle(&self) -> Backend {
        Backend {
            client: self.client.clone(),
            inner: self.inner.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_marker_decides_and_version_control_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("repo/.git")).unwrap();
        std::fs::create_dir_all(root.join("repo/crates/a/src")).unwrap();
        std::fs::write(root.join("repo/crates/a/Cargo.toml"), "").unwrap();
        std::fs::create_dir_all(root.join("plain/pkg")).unwrap();
        std::fs::write(root.join("plain/pyproject.toml"), "").unwrap();
        std::fs::create_dir_all(root.join("none/deep")).unwrap();

        let (found, marker) = project_root_for(&root.join("repo/crates/a/src/lib.rs")).unwrap();
        assert_eq!((found, marker), (root.join("repo"), Some(".git")));
        let (found, marker) = project_root_for(&root.join("plain/pkg/mod.py")).unwrap();
        assert_eq!(
            (found, marker),
            (root.join("plain"), Some("pyproject.toml"))
        );
        let (found, marker) = project_root_for(&root.join("none/deep/x.py")).unwrap();
        assert_eq!((found, marker), (root.join("none/deep"), None));
    }
}
