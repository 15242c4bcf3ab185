//! Backup and restore of a workspace's files as a gzip-compressed tar.
//!
//! Layout: the first entry is the manifest, `aicockpit-backup.json`
//! ([`BackupManifest`]), so it can be read without decompressing the rest;
//! then every file, folder and symlink of the workspace under `files/`, in
//! the manifest's order (a folder always comes before what it contains).
//!
//! Invariants: the tree is walked and read through directory handles that
//! never follow a symlink (`crate::confined`), and every file read is the
//! regular file the walk listed; the archive is written under an
//! unpredictable name with `O_EXCL | O_NOFOLLOW`, mode 0600, then renamed,
//! so no partial archive is left and no planted symlink is written through;
//! the manifest is read with a size cap and an inflation-ratio limit. Restoring
//! writes only beneath the destination, through a `cap-std` directory, never
//! through a symlink it restored, verifies every file against the manifest's
//! SHA-256, and on any failure removes what it created so the destination is
//! as it was before.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::fs::Dir;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::confined::{self, EntryType, Folder, Identity};

/// The manifest format this module writes and the only one it reads.
pub const BACKUP_FORMAT: u32 = 1;

/// Name of the first entry of every backup.
pub const MANIFEST_NAME: &str = "aicockpit-backup.json";

/// What a backup holds, stored as its first entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BackupManifest {
    pub format: u32,
    /// When the backup was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// The caller's metadata about the workspace, stored as given.
    pub workspace: serde_json::Value,
    /// Every entry, a folder before its contents.
    pub files: Vec<BackedUpFile>,
}

/// One file, folder or symlink of a backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BackedUpFile {
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    pub kind: BackedUpKind,
    /// Size in bytes of a file; 0 for folders and symlinks.
    pub size: u64,
    /// Permission bits (`0o777` at most).
    pub mode: u32,
    /// SHA-256 of a file's bytes in lowercase hex; `None` for folders and symlinks.
    pub sha256: Option<String>,
    /// A symlink's target, as stored in the link; `None` for files and folders.
    pub target: Option<String>,
}

/// What kind of entry a [`BackedUpFile`] is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackedUpKind {
    File,
    Dir,
    Symlink,
}

/// Why a backup or restore failed. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not an AiCockpit backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
    #[error("the backup uses format {found}, but this version of AiCockpit reads only format {BACKUP_FORMAT}")]
    UnsupportedFormat { found: u32 },
    #[error("the backup is corrupt at `{path}`: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(
        "the backup entry `{path}` would be written outside the destination, so it was refused"
    )]
    Escape { path: String },
    #[error("{path} is not an empty folder, so the backup was not restored into it")]
    DestinationNotEmpty { path: PathBuf },
    #[error("{path} has a name that is not UTF-8, which a backup cannot hold")]
    UnsupportedName { path: PathBuf },
    #[error(
        "the files add up to more than {limit} bytes, the most one backup holds \
         (workspaces.max_backup_bytes); remove large files or raise the limit"
    )]
    TooLarge { limit: u64 },
    #[error(
        "{path} changed while it was being backed up; back up again once the workspace is idle"
    )]
    Changed { path: PathBuf },
}

/// Back up the tree at `root` into a new archive at `archive`, with the
/// caller's `workspace` metadata in the manifest. Sockets, FIFOs and devices
/// are skipped and not recorded.
///
/// The tree may be changed while it is read by a process we do not trust:
/// it is walked and read through directory handles that never follow a
/// symlink, and each file read must be the regular file the walk saw (same
/// device and inode). The archive is written to a new file with an
/// unpredictable name, created with `O_EXCL | O_NOFOLLOW` and mode 0600 in
/// the archive's folder (opened with no symlink in its path), then renamed
/// over `archive` through the same folder handle.
pub fn write_backup(
    root: &Path,
    workspace: serde_json::Value,
    archive: &Path,
) -> Result<BackupManifest, BackupError> {
    write_backup_limited(root, workspace, archive, DEFAULT_MAX_TOTAL_BYTES)
}

/// The most file bytes one backup holds unless the caller says otherwise.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 32 << 30;

