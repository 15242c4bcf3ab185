//! Reading a project file safely: the one way the index, the engine, the
//! navigation requests, watcher updates and the AI context read source.
//!
//! A project can hold anything a checkout or a workspace container put there:
//! a symlink to `/dev/zero` or to a file outside the project, a FIFO, a
//! sparse file of gigabytes. [`read_project_file`] therefore walks from the
//! root one folder at a time through directory handles, opening every
//! component with `O_NOFOLLOW` (a symlink anywhere below the root is
//! refused, and nothing is resolved again by path after the check), opens
//! the file with `O_NONBLOCK` (a FIFO cannot block the open), requires the
//! opened handle to be a regular file, and reads at most the limit plus one
//! byte, so neither a lying size nor a growing file costs more memory.

use std::io::Read;
use std::path::Path;

use crate::walk::SkipReason;

/// Read `rel` (`/`-separated, relative to `root`) as UTF-8 source of at most
/// `max_bytes` bytes. Refuses symlinks in any component, anything but a
/// regular file, `..` and absolute paths, binary content and invalid UTF-8.
pub fn read_project_file(root: &Path, rel: &str, max_bytes: u64) -> Result<String, SkipReason> {
    let file = open_beneath(root, rel)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(SkipReason::NotAFile);
    }
    if metadata.len() > max_bytes {
        return Err(SkipReason::TooLarge {
            size: metadata.len(),
            limit: max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max_bytes {
        // The file grew since it was measured.
        return Err(SkipReason::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(SkipReason::Binary);
    }
    String::from_utf8(bytes).map_err(|_| SkipReason::InvalidUtf8)
}

fn unreadable(error: std::io::Error) -> SkipReason {
    SkipReason::Unreadable {
        error: error.to_string(),
    }
}

/// The components of `rel`, refusing empty, `.`, `..` and absolute paths.
fn components(rel: &str) -> Result<Vec<&str>, SkipReason> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts
        .iter()
        .any(|part| part.is_empty() || *part == "." || *part == "..")
    {
        return Err(SkipReason::OutsideRoot);
    }
    Ok(parts)
}

#[cfg(unix)]
fn open_beneath(root: &Path, rel: &str) -> Result<std::fs::File, SkipReason> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    let parts = components(rel)?;
    let c_string = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| SkipReason::Unreadable {
            error: "a path with a NUL byte".into(),
        })
    };
    let open_at =
        |dir: Option<&OwnedFd>, name: &CString, flags: i32| -> Result<OwnedFd, SkipReason> {
            let at = dir.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
            // SAFETY: `name` is a NUL-terminated string that outlives the call;
            // `at` is AT_FDCWD or a descriptor owned by `dir`, open for the call.
            let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC) };
            if fd < 0 {
                let error = std::io::Error::last_os_error();
                return Err(match error.raw_os_error() {
                    // O_NOFOLLOW on a symlink, or a symlink where a folder was expected.
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) => SkipReason::Symlink,
                    _ => unreadable(error),
                });
            }
            // SAFETY: `fd` was just returned by openat and is owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
    // The root itself is the user's choice (it may be reached through a
    // symlink); nothing below it may be.
    let mut dir = open_at(
        None,
        &c_string(root.as_os_str().as_bytes())?,
        libc::O_RDONLY | libc::O_DIRECTORY,
    )?;
    let (name, folders) = parts.split_last().ok_or(SkipReason::OutsideRoot)?;
    for folder in folders {
        dir = open_at(
            Some(&dir),
            &c_string(folder.as_bytes())?,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )?;
    }
    let fd = open_at(
        Some(&dir),
        &c_string(name.as_bytes())?,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )?;
    Ok(std::fs::File::from(fd))
}

#[cfg(not(unix))]
fn open_beneath(root: &Path, rel: &str) -> Result<std::fs::File, SkipReason> {
    let mut path = root.to_path_buf();
    for part in components(rel)? {
        path.push(part);
        let metadata = std::fs::symlink_metadata(&path).map_err(unreadable)?;
        if metadata.file_type().is_symlink() {
            return Err(SkipReason::Symlink);
        }
    }
    std::fs::File::open(&path).map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes_symlinks_and_non_files_and_reads_within_the_limit() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("src")).unwrap();
        std::fs::write(root.path().join("src/a.rs"), "fn a() {}\n").unwrap();
        std::fs::write(outside.path().join("secret.rs"), "fn secret() {}\n").unwrap();
        assert_eq!(
            read_project_file(root.path(), "src/a.rs", 100).unwrap(),
            "fn a() {}\n"
        );
        assert!(matches!(
            read_project_file(root.path(), "src/a.rs", 5),
            Err(SkipReason::TooLarge { size: 10, limit: 5 })
        ));
        for bad in ["../secret.rs", "/etc/passwd", "src//a.rs", "./src/a.rs", ""] {
            assert_eq!(
                read_project_file(root.path(), bad, 100),
                Err(SkipReason::OutsideRoot),
                "{bad}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(
                outside.path().join("secret.rs"),
                root.path().join("link.rs"),
            )
            .unwrap();
            std::os::unix::fs::symlink(outside.path(), root.path().join("linked")).unwrap();
            assert_eq!(
                read_project_file(root.path(), "link.rs", 100),
                Err(SkipReason::Symlink)
            );
            assert_eq!(
                read_project_file(root.path(), "linked/secret.rs", 100),
                Err(SkipReason::Symlink)
            );
            assert_eq!(
                read_project_file(root.path(), "src", 100),
                Err(SkipReason::NotAFile)
            );
        }
    }
}
