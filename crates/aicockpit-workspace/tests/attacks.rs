//! Regression tests for the holes a security review found: each one plays
//! the attacker inside a workspace container (or in a backup archive) on a
//! real Docker engine, and checks the attack now does no harm. The numbers
//! are the items of the review (see the threat model in docs/workspaces.md).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aicockpit_workspace::backup;
use aicockpit_workspace::image::{build_image, find_busybox, ImageSource};
use aicockpit_workspace::{CreateRequest, WorkspaceError, WorkspaceState};
use support::*;

fn request(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.to_string(),
        start: true,
        ..CreateRequest::default()
    }
}

/// A folder owned by the workspace user, as a user's project would be.
fn project_dir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    dir
}

/// A host file the attacker wants to overwrite or read.
fn victim(dir: &Path) -> PathBuf {
    let path = dir.join("victim.txt");
    std::fs::write(&path, b"precious host data").unwrap();
    path
}

/// An image whose `/tmp` is root's and not writable by others (as many
/// images have), whose passwd names uid 0 `toor`, and whose group file puts
/// `ops` (uid 1001) in the root group.
const ODD_IMAGE: &str = "aicockpit-test/odd:latest";

async fn odd_image() {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let Some(backend) = docker().await else {
                return;
            };
            let root = tempfile::tempdir().unwrap();
            let rootfs = root.path();
            for dir in ["bin", "etc", "proc", "sys", "dev", "workspace", "run"] {
                std::fs::create_dir_all(rootfs.join(dir)).unwrap();
            }
            std::fs::create_dir(rootfs.join("tmp")).unwrap();
            std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let busybox = find_busybox().unwrap();
            std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
            let listing = std::process::Command::new(&busybox)
                .arg("--list")
                .output()
                .unwrap();
            for applet in String::from_utf8_lossy(&listing.stdout).lines() {
                if !applet.is_empty() && applet != "busybox" {
                    std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
                }
            }
            std::fs::write(
                rootfs.join("etc/passwd"),
                "root:x:0:0::/:/bin/sh\ntoor:x:0:0::/:/bin/sh\ndev:x:1000:1000::/:/bin/sh\nops:x:1001:1001::/:/bin/sh\n",
            )
            .unwrap();
            // `ops` is in the root group: Docker adds it as a supplementary group.
            std::fs::write(
                rootfs.join("etc/group"),
                "root:x:0:ops\ndev:x:1000:\nops:x:1001:\n",
            )
            .unwrap();
            let source = ImageSource {
                rootfs: Some(rootfs.to_path_buf()),
                ..ImageSource::default()
            };
            build_image(&backend, ODD_IMAGE, &source, |_| {})
                .await
                .expect("building the odd test image");
        })
        .await;
}

/// 1. A symlink planted where the archive or its temporary file will be
/// written is never written through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_backup_never_writes_through_a_planted_symlink() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    let victim = victim(host.path());
    let name = unique_name("plant");
    let workspace = manager.create(request(&name)).await.unwrap();
    // The container plants links at the archive's name and at every name
    // the old code would have used for its temporary file.
    let line = format!(
        "echo hello > notes.txt && ln -s {v} out.tar.gz && ln -s {v} out.tar.gz.tmp",
        v = victim.display()
    );
    assert_eq!(sh(&manager, &name, &line).await.2, Some(0));

    let inside = workspace.dir.join("out.tar.gz");
    let error = manager.backup(&name, &inside).await.unwrap_err();
    assert!(
        error.to_string().contains("inside the folder of workspace"),
        "{error}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious host data");

    // The archive writer itself, asked to write there anyway (as a caller
    // with a folder the container shares might), replaces the link and
    // leaves the host file alone.
    backup::write_backup(&workspace.dir, serde_json::json!({}), &inside).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious host data");
    let written = std::fs::symlink_metadata(&inside).unwrap();
    assert!(written.is_file(), "the link was replaced by the archive");
    assert_eq!(written.mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&workspace.dir)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".aicockpit-backup-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Outside every workspace, the backup is written, 0600 (it holds the record).
    let outside = host.path().join("ok.tar.gz");
    manager.backup(&name, &outside).await.unwrap();
    assert_eq!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o600);
    cleanup(&manager, &name).await;
}

