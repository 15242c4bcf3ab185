//! Tests for workspace backups: a faithful round trip, manifests, and
//! refusal of tampered, truncated and malicious archives without writing
//! outside the destination.

#![cfg(unix)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use aicockpit_workspace::backup::{
    self, BackedUpFile, BackedUpKind, BackupError, BackupManifest, BACKUP_FORMAT, MANIFEST_NAME,
};
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Build a tree with every kind of entry a backup must preserve.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("src/nested/deeper")).expect("mkdir");
    fs::write(root.join("src/nested/deeper/leaf.txt"), b"deep leaf\n").expect("write");
    fs::write(root.join("src/main.rs"), b"fn main() {}\n").expect("write");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    fs::write(root.join("binary.bin"), &all_bytes).expect("write");
    // Big enough to span many compression and tar blocks.
    let large: Vec<u8> = (0..300_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("large.dat"), &large).expect("write");
    fs::write(root.join("empty.txt"), b"").expect("write");
    fs::create_dir(root.join("empty-dir")).expect("mkdir");
    symlink("src/nested/deeper/leaf.txt", root.join("leaf-link")).expect("symlink");
    symlink("/definitely/not/here", root.join("dangling-absolute")).expect("symlink");
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").expect("write");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o750)).expect("chmod");
    fs::write(root.join("readonly.txt"), b"do not touch").expect("write");
    fs::set_permissions(root.join("readonly.txt"), fs::Permissions::from_mode(0o444))
        .expect("chmod");
    fs::create_dir(root.join("locked")).expect("mkdir");
    fs::write(root.join("locked/inside.txt"), b"inside a read-only folder").expect("write");
    fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o555)).expect("chmod");
}

