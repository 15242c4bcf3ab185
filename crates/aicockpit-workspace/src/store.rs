//! Workspace records on disk: one JSON file per workspace under
//! `<data_dir>/workspaces/<name>/workspace.json`, next to its `files/`.
//!
//! Invariant: a record is replaced atomically (write to a temporary file,
//! then rename), so a crash never leaves half a record; a damaged record is
//! reported by name and does not hide the others.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::WorkspaceError;
use crate::model::Workspace;

const RECORD: &str = "workspace.json";

/// Makes temporary file names unique among the writers of one process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// A record's key must be one plain folder name: nothing a caller passes
/// may lead the store to another folder (`a/../b`, `x/files/evil`).
fn check_key(name: &str) -> Result<(), WorkspaceError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if plain {
        Ok(())
    } else {
        Err(WorkspaceError::NotFound {
            name: name.to_string(),
        })
    }
}

/// The folder of workspace records.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Records live in `<data_dir>/workspaces`.
    pub fn new(data_dir: &Path) -> Store {
        Store::at(data_dir.join("workspaces"))
    }

    /// Records directly beneath `root` (the pool keeps its own).
    pub fn at(root: PathBuf) -> Store {
        Store { root }
    }

    /// The folder holding every record's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a record is kept in.
    pub fn record_path(&self, name: &str) -> PathBuf {
        self.workspace_dir(name).join(RECORD)
    }

    /// The folder of one workspace (its record and, when managed, its files).
    pub fn workspace_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The host folder a managed workspace's files live in.
    pub fn files_dir(&self, name: &str) -> PathBuf {
        self.workspace_dir(name).join("files")
    }

    pub fn get(&self, name: &str) -> Result<Option<Workspace>, WorkspaceError> {
        check_key(name)?;
        let path = self.workspace_dir(name).join(RECORD);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|error| WorkspaceError::Store {
                        path,
                        message: error.to_string(),
                    })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(WorkspaceError::io(path, error)),
        }
    }

    /// Every readable record, sorted by name, and the damaged ones as errors.
    pub fn list(&self) -> Result<(Vec<Workspace>, Vec<WorkspaceError>), WorkspaceError> {
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok((records, damaged))
            }
            Err(error) => return Err(WorkspaceError::io(&self.root, error)),
        };
        for entry in entries {
            let entry = entry.map_err(|error| WorkspaceError::io(&self.root, error))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match self.get(&name) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(error) => damaged.push(error),
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((records, damaged))
    }

    /// Write a new record (or replace one) atomically. The workspace's
    /// folder is private (0700) and the record 0600: it may hold secrets in
    /// `env`.
    pub fn put(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        check_key(&workspace.name)?;
        let dir = self.workspace_dir(&workspace.name);
        std::fs::create_dir_all(&self.root)
            .map_err(|error| WorkspaceError::io(&self.root, error))?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(WorkspaceError::io(&dir, error)),
        }
        self.write_record(workspace, &dir)
    }

    /// Replace an existing record; a record deleted meanwhile (the workspace
    /// was removed) is not brought back.
    pub fn update(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        check_key(&workspace.name)?;
        let dir = self.workspace_dir(&workspace.name);
        if !dir.join(RECORD).exists() {
            return Err(WorkspaceError::NotFound {
                name: workspace.name.clone(),
            });
        }
        self.write_record(workspace, &dir)
    }

    fn write_record(&self, workspace: &Workspace, dir: &Path) -> Result<(), WorkspaceError> {
        let path = dir.join(RECORD);
        let temporary = dir.join(format!(
            ".{RECORD}.{}.{}.tmp",
            std::process::id(),
            NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes =
            serde_json::to_vec_pretty(workspace).map_err(|error| WorkspaceError::Store {
                path: path.clone(),
                message: error.to_string(),
            })?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            WorkspaceError::io(&path, error)
        })
    }

    /// Delete a record; with `purge_files`, its managed `files/` folder too.
    pub fn delete(&self, name: &str, purge_files: bool) -> Result<(), WorkspaceError> {
        check_key(name)?;
        let dir = self.workspace_dir(name);
        let record = dir.join(RECORD);
        match std::fs::remove_file(&record) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(WorkspaceError::io(record, error)),
        }
        if purge_files {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(WorkspaceError::io(dir, error)),
            }
        } else {
            // Leave `files/`; remove the folder only if nothing else is in it.
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }
}
