//! The workspace manager against a real Docker engine: lifecycle,
//! persistence and reconciliation, isolation, files, backups, stats, idle
//! stop and the errors a user can run into.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aicockpit_workspace::backup::hash_tree;
use aicockpit_workspace::{
    BackendKind, CreateRequest, FileError, WorkspaceError, WorkspaceManager, WorkspaceState,
};
use bollard::query_parameters::InspectContainerOptions;
use support::*;

fn request(name: &str) -> CreateRequest {
    CreateRequest {
        name: name.to_string(),
        start: true,
        ..CreateRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_persistence_and_reconciliation() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("life");
    let created = manager
        .create(CreateRequest {
            memory: Some("96m".into()),
            cpus: Some(0.5),
            env: [("GREETING".to_string(), "hello".to_string())].into(),
            ..request(&name)
        })
        .await
        .unwrap();
    assert_eq!(created.state, WorkspaceState::Running);
    assert_eq!(created.limits.memory_bytes, 96 << 20);
    assert!(created.started_at.is_some());
    assert!(created.dir.starts_with(data.path()), "{:?}", created.dir);

    // A file written inside the container is on the host, and the environment arrived.
    let (out, _, code) = sh(
        &manager,
        &name,
        "echo $GREETING > /workspace/made-inside.txt && cat /workspace/made-inside.txt",
    )
    .await;
    assert_eq!((out.trim(), code), ("hello", Some(0)));
    assert_eq!(
        std::fs::read_to_string(created.dir.join("made-inside.txt")).unwrap(),
        "hello\n"
    );

    // Stop and start keep the files.
    assert_eq!(
        manager.stop(&name).await.unwrap().state,
        WorkspaceState::Stopped
    );
    assert_eq!(
        manager.inspect(&name).await.unwrap().state,
        WorkspaceState::Stopped
    );
    let error = manager
        .run(&name, vec!["true".into()], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorkspaceError::NotRunning { .. }),
        "{error}"
    );
    manager.start(&name).await.unwrap();
    let (out, _, _) = sh(&manager, &name, "cat /workspace/made-inside.txt").await;
    assert_eq!(out, "hello\n");
    assert_eq!(
        manager.restart(&name).await.unwrap().state,
        WorkspaceState::Running
    );

    // A new manager (as after a server restart) finds the workspace through the store.
    let again = WorkspaceManager::with_backend(
        options(data.path(), BackendKind::Docker),
        Arc::new(docker().await.unwrap()),
    );
    let report = again.reconcile().await.unwrap();
    assert!(
        report.missing.is_empty() && report.adopted.is_empty(),
        "{report:?}"
    );
    let found = again.inspect(&name).await.unwrap();
    assert_eq!(
        (found.id.as_str(), found.state),
        (created.id.as_str(), WorkspaceState::Running)
    );

    // A container removed by hand is marked missing, and start makes it again with the files.
    let engine = docker().await.unwrap();
    engine
        .docker()
        .remove_container(
            &found.container_name(),
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let report = again.reconcile().await.unwrap();
    assert_eq!(report.missing, vec![name.clone()]);
    assert_eq!(again.get(&name).unwrap().state, WorkspaceState::Missing);
    let restarted = again.start(&name).await.unwrap();
    assert_eq!(restarted.state, WorkspaceState::Running);
    assert_ne!(restarted.container_id, found.container_id);
    let (out, _, _) = sh(&again, &name, "cat /workspace/made-inside.txt").await;
    assert_eq!(out, "hello\n");

    // A labelled container without a record (the store lost it) is adopted.
    std::fs::remove_file(
        data.path()
            .join("workspaces")
            .join(&name)
            .join("workspace.json"),
    )
    .unwrap();
    assert!(again.get(&name).is_err());
    let report = again.reconcile().await.unwrap();
    assert_eq!(report.adopted, vec![name.clone()]);
    assert_eq!(
        again.inspect(&name).await.unwrap().state,
        WorkspaceState::Running
    );

    // Remove keeps the files unless purged; a new workspace of that name takes them back.
    let removed = again.remove(&name, false).await.unwrap();
    assert_eq!(removed.files_kept.as_deref(), Some(created.dir.as_path()));
    assert!(created.dir.join("made-inside.txt").exists());
    assert!(engine
        .docker()
        .inspect_container(&found.container_name(), None::<InspectContainerOptions>)
        .await
        .is_err());
    again.create(request(&name)).await.unwrap();
    let (out, _, _) = sh(&again, &name, "cat /workspace/made-inside.txt").await;
    assert_eq!(out, "hello\n");
    let purged = again.remove(&name, true).await.unwrap();
    assert_eq!(purged.files_kept, None);
    assert!(!created.dir.exists());
    assert!(again.list().unwrap().iter().all(|w| w.name != name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_hardened() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("hard");
    let workspace = manager.create(request(&name)).await.unwrap();

    // What the engine was told.
    let engine = docker().await.unwrap();
    let inspected = engine
        .docker()
        .inspect_container(&workspace.container_name(), None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspected.host_config.clone().unwrap();
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    let security = host.security_opt.clone().unwrap_or_default();
    assert!(
        security.iter().any(|o| o.starts_with("no-new-privileges")),
        "{security:?}"
    );
    assert!(
        !security.iter().any(|o| o.contains("unconfined")),
        "{security:?}"
    );
    assert_eq!(host.init, Some(true));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.memory, Some(128 << 20));
    assert_eq!(host.memory_swap, host.memory, "swap equals memory: no swap");
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    let log = host.log_config.unwrap();
    assert_eq!(
        log.config.unwrap().get("max-size").map(String::as_str),
        Some("1m")
    );
    let mounts = inspected.mounts.unwrap_or_default();
    assert_eq!(
        mounts.len(),
        1,
        "only the workspace folder is mounted: {mounts:?}"
    );
    assert_eq!(mounts[0].destination.as_deref(), Some("/workspace"));
    assert_eq!(mounts[0].source.as_deref(), workspace.dir.to_str());
    assert!(!format!("{mounts:?}").contains("docker.sock"));
    assert_eq!(inspected.config.unwrap().user.as_deref(), Some("1000:1000"));

    // What a process inside can do.
    let (status, _, _) = sh(&manager, &name, "cat /proc/self/status").await;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapPrm:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(
        field("Seccomp:"),
        "2",
        "Docker's default seccomp filter is on"
    );
    let (out, _, _) = sh(&manager, &name, "id -u; ulimit -n; ulimit -u").await;
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1000", "1024", "4096"]
    );
    let (_, err, code) = sh(&manager, &name, "echo x > /etc/evil").await;
    assert_ne!(code, Some(0));
    assert!(err.contains("Read-only file system"), "{err}");
    let (_, _, code) = sh(
        &manager,
        &name,
        "echo x > /tmp/ok && echo y > /workspace/ok",
    )
    .await;
    assert_eq!(code, Some(0), "/tmp and /workspace are writable");
    let (_, err, code) = sh(&manager, &name, "mount -t tmpfs none /mnt").await;
    assert_ne!(code, Some(0), "mount must fail without capabilities: {err}");

    // A fork bomb stops at the pids limit (busybox sh gives up at the first
    // failed fork), the processes it made stay within the limit, and the
    // workspace recovers once they end.
    let output = manager
        .run(
            &name,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "i=0; while [ $i -lt 500 ]; do sleep 6 & i=$((i+1)); done; echo survived".into(),
            ],
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("can't fork") || stderr.contains("Resource temporarily unavailable"),
        "{output:?}"
    );
    assert_ne!(output.exit_code, Some(0));
    let during = manager.stats(&name).await.unwrap();
    assert!(
        during.pids >= 32 && during.pids <= 64,
        "the bomb filled the pids limit: {during:?}"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (out, _, _) = sh(&manager, &name, "echo alive").await;
    assert_eq!(out, "alive\n");
    let stats = manager.stats(&name).await.unwrap();
    assert_eq!(stats.pids_limit, 64);
    assert!(stats.pids >= 1 && stats.pids <= 64, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 128 << 20);
    assert!(stats.memory_bytes > 0);
    cleanup(&manager, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_leaves_the_workspace() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("paths");
    manager.create(request(&name)).await.unwrap();
    // A symlink made inside the container pointing at the container's (and, seen from the host, the host's) root.
    let (_, _, code) = sh(&manager, &name, "ln -s / /workspace/root && ln -s ../../../../../etc /workspace/up && echo ok > /workspace/inside.txt").await;
    assert_eq!(code, Some(0));
    let files = manager.files(&name).unwrap();
    assert_eq!(files.read("inside.txt").unwrap(), b"ok\n");
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "root/etc/passwd",
        "up/passwd",
        "root",
        "a/../../x",
    ] {
        let error = files.read(path).unwrap_err();
        assert!(
            matches!(error, FileError::Escape { .. }),
            "{path}: {error:?}"
        );
    }
    for path in ["root/etc/evil", "../evil", "/tmp/evil", "up/evil"] {
        let error = files.write(path, b"x").unwrap_err();
        assert!(
            matches!(error, FileError::Escape { .. }),
            "{path}: {error:?}"
        );
    }
    assert!(!std::path::Path::new("/etc/evil").exists());
    // An edit through the file API is seen inside the container at once.
    files
        .write("src/from-host.txt", b"written by the editor")
        .unwrap();
    let (out, _, _) = sh(&manager, &name, "cat /workspace/src/from-host.txt").await;
    assert_eq!(out, "written by the editor");
    cleanup(&manager, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_recreate_identical_files() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("bak");
    let original = manager.create(request(&name)).await.unwrap();
    let (_, _, code) = sh(
        &manager,
        &name,
        "mkdir -p src/deep && echo 'fn main() {}' > src/main.rs && head -c 100000 /dev/urandom > src/deep/blob.bin && \
         printf '#!/bin/sh\\necho run\\n' > run.sh && chmod 755 run.sh && ln -s src/main.rs link",
    )
    .await;
    assert_eq!(code, Some(0));
    let before = hash_tree(&original.dir).unwrap();
    assert!(before.len() >= 3, "{before:?}");
    let archive = data.path().join("backup.tar.gz");
    manager.backup(&name, &archive).await.unwrap();
    manager.remove(&name, true).await.unwrap();
    assert!(!original.dir.exists());

    let restored = manager.restore(&archive, None, true).await.unwrap();
    assert_eq!(restored.name, name);
    assert_eq!(restored.limits, original.limits);
    assert_eq!(restored.state, WorkspaceState::Running);
    assert_eq!(hash_tree(&restored.dir).unwrap(), before);
    let (out, _, _) = sh(&manager, &name, "./run.sh && readlink link").await;
    assert_eq!(out, "run\nsrc/main.rs\n");
    // Restoring again under the same name is a clash; under another name it works.
    let error = manager.restore(&archive, None, false).await.unwrap_err();
    assert!(matches!(error, WorkspaceError::NameTaken { .. }), "{error}");
    let copy = unique_name("bakcopy");
    let second = manager
        .restore(&archive, Some(copy.clone()), false)
        .await
        .unwrap();
    assert_eq!(hash_tree(&second.dir).unwrap(), before);
    cleanup(&manager, &name).await;
    cleanup(&manager, &copy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creates_leave_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let engine = docker().await.unwrap();
    let containers = || async {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec!["aicockpit.workspace".to_string()]);
        engine
            .docker()
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .unwrap()
            .len()
    };
    let count = containers().await;

    // A missing image: a clear error that says how to get one.
    let name = unique_name("noimage");
    let error = manager
        .create(CreateRequest {
            image: Some("aicockpit-test/does-not-exist:1".into()),
            ..request(&name)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorkspaceError::ImageMissing { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("aicockpit image build"),
        "{error}"
    );
    assert!(!data.path().join("workspaces").join(&name).exists());
    assert_eq!(containers().await, count);

    // A name clash with an existing workspace.
    let taken = unique_name("taken");
    manager
        .create(CreateRequest {
            start: false,
            ..request(&taken)
        })
        .await
        .unwrap();
    let error = manager.create(request(&taken)).await.unwrap_err();
    assert!(matches!(error, WorkspaceError::NameTaken { .. }), "{error}");
    cleanup(&manager, &taken).await;

    // A container of that name made outside AiCockpit.
    let clash = unique_name("clash");
    engine
        .docker()
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(format!("aicockpit-{clash}")),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(TEST_IMAGE.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let error = manager.create(request(&clash)).await.unwrap_err();
    assert!(
        matches!(error, WorkspaceError::ContainerNameTaken { .. }),
        "{error}"
    );
    assert!(!data.path().join("workspaces").join(&clash).exists());
    engine
        .docker()
        .remove_container(
            &format!("aicockpit-{clash}"),
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await
        .unwrap();

    // A devcontainer.json that asks for more privileges is refused, naming the field.
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join(".devcontainer")).unwrap();
    for field in [
        "\"privileged\": true",
        "\"capAdd\": [\"SYS_ADMIN\"]",
        "\"securityOpt\": [\"seccomp=unconfined\"]",
        "\"runArgs\": [\"--privileged\"]",
        "\"mounts\": [\"source=/,target=/host,type=bind\"]",
    ] {
        std::fs::write(
            project.path().join(".devcontainer/devcontainer.json"),
            format!("{{\n  // a comment\n  \"image\": \"{TEST_IMAGE}\",\n  {field},\n}}\n"),
        )
        .unwrap();
        let name = unique_name("dev");
        let error = manager
            .create(CreateRequest {
                dir: Some(project.path().to_path_buf()),
                ..request(&name)
            })
            .await
            .unwrap_err();
        let key = field.split('"').nth(1).unwrap();
        assert!(error.to_string().contains(key), "{key}: {error}");
        assert!(manager.get(&name).is_err());
    }
    assert_eq!(containers().await, count);
    // Invalid requests never reach the engine.
    for bad in [
        CreateRequest {
            memory: Some("lots".into()),
            ..request("ok-name")
        },
        request("../escape"),
        CreateRequest {
            network: Some("host".into()),
            ..request("hostnet")
        },
    ] {
        assert!(manager.create(bad).await.is_err());
    }
    assert_eq!(containers().await, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devcontainer_settings_are_applied() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    // A user's folder must belong to the user the workspace runs as, not root.
    std::os::unix::fs::chown(project.path(), Some(1000), Some(1000)).unwrap();
    std::fs::write(
        project.path().join(".devcontainer.json"),
        format!(
            "{{ \"image\": \"{TEST_IMAGE}\", \"containerEnv\": {{ \"MODE\": \"dev\" }},\n \
             \"postCreateCommand\": \"echo created > /workspace/post-create.txt\", \"forwardPorts\": [3000] }}"
        ),
    )
    .unwrap();
    let name = unique_name("devc");
    let workspace = manager
        .create(CreateRequest {
            dir: Some(project.path().to_path_buf()),
            ..request(&name)
        })
        .await
        .unwrap();
    assert!(workspace.post_create_done);
    assert_eq!(
        std::fs::read_to_string(project.path().join("post-create.txt")).unwrap(),
        "created\n"
    );
    let (out, _, _) = sh(&manager, &name, "echo $MODE").await;
    assert_eq!(out, "dev\n");
    // A folder given with --dir is never deleted, even with purge.
    manager.remove(&name, true).await.unwrap();
    assert!(project.path().join("post-create.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_kills_on_timeout_and_idle_workspaces_stop() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("idle");
    manager.create(request(&name)).await.unwrap();
    let started = std::time::Instant::now();
    let output = manager
        .run(
            &name,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo early; sleep 100 & sleep 100".into(),
            ],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(output.timed_out);
    assert_eq!(output.exit_code, None);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "early\n");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let (out, _, _) = sh(&manager, &name, "ps -o comm | grep -c sleep").await;
    // Only the container's own `sleep infinity` is left.
    assert_eq!(
        out.trim(),
        "1",
        "the timed-out command and its children are gone"
    );

    // Recently used: not idle. Made to look unused for two hours: stopped.
    assert!(manager
        .stop_idle(Duration::from_secs(3600))
        .await
        .unwrap()
        .is_empty());
    let store = WorkspaceManager::store_for(data.path());
    let mut record = store.get(&name).unwrap().unwrap();
    record.last_used_at -= 7200;
    store.put(&record).unwrap();
    assert_eq!(
        manager.stop_idle(Duration::from_secs(3600)).await.unwrap(),
        vec![name.clone()]
    );
    assert_eq!(
        manager.inspect(&name).await.unwrap().state,
        WorkspaceState::Stopped
    );
    cleanup(&manager, &name).await;
}

/// Read a terminal client until `needle` shows up (with a deadline).
async fn read_until(
    client: &mut aicockpit_workspace::terminal::TerminalClient,
    seen: &mut String,
    needle: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, client.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in the terminal output: {seen:?}"));
        match chunk {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the terminal closed before {needle:?}: {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_sessions_outlive_their_clients() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("term");
    manager.create(request(&name)).await.unwrap();
    let session = manager
        .open_terminal(&name, vec!["/bin/sh".into()], (100, 30))
        .await
        .unwrap();
    let mut first = session.attach();
    let mut seen = String::new();
    session.write(b"echo sum=$((6*7)); tty\n").await.unwrap();
    read_until(&mut first, &mut seen, "sum=42").await;
    read_until(&mut first, &mut seen, "/dev/pts/").await;
    // Resize reaches the terminal.
    session.resize(120, 40).await.unwrap();
    session.write(b"stty size\n").await.unwrap();
    read_until(&mut first, &mut seen, "40 120").await;

    // A second client watches the same session; a client that left and comes
    // back (found by id) gets the recent output replayed.
    let mut second = session.attach();
    drop(first);
    let again = manager
        .terminal(session.id())
        .expect("the session outlives its client");
    let third = again.attach();
    let replay = String::from_utf8_lossy(&third.replay).into_owned();
    assert!(
        replay.contains("sum=42") && replay.contains("40 120"),
        "{replay:?}"
    );
    again.write(b"echo both-see-this\n").await.unwrap();
    let mut seen_second = String::new();
    read_until(&mut second, &mut seen_second, "both-see-this").await;
    assert_eq!(session.clients(), 2);

    // Exiting the shell ends the session for everyone.
    again.write(b"exit\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), session.closed())
        .await
        .expect("the session closes when the shell exits");
    assert!(manager.terminal(session.id()).is_none() || session.is_closed());
    cleanup(&manager, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_frozen_containers_serves_plain_creates() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    assert_eq!(manager.fill_pool(2).await.unwrap(), 2);
    assert_eq!(manager.fill_pool(2).await.unwrap(), 0, "already full");
    let pooled: Vec<String> = manager
        .pool()
        .unwrap()
        .iter()
        .map(|w| w.id.clone())
        .collect();
    // The pool's containers are not workspaces and are never adopted as such.
    let report = manager.reconcile().await.unwrap();
    assert!(
        report.adopted.is_empty() && report.orphans.is_empty(),
        "{report:?}"
    );
    assert!(manager.list().unwrap().is_empty());

    let name = unique_name("pooled");
    let workspace = manager.create(request(&name)).await.unwrap();
    assert!(
        pooled.contains(&workspace.id),
        "a plain create takes a pooled container"
    );
    assert_eq!(manager.pool().unwrap().len(), 1);
    assert_eq!(workspace.state, WorkspaceState::Running);
    let (out, _, _) = sh(
        &manager,
        &name,
        "echo pooled > /workspace/f && cat /workspace/f",
    )
    .await;
    assert_eq!(out, "pooled\n");
    assert_eq!(
        std::fs::read_to_string(workspace.dir.join("f")).unwrap(),
        "pooled\n"
    );
    assert_eq!(
        manager.inspect(&name).await.unwrap().container_name(),
        format!("aicockpit-{name}")
    );

    // A request with its own settings does not use the pool.
    let special = unique_name("special");
    let own = manager
        .create(CreateRequest {
            memory: Some("64m".into()),
            ..request(&special)
        })
        .await
        .unwrap();
    assert!(!pooled.contains(&own.id));
    assert_eq!(manager.pool().unwrap().len(), 1);

    // A new manager still knows which is which.
    let again = WorkspaceManager::with_backend(
        options(data.path(), BackendKind::Docker),
        Arc::new(docker().await.unwrap()),
    );
    let report = again.reconcile().await.unwrap();
    assert!(
        report.adopted.is_empty() && report.missing.is_empty() && report.orphans.is_empty(),
        "{report:?}"
    );
    again.remove(&name, true).await.unwrap();
    assert!(!workspace.dir.exists());
    again.remove(&special, true).await.unwrap();
    assert_eq!(again.drain_pool().await.unwrap(), 1);
    assert!(again.pool().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lets_a_workspace_run_as_root_or_reach_host_folders() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    // devcontainer.json asking for root, by name or by id.
    let project = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(project.path(), Some(1000), Some(1000)).unwrap();
    for user in [
        "\"containerUser\": \"root\"",
        "\"remoteUser\": \"0\"",
        "\"containerUser\": \"0:0\"",
    ] {
        std::fs::write(
            project.path().join(".devcontainer.json"),
            format!("{{ {user} }}"),
        )
        .unwrap();
        let name = unique_name("rootuser");
        let error = manager
            .create(CreateRequest {
                dir: Some(project.path().to_path_buf()),
                ..request(&name)
            })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("root"), "{user}: {error}");
        assert!(manager.get(&name).is_err());
    }
    std::fs::remove_file(project.path().join(".devcontainer.json")).unwrap();

    // A folder of the user's that belongs to root is refused, and not handed over.
    let root_owned = tempfile::tempdir().unwrap();
    let error = manager
        .create(CreateRequest {
            dir: Some(root_owned.path().to_path_buf()),
            ..request(&unique_name("rootdir"))
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("chown"), "{error}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root_owned.path()).unwrap().uid(),
        0,
        "the folder was not taken over"
    );

    // System folders and AiCockpit's own folder cannot be mounted.
    for dir in [
        std::path::PathBuf::from("/"),
        std::path::PathBuf::from("/etc"),
        data.path().to_path_buf(),
        data.path().join("workspaces"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        let error = manager
            .create(CreateRequest {
                dir: Some(dir.clone()),
                ..request(&unique_name("sysdir"))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(error, WorkspaceError::InvalidRequest(_)),
            "{dir:?}: {error}"
        );
    }
    assert_eq!(std::fs::metadata("/etc").unwrap().uid(), 0);

    // Names that are paths never reach another folder.
    for name in ["x/files/evil", "..", "../../etc", "a/b"] {
        assert!(manager.get(name).is_err(), "{name}");
        assert!(manager.remove(name, true).await.is_err(), "{name}");
        assert!(manager.files(name).is_err(), "{name}");
    }
    // A process limit of 0 would mean "no limit" to Docker.
    let error = manager
        .create(CreateRequest {
            pids: Some(0),
            ..request(&unique_name("nopids"))
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at least 8"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_nothing_and_other_data_folders_are_left_alone() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    // postCreateCommand fails: the create fails and is undone.
    let project = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(project.path(), Some(1000), Some(1000)).unwrap();
    std::fs::write(
        project.path().join(".devcontainer.json"),
        "{ \"postCreateCommand\": \"echo broken >&2; exit 3\" }",
    )
    .unwrap();
    let name = unique_name("poststart");
    let error = manager
        .create(CreateRequest {
            dir: Some(project.path().to_path_buf()),
            ..request(&name)
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("broken"), "{error}");
    assert!(manager.get(&name).is_err(), "no record is left");
    let engine = docker().await.unwrap();
    let leftover = engine
        .docker()
        .inspect_container(
            &format!("aicockpit-{name}"),
            None::<InspectContainerOptions>,
        )
        .await;
    assert!(leftover.is_err(), "no container is left");

    // Workspace "shared" of data folder A loses its container; data folder B
    // then makes its own "shared". A must never act on B's container.
    let other = tempfile::tempdir().unwrap();
    let b = support::manager(other.path()).await.unwrap();
    let shared = unique_name("shared");
    let a_workspace = manager.create(request(&shared)).await.unwrap();
    engine
        .docker()
        .remove_container(
            &a_workspace.container_name(),
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    manager.reconcile().await.unwrap();
    let b_workspace = b.create(request(&shared)).await.unwrap();
    assert_eq!(
        manager.inspect(&shared).await.unwrap().state,
        WorkspaceState::Missing
    );
    assert!(matches!(
        manager
            .run(&shared, vec!["true".into()], Duration::from_secs(5))
            .await,
        Err(WorkspaceError::Missing { .. })
    ));
    manager.remove(&shared, true).await.unwrap();
    assert_eq!(
        b.inspect(&shared).await.unwrap().state,
        WorkspaceState::Running,
        "B's container survived A's rm"
    );
    assert_eq!(b_workspace.name, shared);
    cleanup(&b, &shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_ends_early_leaves_no_container() {
    let data = tempfile::tempdir().unwrap();
    let name = unique_name("sweep");
    let container = {
        let Some(manager) = manager(data.path()).await else {
            return;
        };
        let workspace = manager.create(request(&name)).await.unwrap();
        workspace.container_name()
        // No cleanup: the manager's guard must sweep it away.
    };
    let engine = docker().await.unwrap();
    let gone = engine
        .docker()
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await;
    assert!(gone.is_err(), "{container} was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_terminals_and_idle_workspaces_are_stopped_by_themselves() {
    let data = tempfile::tempdir().unwrap();
    let Some(engine) = docker().await else { return };
    let mut quick = options(data.path(), BackendKind::Docker);
    quick.terminal_idle = Duration::from_millis(500);
    quick.idle_stop = Some(Duration::from_secs(1));
    let manager = Arc::new(WorkspaceManager::with_backend(quick, Arc::new(engine)));
    let _sweep = support::manager(data.path()).await.unwrap();
    let name = unique_name("idlers");
    manager.create(request(&name)).await.unwrap();

    // CPU use shows in the stats while a busy loop runs.
    let busy = manager
        .exec(
            &name,
            aicockpit_workspace::ExecRequest {
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "timeout 4 sh -c 'while :; do :; done'".into(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = manager.stats(&name).await.unwrap();
    assert!(
        stats.cpu_percent > 5.0,
        "a busy loop shows in the stats: {stats:?}"
    );
    drop(busy);

    // A terminal nobody watches is torn down after `terminal_idle`, and its shell ends.
    let session = manager
        .open_terminal(&name, vec!["/bin/sh".into()], (80, 24))
        .await
        .unwrap();
    let client = session.attach();
    session.write(b"echo $$ > /tmp/shell.pid\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), session.closed())
        .await
        .expect("an idle terminal closes");
    assert!(manager.terminal(session.id()).is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (out, _, _) = sh(
            &manager,
            &name,
            "kill -0 $(cat /tmp/shell.pid) 2>/dev/null && echo alive || echo gone",
        )
        .await;
        if out.trim() == "gone" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle terminal's shell is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The idle stopper, running in the background, stops the unused workspace.
    let stopper = manager.spawn_idle_stopper(Duration::from_millis(200));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while manager.inspect(&name).await.unwrap().state != WorkspaceState::Stopped {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle workspace was not stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stopper.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_caller_goes_away_is_killed_in_the_container() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("abandon");
    let workspace = manager.create(request(&name)).await.unwrap();
    let started = workspace.dir.join("started");
    let run = manager.run(
        &name,
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "touch /workspace/started; sleep 4321".into(),
        ],
        Duration::from_secs(600),
    );
    tokio::select! {
        _ = run => panic!("the command ended on its own"),
        () = async {
            while !started.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        } => {}
    }
    // The run's future is dropped here: its caller went away.
    until_no_sleepers(&manager, &name, 4321, "the abandoned command").await;
    cleanup(&manager, &name).await;
}

/// How many processes in the workspace's container run `sleep <seconds>`.
async fn sleepers(manager: &WorkspaceManager, name: &str, seconds: u32) -> String {
    let count = format!(
        "n=0; for f in /proc/[0-9]*/cmdline; do \
         tr '\\0' ' ' < $f 2>/dev/null | grep -q '^sleep {seconds} ' && n=$((n+1)); done; echo $n"
    );
    sh(manager, name, &count).await.0.trim().to_string()
}

async fn until_no_sleepers(manager: &WorkspaceManager, name: &str, seconds: u32, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = sleepers(manager, name, seconds).await;
        if left == "0" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {left} `sleep {seconds}` still running in the container"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A command that left its run's process tree (started from a subshell that
/// exited, so it belongs to the container's init now) is killed with it, on
/// a timeout and when the caller goes away: the run's tag in its
/// environment finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_run_detached_is_killed_with_it() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("detach");
    let workspace = manager.create(request(&name)).await.unwrap();
    let output = manager
        .run(
            &name,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "(setsid sleep 4401 </dev/null >/dev/null 2>&1 &); sleep 100".into(),
            ],
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert!(output.timed_out);
    until_no_sleepers(&manager, &name, 4401, "after the timeout").await;
    let started = workspace.dir.join("detached");
    let run = manager.run(
        &name,
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "(setsid sleep 4402 </dev/null >/dev/null 2>&1 &); touch /workspace/detached; sleep 4403"
                .into(),
        ],
        Duration::from_secs(600),
    );
    tokio::select! {
        _ = run => panic!("the command ended on its own"),
        () = async {
            while !started.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Still running, detached, while the run is.
            assert_eq!(sleepers(&manager, &name, 4402).await, "1");
        } => {}
    }
    // The run's future is dropped here: its caller went away.
    until_no_sleepers(&manager, &name, 4403, "the abandoned command").await;
    until_no_sleepers(&manager, &name, 4402, "what it detached").await;
    cleanup(&manager, &name).await;
}

/// A run dropped at any moment of its start, before its pid is known, does
/// not leave its command running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_while_it_starts_leaves_nothing_running() {
    let data = tempfile::tempdir().unwrap();
    let Some(manager) = manager(data.path()).await else {
        return;
    };
    let name = unique_name("early-drop");
    manager.create(request(&name)).await.unwrap();
    for (round, after_ms) in [1u64, 3, 5, 8, 12, 20, 30, 50].into_iter().enumerate() {
        let seconds = 4500 + round as u32;
        let run = manager.run(
            &name,
            vec!["sleep".into(), seconds.to_string()],
            Duration::from_secs(600),
        );
        let _ = tokio::time::timeout(Duration::from_millis(after_ms), run).await;
    }
    // The second sweep by tag comes a second after the drop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for round in 0..8u32 {
        until_no_sleepers(
            &manager,
            &name,
            4500 + round,
            "a run dropped while it started",
        )
        .await;
    }
    cleanup(&manager, &name).await;
}