/// 2. A container swapping a folder for a symlink to a host folder while
/// backups run never gets a host file into an archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item02_backup_reads_no_host_file_through_a_swapped_folder() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    let secret_dir = host.path().join("secrets");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("host-only.txt"), b"host secret").unwrap();
    let name = unique_name("swap");
    let workspace = manager.create(request(&name)).await.unwrap();
    let setup = "mkdir -p d && for i in 1 2 3 4 5 6 7 8; do echo $i > d/f$i; done";
    assert_eq!(sh(&manager, &name, setup).await.2, Some(0));
    // Swap `d` for a symlink to the host folder and back, as fast as possible.
    let swapper = format!(
        "end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do \
         mv d d.real; ln -s {} d; rm d; mv d.real d; done",
        secret_dir.display()
    );
    let running = {
        let manager = &manager;
        let name = name.clone();
        async move {
            manager
                .run(
                    &name,
                    vec!["/bin/sh".into(), "-c".into(), swapper],
                    Duration::from_secs(30),
                )
                .await
        }
    };
    let backups = async {
        let out = tempfile::tempdir().unwrap();
        let (mut written, mut refused) = (0, 0);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            let archive = out.path().join(format!("b{written}-{refused}.tar.gz"));
            match manager.backup(&name, &archive).await {
                Ok(manifest) => {
                    written += 1;
                    for file in &manifest.files {
                        assert!(
                            !file.path.contains("host-only"),
                            "a host file got into the archive: {}",
                            file.path
                        );
                    }
                    // `d` may be archived as the symlink it was at that moment
                    // (never followed); as a folder it holds only its own files.
                    let restored = out.path().join(format!("r{written}"));
                    backup::restore_files(&archive, &restored).unwrap();
                    let d = restored.join("d");
                    if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                        assert!(!d.join("host-only.txt").exists());
                    }
                }
                Err(error) => {
                    refused += 1;
                    let text = error.to_string();
                    assert!(
                        text.contains("changed") || text.contains("No such file"),
                        "{text}"
                    );
                }
            }
        }
        (written, refused)
    };
    let (ran, (written, refused)) = tokio::join!(running, backups);
    ran.unwrap();
    assert!(
        written + refused > 3,
        "{written} backups, {refused} refused"
    );
    assert!(workspace.dir.join("d/f1").exists());
    cleanup(&manager, &name).await;
}