/// [`write_backup`], refusing a tree whose files add up to more than
/// `max_total_bytes` (a container can make a sparse file of a terabyte for
/// free; reading it would not be).
pub fn write_backup_limited(
    root: &Path,
    workspace: serde_json::Value,
    archive: &Path,
    max_total_bytes: u64,
) -> Result<BackupManifest, BackupError> {
    let (folder, final_name) =
        confined::open_parent(archive).map_err(|source| io_error(archive, source))?;
    let (file, temporary_name) = folder
        .create_unique(".aicockpit-backup-")
        .map_err(|source| io_error(archive, source))?;
    let temporary = archive.with_file_name(&temporary_name);
    let mut guard = RemoveOnDrop {
        folder: &folder,
        name: Some(temporary_name.clone()),
    };
    // The archive may be written inside the tree it backs up: skip it.
    let mut skip = vec![identity_of_file(&file)];
    if let Ok(Some(_)) = folder.entry(&final_name) {
        if let Ok((_, identity, _)) = folder.open_file(&final_name) {
            skip.push(identity);
        }
    }

    let top = Folder::open_no_symlinks(root).map_err(|source| io_error(root, source))?;
    let found = walk(&top, root, &skip, max_total_bytes)?;
    let manifest = BackupManifest {
        format: BACKUP_FORMAT,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0),
        workspace,
        files: found.iter().map(|entry| entry.described.clone()).collect(),
    };

    let archive_error = |source| io_error(&temporary, source);
    let mut builder = tar::Builder::new(GzEncoder::new(file, flate2::Compression::default()));
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|error| {
        archive_error(io::Error::new(
            io::ErrorKind::InvalidData,
            error.to_string(),
        ))
    })?;
    let mut header = entry_header(tar::EntryType::Regular, 0o644, manifest.created_at);
    header.set_size(manifest_bytes.len() as u64);
    builder
        .append_data(&mut header, MANIFEST_NAME, manifest_bytes.as_slice())
        .map_err(archive_error)?;

    // Walk again in the same order, re-opening each folder from its parent
    // and checking it is still the one the first walk saw.
    let mut folders: Vec<(String, Folder)> = vec![(String::new(), top)];
    for entry in &found {
        let parent = parent_of(&entry.described.path);
        while folders.last().is_some_and(|(path, _)| path != parent) {
            folders.pop();
        }
        let Some((_, current)) = folders.last() else {
            return Err(BackupError::Changed {
                path: root.join(&entry.described.path),
            });
        };
        append_entry(&mut builder, current, entry, root, &temporary)?;
        if entry.described.kind == BackedUpKind::Dir {
            let opened = current
                .open_dir(OsStr::new(entry.name()))
                .and_then(|folder| Ok((folder.identity()?, folder)));
            match opened {
                Ok((identity, folder)) if identity == entry.identity => {
                    folders.push((entry.described.path.clone(), folder));
                }
                _ => {
                    return Err(BackupError::Changed {
                        path: root.join(&entry.described.path),
                    })
                }
            }
        }
    }

    let file = builder
        .into_inner()
        .and_then(GzEncoder::finish)
        .map_err(archive_error)?;
    file.sync_all().map_err(archive_error)?;
    drop(file);
    folder
        .rename(&temporary_name, &folder, &final_name)
        .map_err(|source| io_error(archive, source))?;
    guard.name = None;
    Ok(manifest)
}

/// The manifest of a backup, read from its first entry only.
pub fn read_manifest(archive: &Path) -> Result<BackupManifest, BackupError> {
    let file = open_archive(archive)?;
    let (mut tar, compressed, _) = archive_reader(file);
    let mut entries = tar.entries().map_err(|error| damaged(archive, error))?;
    read_manifest_entry(&mut entries, archive, &compressed)
}

