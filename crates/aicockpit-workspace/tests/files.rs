//! Workspace file access against a real folder: the operations, binary
//! content, size limits, and every way out of the root.

use aicockpit_workspace::{EntryKind, FileError, WorkspaceFiles};

fn workspace() -> (tempfile::TempDir, WorkspaceFiles) {
    let dir = tempfile::tempdir().unwrap();
    let files = WorkspaceFiles::open(dir.path(), 4096).unwrap();
    (dir, files)
}

#[test]
fn write_read_list_rename_remove() {
    let (dir, files) = workspace();
    files.write("src/main.rs", b"fn main() {}\n").unwrap();
    files.create_dir("empty/nested").unwrap();
    assert_eq!(files.read("./src/main.rs").unwrap(), b"fn main() {}\n");
    let root: Vec<(String, EntryKind)> = files
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(
        root,
        [
            ("empty".to_string(), EntryKind::Dir),
            ("src".to_string(), EntryKind::Dir)
        ]
    );
    assert_eq!(files.list("src").unwrap()[0].size, 13);

    files.rename("src/main.rs", "bin/app.rs").unwrap();
    assert!(matches!(
        files.read("src/main.rs"),
        Err(FileError::NotFound { .. })
    ));
    assert!(dir.path().join("bin/app.rs").is_file());
    files.remove("bin").unwrap();
    assert!(!dir.path().join("bin").exists());
    assert!(matches!(
        files.remove("bin"),
        Err(FileError::NotFound { .. })
    ));
}

#[test]
fn binary_content_round_trips_and_sizes_are_limited() {
    let (_dir, files) = workspace();
    let bytes: Vec<u8> = (0..=255u8).collect();
    files.write("blob.bin", &bytes).unwrap();
    assert_eq!(files.read("blob.bin").unwrap(), bytes);
    let error = files.write("big.bin", &vec![0u8; 5000]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "big.bin: 5000 bytes is over the 4096-byte limit"
    );
    std::fs::write(_dir.path().join("huge.bin"), vec![1u8; 10_000]).unwrap();
    assert!(matches!(
        files.read("huge.bin"),
        Err(FileError::TooLarge { size: 10_000, .. })
    ));
}

#[test]
fn no_path_leads_out_of_the_root() {
    let (dir, files) = workspace();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
    for path in ["../../etc/passwd", "/etc/passwd", "a/../../x", "..", "/"] {
        assert!(
            matches!(files.read(path), Err(FileError::Escape { .. })),
            "{path}"
        );
        assert!(
            matches!(files.write(path, b"x"), Err(FileError::Escape { .. })),
            "{path}"
        );
    }
    assert!(matches!(
        files.rename("..", "x"),
        Err(FileError::Escape { .. })
    ));
    assert!(matches!(files.remove(""), Err(FileError::Escape { .. })));

    // Symlinks made inside the workspace (say by a process in the container) that point out.
    std::os::unix::fs::symlink("/", dir.path().join("to_root")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        dir.path().join("secret_link"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("outside_dir")).unwrap();
    assert!(matches!(
        files.read("to_root/etc/passwd"),
        Err(FileError::Escape { .. })
    ));
    assert!(matches!(
        files.read("secret_link"),
        Err(FileError::Escape { .. })
    ));
    let written = files.write("outside_dir/new", b"x");
    assert!(
        matches!(written, Err(FileError::Escape { .. })),
        "{written:?}"
    );
    assert!(matches!(
        files.list("outside_dir"),
        Err(FileError::Escape { .. })
    ));
    assert!(!outside.path().join("new").exists());

    // Links are listed as links, and removing one leaves its target alone.
    let kinds: Vec<EntryKind> = files
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().all(|k| *k == EntryKind::Symlink));
    files.remove("secret_link").unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s3cret"
    );

    // A symlink that stays inside is fine.
    files.write("real.txt", b"inside").unwrap();
    std::os::unix::fs::symlink("real.txt", dir.path().join("alias.txt")).unwrap();
    assert_eq!(files.read("alias.txt").unwrap(), b"inside");
}