/// 4. Root in any spelling, from any source, is refused; a name that is
/// root in the image is caught by `id -u` once the container runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item04_root_is_refused_in_every_spelling_and_from_every_source() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    odd_image().await;
    let projects = tempfile::tempdir().unwrap();
    for (index, user) in [
        "00",
        "+0",
        "-0",
        "-00:-00",
        "00:00",
        "1000:0",
        "1000:-0",
        "1000:root",
        "0 ",
        "Root",
        "1000:+0",
    ]
    .iter()
    .enumerate()
    {
        let dir = project_dir(projects.path(), &format!("p{index}"));
        std::fs::write(
            dir.join(".devcontainer.json"),
            format!("{{ \"containerUser\": {user:?} }}"),
        )
        .unwrap();
        let name = unique_name("rootish");
        let error = manager
            .create(CreateRequest {
                dir: Some(dir),
                ..request(&name)
            })
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("root") || error.to_string().contains("plain"),
            "{user}: {error}"
        );
        assert!(manager.get(&name).is_err(), "{user}: no record is left");
    }

    // A name that is uid 0 inside the image, and one in the root group:
    // refused once they run (the host's view of the processes, which a fake
    // `id` put first on PATH cannot change), and stopped.
    for (user, seen) in [("toor", "uid 0"), ("ops", "groups [")] {
        let dir = project_dir(projects.path(), user);
        std::fs::write(
            dir.join(".devcontainer.json"),
            format!(
                "{{ \"image\": {ODD_IMAGE:?}, \"containerUser\": {user:?}, \
                 \"containerEnv\": {{ \"PATH\": \"/workspace/.b:/bin\" }} }}"
            ),
        )
        .unwrap();
        std::fs::create_dir(dir.join(".b")).unwrap();
        std::fs::write(dir.join(".b/id"), "#!/bin/sh\necho 1000\n").unwrap();
        std::fs::set_permissions(dir.join(".b/id"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let name = unique_name(user);
        let error = manager
            .create(CreateRequest {
                dir: Some(dir),
                ..request(&name)
            })
            .await
            .unwrap_err();
        assert!(error.to_string().contains(seen), "{user}: {error}");
        assert!(manager.get(&name).is_err(), "{user}: no record is left");
    }

    // A record edited to root (the store is a file anybody with access may
    // change) does not start.
    let name = unique_name("record");
    manager
        .create(CreateRequest {
            start: false,
            ..request(&name)
        })
        .await
        .unwrap();
    let record_path = data
        .path()
        .join("workspaces")
        .join(&name)
        .join("workspace.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    record["user"] = serde_json::json!("+0");
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let error = manager.start(&name).await.unwrap_err();
    assert!(error.to_string().contains("root"), "{error}");

    // A backup whose record says root is not restored.
    let host = tempfile::tempdir().unwrap();
    record["user"] = serde_json::json!("00:00");
    let tree = project_dir(host.path(), "tree");
    std::fs::write(tree.join("a.txt"), b"a").unwrap();
    let archive = host.path().join("root.tar.gz");
    backup::write_backup(&tree, record, &archive).unwrap();
    let error = manager
        .restore(&archive, Some(unique_name("restored")), true)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("root"), "{error}");
    cleanup(&manager, &name).await;
}

/// 5. Overlapping folders are refused, and a folder replaced between two
/// starts (by a symlink or another folder) is not mounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item05_nested_or_replaced_folders_are_never_mounted() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let projects = tempfile::tempdir().unwrap();
    let outer = project_dir(projects.path(), "outer");
    let inner = project_dir(&outer, "inner");
    let outer_name = unique_name("outer");
    manager
        .create(CreateRequest {
            dir: Some(outer.clone()),
            start: false,
            ..request(&outer_name)
        })
        .await
        .unwrap();
    for dir in [inner.clone(), outer.clone(), projects.path().to_path_buf()] {
        let error = manager
            .create(CreateRequest {
                dir: Some(dir.clone()),
                ..request(&unique_name("nested"))
            })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("overlaps"), "{dir:?}: {error}");
    }
    manager.remove(&outer_name, false).await.unwrap();

    // A folder swapped for a symlink (to `/` here) while the workspace is stopped.
    let name = unique_name("swapped");
    let dir = project_dir(projects.path(), "swapped");
    manager
        .create(CreateRequest {
            dir: Some(dir.clone()),
            ..request(&name)
        })
        .await
        .unwrap();
    manager.stop(&name).await.unwrap();
    std::fs::rename(&dir, projects.path().join("swapped.real")).unwrap();
    std::os::unix::fs::symlink("/", &dir).unwrap();
    let error = manager.start(&name).await.unwrap_err();
    assert!(error.to_string().contains("symlink"), "{error}");
    let error = manager.restart(&name).await.unwrap_err();
    assert!(error.to_string().contains("symlink"), "{error}");
    // The files API, which runs as root, will not work through it either.
    let error = manager.files(&name).err().expect("refused");
    assert!(error.to_string().contains("symlink"), "{error}");
    // A real folder in its place is another folder: refused too.
    std::fs::remove_file(&dir).unwrap();
    project_dir(projects.path(), "swapped");
    let error = manager.start(&name).await.unwrap_err();
    assert!(error.to_string().contains("not the folder"), "{error}");
    // The original back in place starts again.
    std::fs::remove_dir(&dir).unwrap();
    std::fs::rename(projects.path().join("swapped.real"), &dir).unwrap();
    assert_eq!(
        manager.start(&name).await.unwrap().state,
        WorkspaceState::Running
    );
    cleanup(&manager, &name).await;
}