/// A backup's inflated stream, with a count of the compressed bytes read
/// and a budget of inflated bytes: at first room for the manifest only,
/// then, once the manifest is read, for what it lists. tar reads some
/// headers (long names, PAX records) whole before any entry is seen, so the
/// budget sits beneath tar, where no header can get past it.
fn archive_reader(file: fs::File) -> (ArchiveStream, Rc<Cell<u64>>, Rc<Cell<u64>>) {
    let counter = CountingReader::new(io::BufReader::new(file));
    let compressed = counter.count.clone();
    let budget = Rc::new(Cell::new(MAX_MANIFEST_BYTES + HEADER_ALLOWANCE));
    let reader = BudgetReader {
        inner: GzDecoder::new(counter),
        remaining: budget.clone(),
    };
    (tar::Archive::new(reader), compressed, budget)
}

/// The tar reader over a backup's budgeted, counted, inflated bytes.
type ArchiveStream = tar::Archive<BudgetReader<GzDecoder<CountingReader<io::BufReader<fs::File>>>>>;

/// Room for an entry's headers (its own, a long-name one) and padding.
const HEADER_ALLOWANCE: u64 = 64 * 1024;

/// A reader that refuses to give more than its budget.
struct BudgetReader<R> {
    inner: R,
    remaining: Rc<Cell<u64>>,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let remaining = self.remaining.get();
        if remaining == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the archive holds more than its manifest lists",
            ));
        }
        let room = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let read = self
            .inner
            .read(buffer.get_mut(..room).unwrap_or_default())?;
        self.remaining.set(remaining - read as u64);
        Ok(read)
    }
}

/// Restore the files of a backup into `dest`, which must not exist or be an
/// empty folder. Every file is checked against the manifest; on any failure
/// what was created is removed again.
pub fn restore_files(archive: &Path, dest: &Path) -> Result<BackupManifest, BackupError> {
    restore_files_limited(archive, dest, DEFAULT_MAX_TOTAL_BYTES)
}

/// [`restore_files`], refusing an archive whose manifest lists more than
/// `max_total_bytes` of files, before anything is written.
pub fn restore_files_limited(
    archive: &Path,
    dest: &Path,
    max_total_bytes: u64,
) -> Result<BackupManifest, BackupError> {
    let file = open_archive(archive)?;
    let created = prepare_destination(dest)?;
    let result = restore_into(file, archive, dest, max_total_bytes);
    if result.is_err() {
        // Best effort: the restore's own error is the one worth reporting.
        let _ = clean_destination(dest, created);
    }
    result
}

/// SHA-256 (lowercase hex) of every regular file beneath `root`, by
/// `/`-separated relative path. Symlinks are not followed.
pub fn hash_tree(root: &Path) -> Result<BTreeMap<String, String>, BackupError> {
    let top = Folder::open_no_symlinks(root).map_err(|source| io_error(root, source))?;
    Ok(walk(&top, root, &[], u64::MAX)?
        .into_iter()
        .filter_map(|entry| {
            let described = entry.described;
            described.sha256.map(|hash| (described.path, hash))
        })
        .collect())
}

/// An entry found while walking a tree: its manifest entry, and what it
/// was on disk, so the second pass can check it is still the same.
struct Found {
    described: BackedUpFile,
    identity: Identity,
    modified: u64,
}