/// What a container can plant in its folder: a FIFO is refused without
/// hanging the reader; a symlink or FIFO at a name being written is
/// replaced, never written through; a replaced file keeps its mode.
#[test]
fn planted_fifos_and_links_neither_hang_nor_redirect() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let (dir, files) = workspace();
    let fifo = dir.path().join("pipe");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (done, waiter) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let result = files.read("pipe");
        let _ = done.send(());
        (files, result)
    });
    waiter
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("reading a FIFO must not block");
    let (files, result) = reader.join().unwrap();
    assert!(
        matches!(result, Err(FileError::NotAFile { .. })),
        "{result:?}"
    );

    // Writing over the FIFO and over a symlink to a file elsewhere.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("link")).unwrap();
    files.write("pipe", b"now a file").unwrap();
    files.write("link", b"now a file too").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(files.read("pipe").unwrap(), b"now a file");
    assert!(std::fs::symlink_metadata(dir.path().join("link"))
        .unwrap()
        .is_file());

    std::fs::write(dir.path().join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        dir.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    files.write("run.sh", b"#!/bin/sh\necho hi\n").unwrap();
    let mode = std::fs::metadata(dir.path().join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn new_folders_belong_to_the_owner_of_the_folder_they_are_made_in() {
    use std::os::unix::fs::MetadataExt;
    let (dir, files) = workspace();
    // As root (CI, and `aicockpit serve` in a container), hand the root to
    // another user, as a workspace's folder belongs to the workspace's user.
    // SAFETY: geteuid has no preconditions.
    let (uid, gid) = if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(dir.path(), Some(4242), Some(4243)).unwrap();
        (4242, 4243)
    } else {
        let meta = std::fs::metadata(dir.path()).unwrap();
        (meta.uid(), meta.gid())
    };
    files.write("a/b/c.txt", b"x").unwrap();
    files.create_dir("x/y").unwrap();
    files.write("m.txt", b"m").unwrap();
    files.rename("m.txt", "p/q/m.txt").unwrap();
    for made in ["a", "a/b", "a/b/c.txt", "x", "x/y", "p", "p/q", "p/q/m.txt"] {
        let meta = std::fs::symlink_metadata(dir.path().join(made)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{made}");
    }
}

/// A rename never replaces what is at its target (a file the container or
/// another request put there after any check), and a symlink at the target
/// is not followed either; nor can the root be renamed.
#[test]
fn a_rename_never_replaces_its_target() {
    let (dir, files) = workspace();
    files.write("a.txt", b"a").unwrap();
    files.write("sub/t.txt", b"target").unwrap();
    let error = files.rename("a.txt", "sub/t.txt").unwrap_err();
    assert!(
        matches!(&error, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{error}"
    );
    assert_eq!(files.read("sub/t.txt").unwrap(), b"target");
    assert_eq!(files.read("a.txt").unwrap(), b"a");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    assert!(files.rename("a.txt", "link").is_err());
    assert_eq!(
        std::fs::read_link(dir.path().join("link")).unwrap(),
        std::path::Path::new("/etc/passwd")
    );
    assert!(files.rename("", "x").is_err());
    assert!(files.rename("a.txt", ".").is_err());
    // A plain move into a new folder still works.
    files.rename("a.txt", "new/dir/a.txt").unwrap();
    assert_eq!(files.read("new/dir/a.txt").unwrap(), b"a");
}

#[test]
fn a_path_has_one_spelling() {
    use aicockpit_workspace::normalized_path;
    for spelling in ["f.txt", "./f.txt", "f.txt/", ".//f.txt", "./f.txt/."] {
        assert_eq!(normalized_path(spelling).unwrap(), "f.txt", "{spelling}");
    }
    assert_eq!(normalized_path("a//b/./c").unwrap(), "a/b/c");
    assert!(normalized_path("../f.txt").is_err());
    assert!(normalized_path("/etc/passwd").is_err());
}

/// A folder the container filled with entries is listed in part: the
/// listing holds at most the bound and says there were more.
#[test]
fn a_huge_folder_is_listed_in_part() {
    let (dir, files) = workspace();
    for n in 0..300 {
        std::fs::write(dir.path().join(format!("f{n:04}")), b"").unwrap();
    }
    let (entries, more) = files.list_bounded("", 100).unwrap();
    assert_eq!(entries.len(), 100);
    assert!(more);
    assert!(entries.windows(2).all(|w| w[0].name < w[1].name), "sorted");
    let (entries, more) = files.list_bounded("", 300).unwrap();
    assert_eq!((entries.len(), more), (300, false));
    assert_eq!(files.list("").unwrap().len(), 300);
}