/// 6. A restore racing a create of the same name never destroys the
/// winner, and a failed restore leaves nothing a later create would use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item06_restore_and_create_of_one_name_do_not_destroy_each_other() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    let source = unique_name("source");
    manager.create(request(&source)).await.unwrap();
    let fill = "head -c 3000000 /dev/urandom > big.bin && echo restored > marker.txt";
    assert_eq!(sh(&manager, &source, fill).await.2, Some(0));
    let archive = host.path().join("source.tar.gz");
    manager.backup(&source, &archive).await.unwrap();
    cleanup(&manager, &source).await;

    for round in 0..3 {
        let name = unique_name(&format!("race{round}"));
        let (restored, created) = tokio::join!(
            manager.restore(&archive, Some(name.clone()), false),
            manager.create(CreateRequest {
                start: false,
                ..request(&name)
            })
        );
        assert!(
            restored.is_ok() != created.is_ok(),
            "exactly one wins: {restored:?} / {created:?}"
        );
        let record = manager.get(&name).unwrap();
        assert!(record.dir.is_dir(), "the winner's folder is there");
        assert_eq!(
            record.dir.join("marker.txt").exists(),
            restored.is_ok(),
            "the folder holds the winner's files only"
        );
        cleanup(&manager, &name).await;
    }

    // A damaged archive: the restore fails and leaves no folder behind, so
    // a create of the same name starts empty.
    let bytes = std::fs::read(&archive).unwrap();
    let damaged = host.path().join("damaged.tar.gz");
    std::fs::write(&damaged, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let name = unique_name("damaged");
    assert!(manager
        .restore(&damaged, Some(name.clone()), false)
        .await
        .is_err());
    assert!(!data.path().join("workspaces").join(&name).exists());
    let entries: Vec<String> = std::fs::read_dir(data.path().join("workspaces"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|entry| entry.starts_with(".restore-"))
        .collect();
    assert!(entries.is_empty(), "no staging folder is left: {entries:?}");
    let created = manager.create(request(&name)).await.unwrap();
    assert!(!created.dir.join("marker.txt").exists());

    // A restore killed after its files were moved into place but before the
    // record was written leaves a marked folder, which create refuses to use.
    let interrupted = unique_name("interrupted");
    let folder = data.path().join("workspaces").join(&interrupted);
    std::fs::create_dir_all(folder.join("files")).unwrap();
    std::fs::write(folder.join("files/.devcontainer.json"), "{}").unwrap();
    std::fs::write(folder.join(".restoring-0123456789abcdef"), "").unwrap();
    let error = manager.create(request(&interrupted)).await.unwrap_err();
    assert!(error.to_string().contains("never finished"), "{error}");
    assert!(manager.get(&interrupted).is_err());
    // The restored workspace's own folder is private.
    let restored = manager
        .restore(&archive, Some(unique_name("private")), false)
        .await
        .unwrap();
    let parent = restored.dir.parent().unwrap();
    assert_eq!(std::fs::metadata(parent).unwrap().mode() & 0o777, 0o700);
    cleanup(&manager, &name).await;
    cleanup(&manager, &restored.name).await;
}

/// 8. On an image whose `/tmp` the workspace user cannot write, a timed-out
/// command is still killed; a kill that cannot happen is an error, not a
/// reported kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item08_timeouts_kill_without_a_writable_tmp_or_say_they_could_not() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager_with(data.path(), |options| {
        options.default_image = ODD_IMAGE.to_string();
        options.docker.read_only_root = false;
    })
    .await
    else {
        return;
    };
    odd_image().await;
    let name = unique_name("tmp");
    manager.create(request(&name)).await.unwrap();
    let (out, _, _) = sh(&manager, &name, "touch /tmp/x 2>&1; stat -c %a /tmp").await;
    assert!(out.contains("755"), "/tmp is not writable here: {out}");

    let output = manager
        .run(
            &name,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo started; sleep 1000".into(),
            ],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(output.timed_out);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "started\n");
    assert!(
        output.stderr.is_empty(),
        "the pid line is not shown: {:?}",
        output.stderr
    );
    let (ps, _, _) = sh(&manager, &name, "ps -o pid,args").await;
    assert!(!ps.contains("sleep 1000"), "the command still runs:\n{ps}");

    // When the kill itself cannot happen (here the container is frozen, so
    // the engine refuses the kill's exec), the run says so instead of
    // reporting a timeout as if the command had been killed.
    let workspace = manager.get(&name).unwrap();
    let run = manager.run(
        &name,
        vec!["/bin/sh".into(), "-c".into(), "sleep 1000".into()],
        Duration::from_secs(2),
    );
    let freeze = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        manager.backend().freeze(&workspace).await.unwrap();
    };
    let (result, ()) = tokio::join!(run, freeze);
    manager.backend().thaw(&workspace).await.unwrap();
    let error = result.unwrap_err();
    assert!(
        matches!(error, WorkspaceError::KillFailed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("restart"), "{error}");
    cleanup(&manager, &name).await;
}