impl Found {
    fn name(&self) -> &str {
        let path = &self.described.path;
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// Every file, folder and symlink beneath `top`, depth first, sorted by
/// name, a folder before its contents; files are hashed on the way, each
/// read through a handle checked to be the regular file the listing saw.
/// Nothing is followed; sockets, FIFOs and devices are left out.
fn walk(
    top: &Folder,
    root: &Path,
    skip: &[Identity],
    max_total_bytes: u64,
) -> Result<Vec<Found>, BackupError> {
    let mut total: u64 = 0;
    struct Frame {
        folder: Folder,
        prefix: String,
        entries: std::vec::IntoIter<confined::Entry>,
    }
    let listing = |folder: &Folder, prefix: &str| {
        folder
            .entries()
            .map_err(|source| io_error(&root.join(prefix), source))
    };
    let mut found = Vec::new();
    let mut stack = vec![Frame {
        entries: listing(top, "")?.into_iter(),
        folder: top.try_clone().map_err(|source| io_error(root, source))?,
        prefix: String::new(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(entry) = frame.entries.next() else {
            stack.pop();
            continue;
        };
        let full = root.join(&frame.prefix).join(&entry.name);
        let Some(name) = entry.name.to_str() else {
            return Err(BackupError::UnsupportedName { path: full });
        };
        if skip.contains(&entry.identity) {
            continue;
        }
        let relative = if frame.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", frame.prefix)
        };
        let mut described = BackedUpFile {
            path: relative.clone(),
            kind: BackedUpKind::File,
            size: 0,
            mode: entry.mode & 0o777,
            sha256: None,
            target: None,
        };
        match entry.kind {
            EntryType::Other => continue,
            EntryType::Symlink => {
                let target = frame
                    .folder
                    .read_link(&entry.name)
                    .map_err(|_| BackupError::Changed { path: full.clone() })?;
                described.kind = BackedUpKind::Symlink;
                described.target = Some(
                    target
                        .into_string()
                        .map_err(|_| BackupError::UnsupportedName { path: full.clone() })?,
                );
            }
            EntryType::File => {
                total = total.saturating_add(entry.size);
                if total > max_total_bytes {
                    return Err(BackupError::TooLarge {
                        limit: max_total_bytes,
                    });
                }
                let (file, identity, _) = frame
                    .folder
                    .open_file(&entry.name)
                    .map_err(|_| BackupError::Changed { path: full.clone() })?;
                if identity != entry.identity {
                    return Err(BackupError::Changed { path: full });
                }
                let mut reader = HashingReader::new(file);
                io::copy(&mut reader, &mut io::sink()).map_err(|source| io_error(&full, source))?;
                let (hash, size) = reader.finish();
                described.sha256 = Some(hash);
                described.size = size;
            }
            EntryType::Dir => {
                described.kind = BackedUpKind::Dir;
                let folder = frame
                    .folder
                    .open_dir(&entry.name)
                    .map_err(|_| BackupError::Changed { path: full.clone() })?;
                if folder.identity().ok() != Some(entry.identity) {
                    return Err(BackupError::Changed { path: full });
                }
                let entries = listing(&folder, &relative)?.into_iter();
                found.push(Found {
                    described,
                    identity: entry.identity,
                    modified: entry.modified,
                });
                stack.push(Frame {
                    folder,
                    prefix: relative,
                    entries,
                });
                continue;
            }
        }
        found.push(Found {
            described,
            identity: entry.identity,
            modified: entry.modified,
        });
    }
    Ok(found)
}

/// The folder part of a `/`-separated relative path (`""` at the top).
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// Append one entry under `files/`, read from `folder` (its parent, opened
/// without following symlinks). A file is read a second time and must still
/// be the same regular file with the hash taken for the manifest.
fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    folder: &Folder,
    entry: &Found,
    root: &Path,
    temporary: &Path,
) -> Result<(), BackupError> {
    let described = &entry.described;
    let name = format!("files/{}", described.path);
    let full = root.join(&described.path);
    let archive_error = |source| io_error(temporary, source);
    match described.kind {
        BackedUpKind::Dir => {
            let mut header =
                entry_header(tar::EntryType::Directory, described.mode, entry.modified);
            builder
                .append_data(&mut header, &name, io::empty())
                .map_err(archive_error)
        }
        BackedUpKind::Symlink => {
            let mut header = entry_header(tar::EntryType::Symlink, described.mode, entry.modified);
            let target = described.target.as_deref().unwrap_or_default();
            builder
                .append_link(&mut header, &name, target)
                .map_err(archive_error)
        }
        BackedUpKind::File => {
            let (file, identity, _) = folder
                .open_file(OsStr::new(entry.name()))
                .map_err(|_| BackupError::Changed { path: full.clone() })?;
            if identity != entry.identity {
                return Err(BackupError::Changed { path: full });
            }
            let mut header = entry_header(tar::EntryType::Regular, described.mode, entry.modified);
            header.set_size(described.size);
            let mut reader = HashingReader::new(file.take(described.size));
            builder
                .append_data(&mut header, &name, &mut reader)
                .map_err(|source| match reader.failure.take() {
                    // A read failure is the file's fault, not the archive's.
                    Some(read_error) => io_error(&full, read_error),
                    None => archive_error(source),
                })?;
            let (hash, count) = reader.finish();
            if count != described.size || described.sha256.as_deref() != Some(hash.as_str()) {
                return Err(BackupError::Changed { path: full });
            }
            Ok(())
        }
    }
}

fn entry_header(kind: tar::EntryType, mode: u32, modified: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(modified);
    header.set_size(0);
    header
}

/// The largest manifest read: a few hundred bytes per file, so room for
/// about a hundred thousand files; more is refused rather than buffered.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Past the first MiB, a manifest that inflates more than this many times
/// its compressed size is refused as a decompression bomb (real manifests
/// compress about ten times).
const MAX_MANIFEST_RATIO: u64 = 200;

fn read_manifest_entry<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    archive: &Path,
    compressed: &Rc<Cell<u64>>,
) -> Result<BackupManifest, BackupError> {
    let not_a_backup = |reason: String| BackupError::NotABackup {
        path: archive.to_path_buf(),
        reason,
    };
    let mut entry = match entries.next() {
        Some(entry) => entry.map_err(|error| damaged(archive, error))?,
        None => return Err(not_a_backup("the archive is empty".to_string())),
    };
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    if name != MANIFEST_NAME || !entry.header().entry_type().is_file() {
        return Err(not_a_backup(format!(
            "its first entry is `{name}`, not the manifest `{MANIFEST_NAME}`"
        )));
    }
    if entry.size() > MAX_MANIFEST_BYTES {
        return Err(not_a_backup(format!(
            "its manifest claims {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
            entry.size()
        )));
    }
    // Read in small steps, checking the size and the inflation ratio as the
    // bytes arrive, so a bomb is stopped after about a MiB, not a gigabyte.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let read = entry
            .read(&mut chunk)
            .map_err(|error| damaged(archive, error))?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(chunk.get(..read).unwrap_or_default());
        let inflated = bytes.len() as u64;
        if inflated > MAX_MANIFEST_BYTES {
            return Err(not_a_backup(
                "the manifest is implausibly large".to_string(),
            ));
        }
        if inflated > (1 << 20) && inflated > compressed.get().saturating_mul(MAX_MANIFEST_RATIO) {
            return Err(not_a_backup(format!(
                "its manifest inflates more than {MAX_MANIFEST_RATIO} times (a decompression bomb?)"
            )));
        }
    }
    parse_manifest(&bytes).map_err(|error| match error {
        ManifestError::Format(found) => BackupError::UnsupportedFormat {
            found: u32::try_from(found).unwrap_or(u32::MAX),
        },
        ManifestError::Other(reason) => not_a_backup(reason),
    })
}

