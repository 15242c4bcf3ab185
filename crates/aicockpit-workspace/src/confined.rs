//! Host-side access to folders that a container can change at any moment.
//!
//! A workspace's folder is shared with a process we do not trust: it can
//! plant symlinks, FIFOs and huge files, and swap a folder for a symlink
//! between two of our calls. Everything AiCockpit reads or writes there (and
//! every file it writes anywhere, such as archives) goes through this module:
//!
//! - paths are resolved one component at a time from a directory handle with
//!   `O_NOFOLLOW`, so no symlink is ever followed, in any component;
//! - what was opened is checked on the handle itself (`fstat`): a regular
//!   file, the device and inode the walk saw; FIFOs are opened non-blocking
//!   and refused, so they never hang a read;
//! - reads are bounded by the caller's limit;
//! - new files are created with `O_EXCL | O_NOFOLLOW` under an unpredictable
//!   name, mode 0600, then renamed within the same directory handle.
//!
//! Invariant: no function here takes a path and re-resolves it after a check;
//! a check and the use it guards always act on the same open handle.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Which file an open handle or a directory entry is, regardless of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub device: u64,
    pub inode: u64,
}

/// What a directory entry is, as seen without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    File,
    Dir,
    Symlink,
    /// FIFOs, sockets and devices: never opened.
    Other,
}

/// One entry of a folder, described without following it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: OsString,
    pub kind: EntryType,
    pub identity: Identity,
    pub size: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Seconds since the Unix epoch.
    pub modified: u64,
}