/// 9. Limits in an archive are lowered to the configured maximums, and a
/// request above them is refused; the archive's network is not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item09_limits_are_bounded_by_the_configured_maximums() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager_with(data.path(), |options| {
        options.max_limits.memory_bytes = 256 << 20;
        options.max_limits.cpus = 1.0;
        options.max_limits.pids = 100;
    })
    .await
    else {
        return;
    };
    let error = manager
        .create(CreateRequest {
            memory: Some("1g".into()),
            ..request(&unique_name("big"))
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("max_memory"), "{error}");

    let host = tempfile::tempdir().unwrap();
    let tree = project_dir(host.path(), "tree");
    std::fs::write(tree.join("a.txt"), b"a").unwrap();
    let record = serde_json::json!({
        "id": "0123456789ab", "name": "greedy", "backend": "docker",
        "image": TEST_IMAGE, "dir": "/nonexistent", "managed_dir": true,
        "limits": { "memory_bytes": 1u64 << 40, "cpus": 64.0, "pids": 1_000_000,
                    "nofile": 1_000_000, "nproc": 1_000_000 },
        "network": "bridge", "env": {}, "user": "1000:1000", "container_id": null,
        "state": "running", "created_at": 0, "started_at": null, "last_used_at": 0
    });
    let archive = host.path().join("greedy.tar.gz");
    backup::write_backup(&tree, record, &archive).unwrap();
    let name = unique_name("greedy");
    let restored = manager
        .restore(&archive, Some(name.clone()), false)
        .await
        .unwrap();
    assert_eq!(restored.limits.memory_bytes, 256 << 20);
    assert_eq!(restored.limits.cpus, 1.0);
    assert_eq!(restored.limits.pids, 100);
    assert!(restored.limits.nofile <= 4096);
    // The archive's network is not taken: the configured one is.
    assert_eq!(restored.network, "none");
    cleanup(&manager, &name).await;
}

/// 11. A folder that would hold AiCockpit's config, or an XDG root itself,
/// is protected before it exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_protected_folders_that_do_not_exist_yet_are_protected() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let xdg_config = project_dir(home.path(), "config");
    let future_config = xdg_config.join("aicockpit");
    assert!(!future_config.exists());
    let Some(manager) = manager_with(data.path(), |options| {
        options.protected_dirs = vec![future_config.clone()];
    })
    .await
    else {
        return;
    };
    for dir in [xdg_config.clone(), home.path().to_path_buf()] {
        let error = manager
            .create(CreateRequest {
                dir: Some(dir.clone()),
                ..request(&unique_name("config"))
            })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("overlaps"), "{dir:?}: {error}");
    }
}

/// 12. Environment values stay out of labels; names are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_env_values_never_reach_labels_or_views() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("env");
    let workspace = manager
        .create(CreateRequest {
            env: [("API_TOKEN".to_string(), "hunter2-secret".to_string())].into(),
            ..request(&name)
        })
        .await
        .unwrap();
    let (out, _, _) = sh(&manager, &name, "echo $API_TOKEN").await;
    assert_eq!(
        out.trim(),
        "hunter2-secret",
        "the container still gets the value"
    );
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let inspected = docker
        .inspect_container(
            workspace.container_id.as_deref().unwrap(),
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let labels = inspected.config.unwrap().labels.unwrap();
    let record = labels.get("aicockpit.record").unwrap();
    assert!(record.contains("API_TOKEN"), "{record}");
    assert!(!record.contains("hunter2"), "{record}");
    let view = manager.get(&name).unwrap().public_view().to_string();
    assert!(
        view.contains("API_TOKEN") && !view.contains("hunter2"),
        "{view}"
    );
    cleanup(&manager, &name).await;
}