enum ManifestError {
    Format(u64),
    Other(String),
}

/// The most room the caller's workspace metadata may take in a manifest.
const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// Parse a manifest straight into its types: the format number first (so
/// another format is named as such), then the file list, with the
/// caller's metadata kept as raw text until its size is checked, so no
/// hostile JSON is ever built into a large tree.
fn parse_manifest(bytes: &[u8]) -> Result<BackupManifest, ManifestError> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Raw<'a> {
        format: u32,
        created_at: u64,
        #[serde(borrow)]
        workspace: &'a serde_json::value::RawValue,
        files: Vec<BackedUpFile>,
    }
    let other = ManifestError::Other;
    let format = serde_json::from_slice::<FormatOnly>(bytes)
        .map_err(|error| other(format!("the manifest is not valid JSON: {error}")))?
        .format
        .ok_or_else(|| other("the manifest has no format number".to_string()))?;
    if format != u64::from(BACKUP_FORMAT) {
        return Err(ManifestError::Format(format));
    }
    let raw: Raw<'_> = serde_json::from_slice(bytes)
        .map_err(|error| other(format!("the manifest is malformed: {error}")))?;
    if raw.workspace.get().len() > MAX_METADATA_BYTES {
        return Err(other(format!(
            "its workspace record is over {MAX_METADATA_BYTES} bytes"
        )));
    }
    let workspace = serde_json::from_str(raw.workspace.get())
        .map_err(|error| other(format!("the manifest is malformed: {error}")))?;
    Ok(BackupManifest {
        format: raw.format,
        created_at: raw.created_at,
        workspace,
        files: raw.files,
    })
}

