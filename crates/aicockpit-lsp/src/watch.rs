//! The server's own watcher of the project's folders, for clients that cannot
//! register file watchers (Neovim on Linux by default): files created,
//! changed or deleted outside the editor reach the index as they would through
//! `workspace/didChangeWatchedFiles`.
//!
//! Each folder the index walks is watched on its own (not recursively), so
//! ignored folders (`.gitignore`, `.ignore`) cost no watches; at most
//! [`max_watched_folders`] are watched, and hitting that bound or the
//! system's inotify limit is said once with `window/showMessage`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aicockpit_engine::Engine;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Events arriving within this time of the first one are handled together.
const BATCH_WINDOW: Duration = Duration::from_millis(150);

/// Our own bound on watched folders, below the system limit.
const MAX_WATCHED_FOLDERS: usize = 8192;

/// The bound: ours, or half the system's inotify limit when that is lower
/// (other programs need watches too).
fn max_watched_folders() -> usize {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .map_or(MAX_WATCHED_FOLDERS, |system| {
            MAX_WATCHED_FOLDERS.min((system / 2).max(1))
        })
}

/// What a watcher owner hears about.
pub(crate) enum Report {
    /// Something the user must be told once.
    Warning(String),
    /// An error for `aicockpit/status`'s `lastError`.
    Error(String),
}

/// Watch `root` and index what changes, until `stop` turns true or its
/// sender is dropped (the session ended). `report` hears warnings and errors.
pub(crate) fn spawn(
    root: PathBuf,
    engine: Arc<Engine>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    report: impl Fn(Report) + Send + Sync + 'static,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let _ = sender.send(event);
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(error) => {
            report(Report::Error(format!(
                "cannot watch {} for changes: {error}",
                root.display()
            )));
            return;
        }
    };
    tokio::spawn(async move {
        let limit = max_watched_folders();
        let mut watched = 0usize;
        let mut warned = false;
        let (folders, truncated) = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || aicockpit_engine::walk_folders(&root, limit))
                .await
                .unwrap_or_default()
        };
        let warn = |message: String, warned: &mut bool| {
            if !*warned {
                *warned = true;
                report(Report::Warning(message));
            }
        };
        if let Err(message) = add_watches(&mut watcher, &folders, &mut watched, limit) {
            warn(message, &mut warned);
        } else if truncated {
            warn(bound_message(&root, limit), &mut warned);
        }
        loop {
            let first = tokio::select! {
                event = receiver.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = stop.changed() => break,
            };
            let mut events = vec![first];
            tokio::time::sleep(BATCH_WINDOW).await;
            while let Ok(event) = receiver.try_recv() {
                events.push(event);
            }
            let mut paths = BTreeSet::new();
            let mut new_folders = Vec::new();
            let mut rules_changed = false;
            for event in events {
                if matches!(event.kind, EventKind::Access(_)) {
                    continue;
                }
                for path in event.paths {
                    // Never through a symlink: a planted `x -> /` is not a folder to watch.
                    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        if aicockpit_engine::is_walked_folder(&root, &path) {
                            new_folders.push(path);
                        }
                        continue;
                    }
                    rules_changed |= path
                        .file_name()
                        .is_some_and(|name| name == ".gitignore" || name == ".ignore");
                    paths.insert(path);
                }
            }
            // A folder created (or moved in) with files already inside: watch
            // it and everything below, and index what it holds.
            for folder in new_folders {
                let (below, truncated) =
                    aicockpit_engine::walk_folders(&folder, limit.saturating_sub(watched));
                if let Err(message) = add_watches(&mut watcher, &below, &mut watched, limit) {
                    warn(message, &mut warned);
                } else if truncated {
                    warn(bound_message(&root, limit), &mut warned);
                }
                for folder in below {
                    if let Ok(entries) = std::fs::read_dir(&folder) {
                        paths.extend(
                            entries
                                .flatten()
                                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
                                .map(|entry| entry.path()),
                        );
                    }
                }
            }
            if paths.is_empty() && !rules_changed {
                continue;
            }
            let engine = engine.clone();
            let paths: Vec<PathBuf> = paths.into_iter().collect();
            let result = tokio::task::spawn_blocking(move || {
                engine.watched_files_changed(&paths, rules_changed)
            })
            .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => report(Report::Error(error.to_string())),
                Err(error) => report(Report::Error(error.to_string())),
            }
        }
    });
}

/// Watch each folder; stops at the bound or the system limit, and says which.
fn add_watches(
    watcher: &mut RecommendedWatcher,
    folders: &[PathBuf],
    watched: &mut usize,
    limit: usize,
) -> Result<(), String> {
    for folder in folders {
        if *watched >= limit {
            break;
        }
        match watcher.watch(folder, RecursiveMode::NonRecursive) {
            Ok(()) => *watched += 1,
            Err(error) => {
                if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) {
                    return Err(format!(
                        "AiCockpit: the system's limit of file watches is reached after {watched} folders, \
                         so files changed outside the editor in other folders are not seen until they are opened \
                         or the server restarts. Raise the limit with \
                         `sudo sysctl fs.inotify.max_user_watches=524288`, or ignore folders in .ignore.",
                        watched = *watched
                    ));
                }
                // A folder removed meanwhile: nothing to watch.
                tracing::debug!(%error, folder = %folder.display(), "cannot watch");
            }
        }
    }
    Ok(())
}

fn bound_message(root: &Path, limit: usize) -> String {
    format!(
        "AiCockpit watches the first {limit} folders of {} for changes made outside the editor; \
         changes in the others are seen when a file is opened or the server restarts. \
         Ignore generated folders in .ignore to stay under the bound.",
        root.display()
    )
}