/// Let the temporary directory be removed after a test left read-only folders.
fn unlock(path: &Path) {
    if path.join("locked").exists() {
        let _ = fs::set_permissions(path.join("locked"), fs::Permissions::from_mode(0o755));
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_tree_survives_a_round_trip() {
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("root");
    fs::create_dir(&root).expect("mkdir");
    sample_tree(&root);
    let archive = work.path().join("backup.tar.gz");
    let metadata = json!({"name": "demo", "image": "rust:1", "labels": {"team": "core"}});

    let written = backup::write_backup(&root, metadata.clone(), &archive).expect("backup");
    assert!(!work.path().join("backup.tar.gz.tmp").exists());
    assert_eq!(written.format, BACKUP_FORMAT);
    assert_eq!(written.workspace, metadata);
    assert_eq!(backup::read_manifest(&archive).expect("manifest"), written);

    let dest = work.path().join("restored");
    let restored = backup::restore_files(&archive, &dest).expect("restore");
    assert_eq!(restored, written);

    let original_hashes = backup::hash_tree(&root).expect("hash original");
    let restored_hashes = backup::hash_tree(&dest).expect("hash restored");
    assert!(original_hashes.contains_key("src/nested/deeper/leaf.txt"));
    assert!(original_hashes.contains_key("empty.txt"));
    assert_eq!(original_hashes, restored_hashes);

    assert_eq!(
        fs::read(dest.join("binary.bin")).expect("read"),
        (0..=255u8).collect::<Vec<u8>>()
    );
    assert!(dest.join("empty-dir").is_dir());
    assert_eq!(
        fs::read_dir(dest.join("empty-dir")).expect("list").count(),
        0
    );
    for link in ["leaf-link", "dangling-absolute"] {
        assert!(fs::symlink_metadata(dest.join(link))
            .expect("stat")
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_link(dest.join(link)).expect("readlink"),
            fs::read_link(root.join(link)).expect("readlink")
        );
    }
    for path in ["run.sh", "readonly.txt", "locked", "src", "empty.txt"] {
        assert_eq!(
            mode_of(&dest.join(path)),
            mode_of(&root.join(path)),
            "{path}"
        );
    }
    assert_eq!(mode_of(&dest.join("run.sh")), 0o750);

    let described = written
        .files
        .iter()
        .find(|file| file.path == "leaf-link")
        .expect("the link is listed");
    assert_eq!(described.kind, BackedUpKind::Symlink);
    assert_eq!(
        described.target.as_deref(),
        Some("src/nested/deeper/leaf.txt")
    );
    unlock(&root);
    unlock(&dest);
}

#[test]
fn an_archive_written_inside_the_tree_does_not_back_itself_up() {
    let root = tempfile::tempdir().expect("temp dir");
    fs::write(root.path().join("a.txt"), b"a").expect("write");
    let archive = root.path().join("self.tar.gz");
    let manifest = backup::write_backup(root.path(), json!(null), &archive).expect("backup");
    let paths: Vec<&str> = manifest
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    assert_eq!(paths, vec!["a.txt"]);
}

#[test]
fn the_manifest_is_the_first_entry() {
    let work = tempfile::tempdir().expect("temp dir");
    fs::create_dir(work.path().join("root")).expect("mkdir");
    fs::write(work.path().join("root/z.txt"), b"z").expect("write");
    let archive = work.path().join("b.tar.gz");
    backup::write_backup(&work.path().join("root"), json!({"id": 7}), &archive).expect("backup");

    let file = fs::File::open(&archive).expect("open");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let names: Vec<String> = tar
        .entries()
        .expect("entries")
        .map(|entry| {
            let entry = entry.expect("entry");
            String::from_utf8_lossy(&entry.path_bytes()).into_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec![MANIFEST_NAME.to_string(), "files/z.txt".to_string()]
    );
}

/// One hand-made archive member; names are written raw, bypassing the tar
/// crate's own checks, as an attacker would.
enum Member<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
    let mut header = tar::Header::new_old();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

fn craft(archive: &Path, manifest: &serde_json::Value, members: &[Member<'_>]) {
    let file = fs::File::create(archive).expect("create");
    let mut builder = tar::Builder::new(GzEncoder::new(file, flate2::Compression::fast()));
    let manifest_bytes = serde_json::to_vec(manifest).expect("json");
    builder
        .append(
            &raw_header(
                MANIFEST_NAME,
                tar::EntryType::Regular,
                manifest_bytes.len() as u64,
                "",
            ),
            manifest_bytes.as_slice(),
        )
        .expect("append");
    for member in members {
        let (header, data): (tar::Header, &[u8]) = match member {
            Member::File(name, data) => (
                raw_header(name, tar::EntryType::Regular, data.len() as u64, ""),
                data,
            ),
            Member::Dir(name) => (raw_header(name, tar::EntryType::Directory, 0, ""), b""),
            Member::Symlink(name, target) => {
                (raw_header(name, tar::EntryType::Symlink, 0, target), b"")
            }
            Member::HardLink(name, target) => {
                (raw_header(name, tar::EntryType::Link, 0, target), b"")
            }
        };
        builder.append(&header, data).expect("append");
    }
    builder
        .into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip")
        .flush()
        .expect("flush");
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn file_entry(path: &str, bytes: &[u8]) -> BackedUpFile {
    BackedUpFile {
        path: path.to_string(),
        kind: BackedUpKind::File,
        size: bytes.len() as u64,
        mode: 0o644,
        sha256: Some(sha256_hex(bytes)),
        target: None,
    }
}

fn link_entry(path: &str, target: &str) -> BackedUpFile {
    BackedUpFile {
        path: path.to_string(),
        kind: BackedUpKind::Symlink,
        size: 0,
        mode: 0o777,
        sha256: None,
        target: Some(target.to_string()),
    }
}

fn manifest_of(files: Vec<BackedUpFile>) -> serde_json::Value {
    serde_json::to_value(BackupManifest {
        format: BACKUP_FORMAT,
        created_at: 0,
        workspace: json!({}),
        files,
    })
    .expect("manifest json")
}

#[test]
fn a_file_changed_inside_the_archive_is_corrupt() {
    let work = tempfile::tempdir().expect("temp dir");
    let original = b"the original content";
    let tampered = b"the tampered content";
    assert_eq!(original.len(), tampered.len());
    let archive = work.path().join("tampered.tar.gz");
    craft(
        &archive,
        &manifest_of(vec![file_entry("notes.txt", original)]),
        &[Member::File("files/notes.txt", tampered)],
    );
    let dest = work.path().join("dest");
    match backup::restore_files(&archive, &dest) {
        Err(BackupError::Corrupt { path, reason }) => {
            assert_eq!(path, "notes.txt");
            assert!(reason.contains("SHA-256"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!dest.exists(), "a failed restore removes what it created");

    // The untampered archive restores, so the failure above is the content's.
    craft(
        &archive,
        &manifest_of(vec![file_entry("notes.txt", original)]),
        &[Member::File("files/notes.txt", original)],
    );
    backup::restore_files(&archive, &dest).expect("the honest archive restores");
    assert_eq!(fs::read(dest.join("notes.txt")).expect("read"), original);
}

#[test]
fn entries_missing_or_unlisted_are_corrupt() {
    let work = tempfile::tempdir().expect("temp dir");
    let archive = work.path().join("a.tar.gz");
    let cases: Vec<(serde_json::Value, Vec<Member<'_>>, &str)> = vec![
        (
            manifest_of(vec![file_entry("a.txt", b"a"), file_entry("b.txt", b"b")]),
            vec![Member::File("files/a.txt", b"a")],
            "b.txt",
        ),
        (
            manifest_of(vec![file_entry("a.txt", b"a")]),
            vec![
                Member::File("files/a.txt", b"a"),
                Member::File("files/extra.txt", b"x"),
            ],
            "extra.txt",
        ),
        (
            manifest_of(vec![file_entry("a.txt", b"a"), file_entry("h.txt", b"a")]),
            vec![
                Member::File("files/a.txt", b"a"),
                Member::HardLink("files/h.txt", "files/a.txt"),
            ],
            "h.txt",
        ),
        (
            manifest_of(vec![file_entry("a.txt", b"a")]),
            vec![
                Member::File("files/a.txt", b"a"),
                Member::File("files/a.txt", b"a"),
            ],
            "a.txt",
        ),
        (
            manifest_of(vec![file_entry("a.txt", b"a")]),
            vec![Member::Dir("files/a.txt")],
            "a.txt",
        ),
    ];
    for (manifest, members, expected_path) in cases {
        craft(&archive, &manifest, &members);
        let dest = tempfile::tempdir().expect("temp dir");
        match backup::restore_files(&archive, dest.path()) {
            Err(BackupError::Corrupt { path, .. }) => assert_eq!(path, expected_path),
            other => panic!("expected Corrupt at {expected_path}, got {other:?}"),
        }
        assert_eq!(
            fs::read_dir(dest.path()).expect("list").count(),
            0,
            "an existing empty destination is left empty"
        );
    }
}

#[test]
fn a_symlink_restored_earlier_cannot_carry_writes_outside() {
    let work = tempfile::tempdir().expect("temp dir");
    let outside = work.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let outside_text = outside.to_str().expect("utf-8 temp path");
    let archive = work.path().join("evil.tar.gz");
    let payload = b"owned";

    for target in [outside_text, "..", "../outside", "/"] {
        craft(
            &archive,
            &manifest_of(vec![
                link_entry("link", target),
                file_entry("link/evil", payload),
            ]),
            &[
                Member::Symlink("files/link", target),
                Member::File("files/link/evil", payload),
            ],
        );
        let dest = work.path().join("dest");
        match backup::restore_files(&archive, &dest) {
            Err(BackupError::Escape { path }) => assert_eq!(path, "link/evil"),
            other => panic!("link to {target}: expected Escape, got {other:?}"),
        }
        assert!(!outside.join("evil").exists(), "link to {target}");
        assert!(!work.path().join("evil").exists(), "link to {target}");
        assert!(!dest.exists(), "link to {target}: dest is removed again");
    }
}

#[test]
fn parent_and_absolute_paths_are_escapes() {
    let work = tempfile::tempdir().expect("temp dir");
    let outside = work.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let absolute = format!("{}/absolute-evil", outside.display());
    let archive = work.path().join("evil.tar.gz");
    let payload = b"owned";

    let names = [
        "files/../escape".to_string(),
        "files/../../escape".to_string(),
        "files/sub/../../../escape".to_string(),
        absolute.clone(),
        format!("/files{absolute}"),
    ];
    for name in &names {
        craft(
            &archive,
            &manifest_of(vec![file_entry("escape", payload)]),
            &[Member::File(name, payload)],
        );
        let dest = work.path().join("dest");
        match backup::restore_files(&archive, &dest) {
            Err(BackupError::Escape { path }) => assert_eq!(&path, name),
            other => panic!("{name}: expected Escape, got {other:?}"),
        }
        assert!(!work.path().join("escape").exists(), "{name}");
        assert!(!outside.join("absolute-evil").exists(), "{name}");
        assert!(!dest.exists(), "{name}");
    }
}

#[test]
fn a_destination_with_content_is_refused_and_left_alone() {
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("root");
    fs::create_dir(&root).expect("mkdir");
    fs::write(root.join("a.txt"), b"from the backup").expect("write");
    let archive = work.path().join("b.tar.gz");
    backup::write_backup(&root, json!({}), &archive).expect("backup");

    let dest = work.path().join("busy");
    fs::create_dir(&dest).expect("mkdir");
    fs::write(dest.join("a.txt"), b"precious").expect("write");
    match backup::restore_files(&archive, &dest) {
        Err(BackupError::DestinationNotEmpty { path }) => assert_eq!(path, dest),
        other => panic!("expected DestinationNotEmpty, got {other:?}"),
    }
    assert_eq!(fs::read(dest.join("a.txt")).expect("read"), b"precious");

    let file_dest = work.path().join("a-file");
    fs::write(&file_dest, b"not a folder").expect("write");
    assert!(matches!(
        backup::restore_files(&archive, &file_dest),
        Err(BackupError::DestinationNotEmpty { .. })
    ));
    assert_eq!(fs::read(&file_dest).expect("read"), b"not a folder");
}

#[test]
fn truncated_and_foreign_archives_are_clear_errors() {
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("root");
    fs::create_dir(&root).expect("mkdir");
    let noise: Vec<u8> = (0..200_000u32)
        .map(|index| (index.wrapping_mul(2_246_822_519) >> 7) as u8)
        .collect();
    fs::write(root.join("noise.bin"), &noise).expect("write");
    let archive = work.path().join("b.tar.gz");
    backup::write_backup(&root, json!({}), &archive).expect("backup");
    let bytes = fs::read(&archive).expect("read");

    let truncated = work.path().join("truncated.tar.gz");
    for length in [bytes.len() / 2, bytes.len() - 9, 40, 0] {
        fs::write(&truncated, &bytes[..length]).expect("write");
        let dest = work.path().join("dest");
        let result = backup::restore_files(&truncated, &dest);
        assert!(
            matches!(
                result,
                Err(BackupError::NotABackup { .. }) | Err(BackupError::Corrupt { .. })
            ),
            "truncated to {length}: {result:?}"
        );
        assert!(!dest.exists(), "truncated to {length}");
    }

    let text = work.path().join("notes.txt");
    fs::write(&text, b"just some text, not gzip").expect("write");
    for result in [
        backup::read_manifest(&text),
        backup::restore_files(&text, &work.path().join("dest")),
    ] {
        match result {
            Err(error @ BackupError::NotABackup { .. }) => {
                assert!(error.to_string().contains("notes.txt"), "{error}")
            }
            other => panic!("expected NotABackup, got {other:?}"),
        }
    }

    assert!(matches!(
        backup::read_manifest(&work.path().join("missing.tar.gz")),
        Err(BackupError::Io { .. })
    ));
}

#[test]
fn a_newer_format_is_reported_as_such() {
    let work = tempfile::tempdir().expect("temp dir");
    let archive = work.path().join("future.tar.gz");
    craft(
        &archive,
        &json!({"format": BACKUP_FORMAT + 1, "created_at": 0, "workspace": {}, "files": [], "new": true}),
        &[],
    );
    match backup::read_manifest(&archive) {
        Err(BackupError::UnsupportedFormat { found }) => assert_eq!(found, BACKUP_FORMAT + 1),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

#[test]
fn hash_tree_sees_content_changes_and_ignores_links() {
    let root = tempfile::tempdir().expect("temp dir");
    fs::write(root.path().join("a.txt"), b"one").expect("write");
    symlink("a.txt", root.path().join("link")).expect("symlink");
    let before = backup::hash_tree(root.path()).expect("hash");
    assert_eq!(before.keys().collect::<Vec<_>>(), vec!["a.txt"]);
    assert_eq!(before.get("a.txt"), Some(&sha256_hex(b"one")));
    fs::write(root.path().join("a.txt"), b"two").expect("write");
    assert_ne!(backup::hash_tree(root.path()).expect("hash"), before);
}

/// Item 10 of the security review: a manifest that is a gzip bomb (here
/// 60 MiB of spaces in a few dozen KiB, under the size cap) is refused after about a MiB of
/// inflation, not read whole into memory.
#[test]
fn a_gzip_bomb_manifest_is_refused_early() {
    const CLAIMED: u64 = 60 << 20;
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("bomb.tar.gz");
    {
        let file = fs::File::create(&archive).expect("create");
        let mut encoder = GzEncoder::new(file, flate2::Compression::fast());
        let mut header = tar::Header::new_gnu();
        header.set_path(MANIFEST_NAME).expect("path");
        header.set_size(CLAIMED);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        encoder.write_all(header.as_bytes()).expect("header");
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..(CLAIMED >> 20) {
            encoder.write_all(&spaces).expect("spaces");
        }
        encoder.finish().expect("finish");
    }
    let compressed = fs::metadata(&archive).expect("metadata").len();
    assert!(compressed < CLAIMED / 100, "a bomb: {compressed} bytes");
    for result in [
        backup::read_manifest(&archive),
        backup::restore_files(&archive, &work.path().join("dest")),
    ] {
        match result {
            Err(BackupError::NotABackup { reason, .. }) => {
                assert!(reason.contains("decompression bomb"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(!work.path().join("dest").exists());
}

/// Item 10, beneath tar: a long-name header (GNU `L`) that tar reads whole
/// before any entry, claiming 80 MiB of zeros (over the manifest's cap), is stopped by the budget
/// under tar; so is a manifest whose metadata is a huge JSON array.
#[test]
fn headers_and_metadata_cannot_make_restore_allocate_gigabytes() {
    let work = tempfile::tempdir().expect("tempdir");
    let archive = work.path().join("longname.tar.gz");
    {
        let file = fs::File::create(&archive).expect("create");
        let mut encoder = GzEncoder::new(file, flate2::Compression::fast());
        let mut header = tar::Header::new_gnu();
        header.set_path("././@LongLink").expect("path");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(80 << 20);
        header.set_mode(0o644);
        header.set_cksum();
        encoder.write_all(header.as_bytes()).expect("header");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            encoder.write_all(&zeros).expect("zeros");
        }
        encoder.finish().expect("finish");
    }
    match backup::read_manifest(&archive) {
        Err(BackupError::NotABackup { reason, .. }) => {
            assert!(reason.contains("more than its manifest"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Metadata of a few MiB of tiny numbers: refused by size, never built
    // into a tree of millions of JSON values.
    let metadata = serde_json::Value::Array(
        (0..300_000u64)
            .map(|i| json!(i.wrapping_mul(2_654_435_761) % 1_000_000_007))
            .collect(),
    );
    let tree = work.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    let big = work.path().join("big.tar.gz");
    backup::write_backup(&tree, metadata, &big).expect("backup");
    match backup::read_manifest(&big) {
        Err(BackupError::NotABackup { reason, .. }) => {
            assert!(reason.contains("workspace record is over"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A sparse file costs a container nothing and a terabyte to read: a
/// backup refuses a tree over its byte limit before reading it, and a
/// restore refuses a manifest that lists more than the limit.
#[test]
fn backups_and_restores_are_bounded_in_size() {
    let work = tempfile::tempdir().expect("tempdir");
    let tree = work.path().join("tree");
    fs::create_dir(&tree).expect("mkdir");
    fs::write(tree.join("small.txt"), b"small").expect("write");
    let sparse = fs::File::create(tree.join("sparse.bin")).expect("create");
    sparse.set_len(1 << 40).expect("a sparse terabyte");
    let started = std::time::Instant::now();
    let error =
        backup::write_backup_limited(&tree, json!({}), &work.path().join("a.tar.gz"), 1 << 30)
            .expect_err("over the limit");
    assert!(matches!(error, BackupError::TooLarge { .. }), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    fs::remove_file(tree.join("sparse.bin")).expect("remove");
    let archive = work.path().join("b.tar.gz");
    backup::write_backup(&tree, json!({}), &archive).expect("backup");
    let error = backup::restore_files_limited(&archive, &work.path().join("dest"), 3)
        .expect_err("the manifest lists 5 bytes");
    assert!(matches!(error, BackupError::TooLarge { .. }), "{error}");
    assert!(!work.path().join("dest").exists());
}
