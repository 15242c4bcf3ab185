//! File access beneath a workspace root, binary-safe, with a size limit.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::fs::Dir;

/// Why a file operation was refused or failed. Every variant names the path as given.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: the path leads outside the workspace")]
    Escape { path: String },
    #[error("{path}: no such file or folder")]
    NotFound { path: String },
    #[error("{path}: not a regular file (a FIFO, socket or device is never read)")]
    NotAFile { path: String },
    #[error("{path}: {size} bytes is over the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// What a folder entry is. Symlinks are reported, never followed by a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
}

/// The files of one workspace, confined to its root.
pub struct WorkspaceFiles {
    root: Dir,
    max_file_bytes: u64,
}

impl WorkspaceFiles {
    /// Open a workspace root. Files larger than `max_file_bytes` are neither read nor written.
    pub fn open(root: &Path, max_file_bytes: u64) -> Result<WorkspaceFiles, FileError> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())
            .map_err(|source| io_error(&root.display().to_string(), source))?;
        Ok(WorkspaceFiles {
            root: dir,
            max_file_bytes,
        })
    }

    /// Files beneath an already opened folder (the manager opens it with no
    /// symlink in its path and checks it is the workspace's own).
    pub fn from_dir(root: Dir, max_file_bytes: u64) -> WorkspaceFiles {
        WorkspaceFiles {
            root,
            max_file_bytes,
        }
    }

    /// The entries of a folder (`""` or `"."` is the root), sorted by name.
    pub fn list(&self, path: &str) -> Result<Vec<FileEntry>, FileError> {
        Ok(self.list_bounded(path, usize::MAX)?.0)
    }

    /// At most `max` entries of a folder, sorted by name, and whether there
    /// were more: a container can fill a folder with millions of entries,
    /// and a listing for a viewer must not hold them all. Past `max` the
    /// folder is read no further, so which entries come is the folder's
    /// order, not the names'.
    pub fn list_bounded(
        &self,
        path: &str,
        max: usize,
    ) -> Result<(Vec<FileEntry>, bool), FileError> {
        let rel = relative(path)?;
        let entries = if rel.as_os_str().is_empty() {
            self.root.entries()
        } else {
            self.root.read_dir(&rel)
        };
        let mut out = Vec::new();
        let mut more = false;
        for entry in entries.map_err(|e| classify(path, e))? {
            if out.len() == max {
                more = true;
                break;
            }
            let entry = entry.map_err(|e| classify(path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry.file_type().map_err(|e| classify(path, e))?;
            let kind = if file_type.is_symlink() {
                EntryKind::Symlink
            } else if file_type.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let size = if kind == EntryKind::File {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            out.push(FileEntry { name, kind, size });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, more))
    }

    /// A file's bytes. Only regular files are read: a FIFO or device planted
    /// by the container is refused without blocking.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FileError> {
        use cap_std::fs::OpenOptionsExt;
        let rel = relative(path)?;
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true).custom_flags(libc::O_NONBLOCK);
        let mut file = self
            .root
            .open_with(&rel, &options)
            .map_err(|e| classify(path, e))?;
        let metadata = file.metadata().map_err(|e| classify(path, e))?;
        if !metadata.is_file() {
            return Err(FileError::NotAFile {
                path: path.to_string(),
            });
        }
        let size = metadata.len();
        if size > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size,
                limit: self.max_file_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // Read at most one byte past the limit, in case the file grew since.
        (&mut file)
            .take(self.max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| classify(path, e))?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        Ok(bytes)
    }

    /// Create or replace a file, creating its folders. The bytes go to a new
    /// file under an unpredictable name beside it (`O_EXCL`), which then
    /// replaces the old one in one rename: readers never see half a file,
    /// and a symlink or FIFO at the name is replaced, never written through.
    /// The new file keeps the old one's permissions and owner (or, for a new
    /// file, the folder's owner), so the workspace's user can still write it.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), FileError> {
        let rel = relative(path)?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            return Err(FileError::Escape {
                path: path.to_string(),
            });
        };
        self.create_parent(&rel, path)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let existing = self
            .root
            .symlink_metadata(&rel)
            .ok()
            .filter(|m| m.is_file());
        let folder = if parent.as_os_str().is_empty() {
            self.root.try_clone()
        } else {
            self.root.open_dir(parent)
        }
        .map_err(|e| classify(path, e))?;
        let folder_metadata = folder.dir_metadata().map_err(|e| classify(path, e))?;
        let mut temporary = name.clone();
        temporary.push(format!(
            ".aicockpit-{}.tmp",
            crate::confined::random_hex(8).map_err(|e| io_error(path, e))?
        ));
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        let file = folder
            .open_with(&temporary, &options)
            .map_err(|e| classify(path, e))?;
        let result = (|| -> io::Result<()> {
            let mut file = file.into_std();
            file.write_all(bytes)?;
            use cap_std::fs::MetadataExt;
            use std::os::unix::fs::PermissionsExt;
            let (mode, uid, gid) = match &existing {
                Some(old) => (old.mode() & 0o7777, old.uid(), old.gid()),
                None => (0o644, folder_metadata.uid(), folder_metadata.gid()),
            };
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
            folder.rename(&temporary, &folder, &name)
        })();
        result.map_err(|e| {
            let _ = folder.remove_file(&temporary);
            classify(path, e)
        })
    }

    /// Create the folders above `rel` that do not exist yet. An existing
    /// parent (even a symlink out of the root) is left for the open that
    /// follows to judge, so escapes are reported as such.
    fn create_parent(&self, rel: &Path, path: &str) -> Result<(), FileError> {
        let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        match self.root.symlink_metadata(parent) {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => self.make_dirs(parent, path),
            Err(error) => Err(classify(path, error)),
        }
    }

    /// Create the missing folders of `rel` one by one. Each new folder gets
    /// the owner of the folder it is made in, as a written file does: a
    /// server running as root must not leave root-owned folders the
    /// workspace's user cannot write in.
    fn make_dirs(&self, rel: &Path, path: &str) -> Result<(), FileError> {
        use cap_std::fs::MetadataExt;
        let mut done = PathBuf::new();
        for component in rel.components() {
            let above = if done.as_os_str().is_empty() {
                self.root.dir_metadata()
            } else {
                self.root.symlink_metadata(&done)
            }
            .map_err(|e| classify(path, e))?;
            done.push(component);
            match self.root.create_dir(&done) {
                Ok(()) => {
                    // SAFETY: geteuid has no preconditions.
                    if unsafe { libc::geteuid() } == 0 {
                        // A real descriptor (a `Dir` may be `O_PATH`, which fchown refuses).
                        use cap_std::fs::OpenOptionsExt;
                        let mut options = cap_std::fs::OpenOptions::new();
                        options
                            .read(true)
                            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW);
                        let made = self
                            .root
                            .open_with(&done, &options)
                            .map_err(|e| classify(path, e))?
                            .into_std();
                        std::os::unix::fs::fchown(&made, Some(above.uid()), Some(above.gid()))
                            .map_err(|e| io_error(path, e))?;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(classify(path, error)),
            }
        }
        Ok(())
    }

    /// What is at `path` (a symlink is reported as one, never followed), or `None`.
    pub fn kind_of(&self, path: &str) -> Result<Option<EntryKind>, FileError> {
        let rel = relative(path)?;
        if rel.as_os_str().is_empty() {
            return Ok(Some(EntryKind::Dir));
        }
        match self.root.symlink_metadata(&rel) {
            Ok(metadata) if metadata.is_symlink() => Ok(Some(EntryKind::Symlink)),
            Ok(metadata) if metadata.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(classify(path, error)),
        }
    }

    /// Create a folder and its parents.
    pub fn create_dir(&self, path: &str) -> Result<(), FileError> {
        let rel = relative(path)?;
        self.make_dirs(&rel, path)
    }

    /// Rename (move) a file or folder within the workspace. Never replaces
    /// what is at `to`, not even something made there a moment ago (by the
    /// container, or by another rename): that is an `AlreadyExists` error.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let (source, target) = (relative(from)?, relative(to)?);
        let (Some(source_name), Some(target_name)) = (source.file_name(), target.file_name())
        else {
            return Err(FileError::Escape {
                path: if source.file_name().is_none() {
                    from
                } else {
                    to
                }
                .to_string(),
            });
        };
        self.create_parent(&target, to)?;
        let parent = |rel: &Path, path: &str| -> Result<Option<Dir>, FileError> {
            match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => self
                    .root
                    .open_dir(parent)
                    .map(Some)
                    .map_err(|e| classify(path, e)),
                None => Ok(None),
            }
        };
        let (source_dir, target_dir) = (parent(&source, from)?, parent(&target, to)?);
        rustix::fs::renameat_with(
            source_dir.as_ref().unwrap_or(&self.root),
            source_name,
            target_dir.as_ref().unwrap_or(&self.root),
            target_name,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| classify(from, e.into()))
    }

    /// Delete a file, a symlink (not what it points at), or a folder with its contents.
    pub fn remove(&self, path: &str) -> Result<(), FileError> {
        let rel = relative(path)?;
        if rel.as_os_str().is_empty() {
            return Err(FileError::Escape {
                path: path.to_string(),
            });
        }
        let metadata = self
            .root
            .symlink_metadata(&rel)
            .map_err(|e| classify(path, e))?;
        if metadata.is_dir() {
            self.root.remove_dir_all(&rel)
        } else {
            self.root.remove_file(&rel)
        }
        .map_err(|e| classify(path, e))
    }
}

/// A user path in one spelling (`./a//b/` is `a/b`), for whatever must
/// tell two requests for the same file apart from two for different ones
/// (the server's per-path locks). Paths that would leave the root are refused.
pub fn normalized_path(path: &str) -> Result<String, FileError> {
    let rel = relative(path)?;
    Ok(rel.to_string_lossy().into_owned())
}

/// A user path as a relative path: absolute paths and `..` are refused here
/// already (cap-std would refuse them too, and symlinks on top).
fn relative(path: &str) -> Result<PathBuf, FileError> {
    let escape = || FileError::Escape {
        path: path.to_string(),
    };
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape())
            }
        }
    }
    Ok(out)
}

fn classify(path: &str, error: io::Error) -> FileError {
    if error.to_string().contains("outside of the filesystem") {
        FileError::Escape {
            path: path.to_string(),
        }
    } else if error.kind() == io::ErrorKind::NotFound {
        FileError::NotFound {
            path: path.to_string(),
        }
    } else {
        io_error(path, error)
    }
}

fn io_error(path: &str, source: io::Error) -> FileError {
    FileError::Io {
        path: path.to_string(),
        source,
    }
}