/// Open an archive to read: a regular file, reached with no symlink in its path.
fn open_archive(archive: &Path) -> Result<fs::File, BackupError> {
    let (folder, name) =
        confined::open_parent(archive).map_err(|source| io_error(archive, source))?;
    let (file, _, _) = folder
        .open_file(&name)
        .map_err(|source| io_error(archive, source))?;
    Ok(file)
}

/// A reader that counts the bytes it passes on, for ratio checks.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        CountingReader {
            inner,
            count: Rc::new(Cell::new(0)),
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count.set(self.count.get().saturating_add(read as u64));
        Ok(read)
    }
}

/// Make sure `dest` is an empty folder, creating it if absent. Returns
/// whether it was created, so a failed restore knows to remove it.
fn prepare_destination(dest: &Path) -> Result<bool, BackupError> {
    match fs::symlink_metadata(dest) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            // Private until restored and handed to the workspace's user.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dest)
                .map_err(|source| io_error(dest, source))?;
            Ok(true)
        }
        Err(source) => Err(io_error(dest, source)),
        Ok(metadata) if metadata.is_dir() => {
            let mut entries = fs::read_dir(dest).map_err(|source| io_error(dest, source))?;
            if entries.next().is_some() {
                return Err(BackupError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
            Ok(false)
        }
        Ok(_) => Err(BackupError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        }),
    }
}

fn restore_into(
    file: fs::File,
    archive: &Path,
    dest: &Path,
    max_total_bytes: u64,
) -> Result<BackupManifest, BackupError> {
    let root = Folder::open_no_symlinks(dest)
        .and_then(|folder| folder.to_cap_std())
        .map_err(|source| io_error(dest, source))?;
    let (mut tar, compressed, budget) = archive_reader(file);
    let mut entries = tar.entries().map_err(|error| damaged(archive, error))?;
    let manifest = read_manifest_entry(&mut entries, archive, &compressed)?;
    // From here on, the archive may hold what the manifest lists and no more.
    let listed = manifest.files.iter().fold(0u64, |total, file| {
        total.saturating_add(file.size).saturating_add(
            2048 + 2 * file.path.len() as u64
                + file.target.as_ref().map_or(0, |t| 2 * t.len() as u64),
        )
    });
    let files_total = manifest
        .files
        .iter()
        .fold(0u64, |total, file| total.saturating_add(file.size));
    if files_total > max_total_bytes {
        return Err(BackupError::TooLarge {
            limit: max_total_bytes,
        });
    }
    budget.set(listed.saturating_add(HEADER_ALLOWANCE));

    let mut expected: BTreeMap<&str, &BackedUpFile> = BTreeMap::new();
    for described in &manifest.files {
        if expected
            .insert(described.path.as_str(), described)
            .is_some()
        {
            return Err(corrupt(&described.path, "is listed twice in the manifest"));
        }
    }
    let mut restored: BTreeSet<String> = BTreeSet::new();
    // Folder modes are applied last, so a read-only folder can still be filled.
    let mut folder_modes: Vec<(String, u32)> = Vec::new();

    for entry in entries {
        let mut entry = entry.map_err(|error| damaged(archive, error))?;
        let raw = entry.path_bytes().into_owned();
        let Some(relative) = member_path(&raw)? else {
            continue;
        };
        let Some(described) = expected.get(relative.as_str()).copied() else {
            return Err(corrupt(
                &relative,
                "is in the archive but not in its manifest",
            ));
        };
        if !restored.insert(relative.clone()) {
            return Err(corrupt(&relative, "appears twice in the archive"));
        }
        check_parents(&root, &relative)?;
        let kind = entry.header().entry_type();
        let target_path = dest.join(&relative);
        let write_error = |source| io_error(&target_path, source);
        match described.kind {
            BackedUpKind::Dir if kind.is_dir() => {
                root.create_dir(&relative).map_err(write_error)?;
                folder_modes.push((relative, described.mode));
            }
            BackedUpKind::File if kind.is_file() => {
                restore_file(&root, &relative, described, &mut entry, &target_path)?;
            }
            BackedUpKind::Symlink if kind.is_symlink() => {
                // The manifest's target is authoritative: tar normalises link
                // names (`a//b` becomes `a/b`), the manifest keeps them exact.
                let target = described
                    .target
                    .as_deref()
                    .ok_or_else(|| corrupt(&relative, "is a symlink without a target"))?;
                create_symlink(&root, target, &relative).map_err(write_error)?;
            }
            _ => {
                return Err(corrupt(
                    &relative,
                    &format!(
                        "is a {:?} in the manifest but a different kind of entry in the archive",
                        described.kind
                    ),
                ))
            }
        }
    }

    // Read to the end of the compressed stream so its checksum is verified:
    // an archive cut inside its trailer is damaged even if every entry is there.
    io::copy(tar.into_inner().by_ref(), &mut io::sink())
        .map_err(|error| damaged(archive, error))?;
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|described| !restored.contains(&described.path))
    {
        return Err(corrupt(
            &missing.path,
            "is listed in the manifest but missing from the archive",
        ));
    }
    // Children before parents, so a read-only parent does not block its children.
    for (relative, mode) in folder_modes.iter().rev() {
        set_folder_mode(&root, relative, *mode)
            .map_err(|source| io_error(&dest.join(relative), source))?;
    }
    Ok(manifest)
}