/// An open folder. Operations take single names (no `/`), so nothing is
/// resolved through a symlink, and act on this folder even if its path has
/// since been swapped for something else.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Folder {
    /// Open an absolute (or relative to the current folder) path whose every
    /// component must be a real folder: a symlink anywhere is refused with
    /// an error naming it, as is `..`.
    pub fn open_no_symlinks(path: &Path) -> io::Result<Folder> {
        let start = if path.is_absolute() { "/" } else { "." };
        let mut folder = Folder {
            fd: rustix::fs::open(start, DIR_FLAGS, Mode::empty())?,
        };
        let mut walked = PathBuf::from(start);
        for component in path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    walked.push(name);
                    folder = folder.open_dir(name).map_err(|error| {
                        refine_symlink_error(error, &walked, "a symlink, which is not followed")
                    })?;
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: `..` is not allowed here", path.display()),
                    ))
                }
            }
        }
        Ok(folder)
    }

    /// A sub-folder by name, never through a symlink.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Folder> {
        check_name(name)?;
        Ok(Folder {
            fd: rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?,
        })
    }

    /// A sub-folder by a relative `/`-separated path, each component a real folder.
    pub fn open_dir_path(&self, relative: &Path) -> io::Result<Folder> {
        let mut folder = self.try_clone()?;
        for component in relative.components() {
            match component {
                Component::CurDir => {}
                Component::Normal(name) => folder = folder.open_dir(name)?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: not a plain relative path", relative.display()),
                    ))
                }
            }
        }
        Ok(folder)
    }

    /// Make a sub-folder (mode before the umask) and open it.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<Folder> {
        check_name(name)?;
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))?;
        self.open_dir(name)
    }

    /// Open a regular file for reading, never through a symlink; a FIFO,
    /// device or socket is refused without blocking.
    pub fn open_file(&self, name: &OsStr) -> io::Result<(File, Identity, u64)> {
        check_name(name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", Path::new(name).display()),
            ));
        }
        // Regular files ignore O_NONBLOCK, but clear it for whoever reads on.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        let identity = Identity {
            device: stat.st_dev,
            inode: stat.st_ino,
        };
        Ok((
            File::from(fd),
            identity,
            u64::try_from(stat.st_size).unwrap_or(0),
        ))
    }

    /// A regular file's bytes, at most `limit` of them (more is an error).
    pub fn read_file(&self, name: &OsStr, limit: u64) -> io::Result<Vec<u8>> {
        let (file, _, size) = self.open_file(name)?;
        read_bounded(file, size, limit, name)
    }

    /// Create a new file under a random name starting with `prefix`, with
    /// `O_EXCL | O_NOFOLLOW` and mode 0600; returns it and its name.
    pub fn create_unique(&self, prefix: &str) -> io::Result<(File, OsString)> {
        for _ in 0..16 {
            let name = OsString::from(format!("{prefix}{}", random_hex(16)?));
            match rustix::fs::openat(
                &self.fd,
                name.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => return Ok((File::from(fd), name)),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free temporary name",
        ))
    }

    /// Make a new sub-folder under a random name starting with `prefix`, mode 0700.
    pub fn create_unique_dir(&self, prefix: &str) -> io::Result<(Folder, OsString)> {
        for _ in 0..16 {
            let name = OsString::from(format!("{prefix}{}", random_hex(16)?));
            match rustix::fs::mkdirat(&self.fd, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => return Ok((self.open_dir(&name)?, name)),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free temporary name",
        ))
    }

    /// Rename an entry of this folder to another name in `to` (which may be
    /// this folder); a symlink at the new name is replaced, never followed.
    pub fn rename(&self, from: &OsStr, to: &Folder, new_name: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(new_name)?;
        rustix::fs::renameat(&self.fd, from, &to.fd, new_name)?;
        Ok(())
    }

    /// Rename, failing if the new name exists.
    pub fn rename_no_replace(&self, from: &OsStr, to: &Folder, new_name: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(new_name)?;
        rustix::fs::renameat_with(
            &self.fd,
            from,
            &to.fd,
            new_name,
            rustix::fs::RenameFlags::NOREPLACE,
        )?;
        Ok(())
    }

    /// Remove a file or symlink (not what it points at).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?;
        Ok(())
    }

    /// Remove a folder and everything in it, never following a symlink.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return self.remove_file(name);
        }
        let inner = self.open_dir(name)?;
        // Folders restored without write permission must be emptied too.
        let _ = rustix::fs::fchmod(&inner.fd, Mode::from_raw_mode(0o700));
        for entry in inner.entries()? {
            if entry.kind == EntryType::Dir {
                inner.remove_tree(&entry.name)?;
            } else {
                inner.remove_file(&entry.name)?;
            }
        }
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?;
        Ok(())
    }

    /// Every entry except `.` and `..`, sorted by name, none followed.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if name == "." || name == ".." {
                continue;
            }
            let stat =
                match rustix::fs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => stat,
                    // Removed between the listing and the look: it is simply gone.
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(error) => return Err(error.into()),
                };
            out.push(Entry {
                kind: entry_type(stat.st_mode),
                identity: Identity {
                    device: stat.st_dev,
                    inode: stat.st_ino,
                },
                size: u64::try_from(stat.st_size).unwrap_or(0),
                mode: stat.st_mode & 0o7777,
                modified: u64::try_from(stat.st_mtime).unwrap_or(0),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// An entry of this folder, not followed; `None` if there is none.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<EntryType>> {
        check_name(name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(entry_type(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// A symlink's target, as stored.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        check_name(name)?;
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())?;
        Ok(OsStr::from_bytes(target.as_bytes()).to_os_string())
    }

    /// The folder above this one (`None` at `/`), opened through `..`.
    pub fn parent(&self) -> io::Result<Option<Folder>> {
        let parent = Folder {
            fd: rustix::fs::openat(&self.fd, "..", DIR_FLAGS, Mode::empty())?,
        };
        Ok((parent.identity()? != self.identity()?).then_some(parent))
    }

    /// This folder's own identity.
    pub fn identity(&self) -> io::Result<Identity> {
        let stat = rustix::fs::fstat(&self.fd)?;
        Ok(Identity {
            device: stat.st_dev,
            inode: stat.st_ino,
        })
    }

    /// Where this folder is now, as the kernel names it.
    pub fn current_path(&self) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Change this folder's permission bits.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode & 0o7777))?;
        Ok(())
    }

    pub fn try_clone(&self) -> io::Result<Folder> {
        Ok(Folder {
            fd: self.fd.try_clone()?,
        })
    }

    /// A `cap-std` view of this same folder (for code already written against it).
    pub fn to_cap_std(&self) -> io::Result<cap_std::fs::Dir> {
        Ok(cap_std::fs::Dir::from_std_file(File::from(
            self.fd.try_clone()?,
        )))
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Read an open file to the end, refusing more than `limit` bytes (the file
/// may grow while it is read).
pub fn read_bounded(file: File, size: u64, limit: u64, name: &OsStr) -> io::Result<Vec<u8>> {
    if size > limit {
        return Err(too_large(name, size, limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(name, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

fn too_large(name: &OsStr, size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {size} bytes is over the {limit}-byte limit",
            Path::new(name).display()
        ),
    )
}

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    let mut filled = 0;
    while filled < buffer.len() {
        let tail = buffer.get_mut(filled..).unwrap_or_default();
        filled += rustix::rand::getrandom(tail, rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Open `path`'s parent folder with no symlinks anywhere and return it with
/// the final name, for writing `path` through [`Folder`] calls.
pub fn open_parent(path: &Path) -> io::Result<(Folder, OsString)> {
    let name = path
        .file_name()
        .filter(|name| *name != "..")
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file name", path.display()),
            )
        })?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok((Folder::open_no_symlinks(parent)?, name.to_os_string()))
}

fn check_name(name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a single file name", name),
        ));
    }
    Ok(())
}

fn entry_type(mode: u32) -> EntryType {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => EntryType::File,
        FileType::Directory => EntryType::Dir,
        FileType::Symlink => EntryType::Symlink,
        _ => EntryType::Other,
    }
}

fn refine_symlink_error(error: io::Error, walked: &Path, what: &str) -> io::Error {
    // O_NOFOLLOW | O_DIRECTORY on a symlink fails with ELOOP or ENOTDIR.
    match error.raw_os_error() {
        Some(code) if code == libc::ELOOP || code == libc::ENOTDIR => {
            let is_link = std::fs::symlink_metadata(walked)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is {what}", walked.display()),
                )
            } else {
                error
            }
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/file"), b"x").unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        std::os::unix::fs::symlink("real/file", root.join("real/file-link")).unwrap();

        assert!(Folder::open_no_symlinks(&root.join("real")).is_ok());
        let error = Folder::open_no_symlinks(&root.join("link/")).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
        let real = Folder::open_no_symlinks(&root.join("real")).unwrap();
        assert!(real.open_file(OsStr::new("file-link")).is_err());
        assert_eq!(real.read_file(OsStr::new("file"), 10).unwrap(), b"x");
        assert!(real.read_file(OsStr::new("file"), 0).is_err());
        assert!(real.open_dir(OsStr::new("..")).is_err());
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let folder = Folder::open_no_symlinks(dir.path()).unwrap();
        let error = folder.open_file(OsStr::new("fifo")).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn unique_files_do_not_follow_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open_no_symlinks(dir.path()).unwrap();
        let (_, a) = folder.create_unique(".x-").unwrap();
        let (_, b) = folder.create_unique(".x-").unwrap();
        assert_ne!(a, b);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("final")).unwrap();
        folder.rename(&a, &folder, OsStr::new("final")).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(dir.path().join("final"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