/// The relative path of an archive member under `files/`, or `None` for the
/// `files/` folder itself. Absolute paths and `..` are escapes.
fn member_path(raw: &[u8]) -> Result<Option<String>, BackupError> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        corrupt(
            &String::from_utf8_lossy(raw),
            "has a name that is not UTF-8",
        )
    })?;
    if text.starts_with('/') || text.split('/').any(|part| part == "..") {
        return Err(BackupError::Escape {
            path: text.to_string(),
        });
    }
    let mut parts = text
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".");
    if parts.next() != Some("files") {
        return Err(corrupt(text, "is not under `files/`"));
    }
    let relative = parts.collect::<Vec<_>>().join("/");
    Ok(if relative.is_empty() {
        None
    } else {
        Some(relative)
    })
}

/// Every folder above `relative` must already have been restored as a real
/// folder: a symlink there would let a later entry be written elsewhere.
fn check_parents(root: &Dir, relative: &str) -> Result<(), BackupError> {
    let mut prefix_end = 0;
    while let Some(slash) = relative[prefix_end..].find('/') {
        let prefix = &relative[..prefix_end + slash];
        prefix_end += slash + 1;
        match root.symlink_metadata(prefix) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(BackupError::Escape {
                    path: relative.to_string(),
                })
            }
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(corrupt(
                    relative,
                    "lies beneath something that is not a folder",
                ))
            }
            Err(_) => return Err(corrupt(relative, "comes before the folder that holds it")),
        }
    }
    Ok(())
}

fn restore_file<R: Read>(
    root: &Dir,
    relative: &str,
    described: &BackedUpFile,
    entry: &mut tar::Entry<'_, R>,
    target_path: &Path,
) -> Result<(), BackupError> {
    let write_error = |source| io_error(target_path, source);
    if entry.size() != described.size {
        return Err(corrupt(
            relative,
            &format!(
                "is {} bytes in the archive but {} in the manifest",
                entry.size(),
                described.size
            ),
        ));
    }
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    let file = root.open_with(relative, &options).map_err(write_error)?;
    let mut writer = HashingWriter::new(file);
    io::copy(entry, &mut writer).map_err(|error| match writer.failure.take() {
        Some(write_failure) => write_error(write_failure),
        None => corrupt(
            relative,
            &format!("could not be read from the archive: {error}"),
        ),
    })?;
    let (hash, count, file) = writer.finish();
    if count != described.size || described.sha256.as_deref() != Some(hash.as_str()) {
        return Err(corrupt(
            relative,
            "its content does not match the manifest's SHA-256",
        ));
    }
    set_file_mode(&file, described.mode).map_err(write_error)
}

/// Remove what a failed restore created: `dest` itself if it was created,
/// otherwise everything inside it.
fn clean_destination(dest: &Path, created: bool) -> io::Result<()> {
    make_writable(dest)?;
    if created {
        return fs::remove_dir_all(dest);
    }
    for entry in fs::read_dir(dest)? {
        let path = entry?.path();
        if fs::symlink_metadata(&path)?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Give the owner full access to every folder beneath `path` (not through
/// symlinks), so folders restored read-only can be emptied.
fn make_writable(path: &Path) -> io::Result<()> {
    let mut pending = vec![path.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let metadata = fs::symlink_metadata(&folder)?;
        if !metadata.is_dir() {
            continue;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() | 0o700;
            fs::set_permissions(&folder, fs::Permissions::from_mode(mode))?;
        }
        for entry in fs::read_dir(&folder)? {
            pending.push(entry?.path());
        }
    }
    Ok(())
}

/// A reader that hashes what passes through it and keeps its own read
/// failure apart from failures of whoever consumes it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    failure: Option<io::Error>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            failure: None,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buffer) {
            Ok(read) => {
                let chunk = buffer.get(..read).unwrap_or_default();
                self.hasher.update(chunk);
                self.count += read as u64;
                Ok(read)
            }
            Err(error) => {
                let copy = io::Error::new(error.kind(), error.to_string());
                self.failure = Some(error);
                Err(copy)
            }
        }
    }
}

/// A writer that hashes what passes through it, keeping its own write
/// failure apart from read failures of the source.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
    failure: Option<io::Error>,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            failure: None,
        }
    }

    fn finish(self) -> (String, u64, W) {
        (hex(&self.hasher.finalize()), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self.inner.write(buffer) {
            Ok(written) => {
                let chunk = buffer.get(..written).unwrap_or_default();
                self.hasher.update(chunk);
                self.count += written as u64;
                Ok(written)
            }
            Err(error) => {
                let copy = io::Error::new(error.kind(), error.to_string());
                self.failure = Some(error);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Removes a new file of `folder` when dropped, unless disarmed by taking the name out.
struct RemoveOnDrop<'a> {
    folder: &'a Folder,
    name: Option<std::ffi::OsString>,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            // Nothing useful can be done if the leftover cannot be removed.
            let _ = self.folder.remove_file(&name);
        }
    }
}

/// The identity of an open file (the archive being written, to skip it).
fn identity_of_file(file: &fs::File) -> Identity {
    use std::os::unix::fs::MetadataExt;
    match file.metadata() {
        Ok(metadata) => Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
        },
        Err(_) => Identity {
            device: u64::MAX,
            inode: u64::MAX,
        },
    }
}

#[cfg(unix)]
fn set_file_mode(file: &cap_std::fs::File, mode: u32) -> io::Result<()> {
    use cap_std::fs::PermissionsExt;
    file.set_permissions(cap_std::fs::Permissions::from_mode(mode & 0o777))
}

#[cfg(unix)]
fn set_folder_mode(root: &Dir, relative: &str, mode: u32) -> io::Result<()> {
    use cap_std::fs::PermissionsExt;
    root.set_permissions(relative, cap_std::fs::Permissions::from_mode(mode & 0o777))
}

#[cfg(not(unix))]
fn set_file_mode(_file: &cap_std::fs::File, _mode: u32) -> io::Result<()> {
    // Only Unix has permission bits to restore.
    Ok(())
}

#[cfg(not(unix))]
fn set_folder_mode(_root: &Dir, _relative: &str, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_symlink(root: &Dir, target: &str, relative: &str) -> io::Result<()> {
    // `symlink_contents` stores any target, even an absolute one; restoring
    // never follows it (see `check_parents`).
    root.symlink_contents(target, relative)
}

#[cfg(not(unix))]
fn create_symlink(_root: &Dir, _target: &str, _relative: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are restored on Unix only",
    ))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn io_error(path: &Path, source: io::Error) -> BackupError {
    BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn damaged(archive: &Path, error: io::Error) -> BackupError {
    BackupError::NotABackup {
        path: archive.to_path_buf(),
        reason: format!("the archive is damaged or truncated ({error})"),
    }
}

fn corrupt(path: &str, reason: &str) -> BackupError {
    BackupError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}
