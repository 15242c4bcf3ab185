//! The local backend: a host folder and host processes, for machines
//! without Docker. Not isolated, and it says so.

use std::sync::Arc;
use std::time::Duration;

use aicockpit_workspace::{
    BackendKind, CreateRequest, DockerOptions, Limits, LocalBackend, ManagerOptions,
    WorkspaceManager, WorkspaceState,
};

fn manager(data: &std::path::Path) -> WorkspaceManager {
    let options = ManagerOptions {
        data_dir: data.to_path_buf(),
        backend: BackendKind::Local,
        default_image: "unused".into(),
        network: "none".into(),
        limits: Limits {
            memory_bytes: 64 << 20,
            cpus: 1.0,
            pids: 64,
            nofile: 1024,
            nproc: 1024,
        },
        docker: DockerOptions::default(),
        idle_stop: None,
        terminal_idle: Duration::from_secs(60),
        max_file_bytes: 1 << 20,
        protected_dirs: Vec::new(),
        max_limits: Limits {
            memory_bytes: 16 << 30,
            cpus: 8.0,
            pids: 4096,
            nofile: 4096,
            nproc: 4096,
        },
        max_backup_bytes: 1 << 30,
    };
    WorkspaceManager::with_backend(options, Arc::new(LocalBackend::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_workspaces_run_host_processes_in_their_folder() {
    let data = tempfile::tempdir().unwrap();
    let manager = manager(data.path());
    assert!(!manager.backend().isolated());
    let workspace = manager
        .create(CreateRequest {
            name: "here".into(),
            env: [("WHO".to_string(), "local".to_string())].into(),
            start: true,
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(workspace.state, WorkspaceState::Running);
    let output = manager
        .run(
            "here",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "pwd; echo $WHO > made.txt; echo oops >&2; exit 4".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        workspace.dir.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n");
    assert_eq!(output.exit_code, Some(4));
    assert_eq!(
        std::fs::read_to_string(workspace.dir.join("made.txt")).unwrap(),
        "local\n"
    );

    // A timeout kills the whole process group.
    let started = std::time::Instant::now();
    let output = manager
        .run(
            "here",
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo first; sleep 60 & sleep 60".into(),
            ],
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert!(output.timed_out && output.exit_code.is_none());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "first\n");
    assert!(started.elapsed() < Duration::from_secs(15));

    // A terminal: a real PTY on the host.
    let session = manager
        .open_terminal("here", vec!["/bin/sh".into()], (90, 20))
        .await
        .unwrap();
    let mut client = session.attach();
    session
        .write(b"stty size; echo t=$((2+3))\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen.contains("t=5") && seen.contains("20 90")) {
        match tokio::time::timeout_at(deadline, client.next()).await {
            Ok(Some(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("terminal output so far {seen:?}: {other:?}"),
        }
    }
    session.write(b"exit\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), session.closed())
        .await
        .unwrap();

    let error = manager.stats("here").await.unwrap_err();
    assert!(
        error.to_string().contains("local backend cannot"),
        "{error}"
    );
    manager.stop("here").await.unwrap();
    manager.remove("here", true).await.unwrap();
    assert!(!workspace.dir.exists());
}

#[test]
fn concurrent_record_writes_never_damage_a_record() {
    let data = tempfile::tempdir().unwrap();
    let store = WorkspaceManager::store_for(data.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let manager = manager(data.path());
    let workspace = runtime
        .block_on(manager.create(CreateRequest {
            name: "busy".into(),
            ..CreateRequest::default()
        }))
        .unwrap();
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            let (store, mut record) = (&store, workspace.clone());
            scope.spawn(move || {
                for round in 0..200u64 {
                    record.last_used_at = thread * 1000 + round;
                    store.update(&record).unwrap();
                    let read = store
                        .get("busy")
                        .unwrap()
                        .expect("the record is always there");
                    assert_eq!(read.name, "busy");
                }
            });
        }
    });
    // A removed workspace is not brought back by a late update.
    runtime.block_on(manager.remove("busy", true)).unwrap();
    assert!(store.update(&workspace).is_err());
    assert!(store.get("busy").unwrap().is_none());
}

/// Whether a process of this machine runs with `marker` in its command line.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|line| String::from_utf8_lossy(&line).contains(marker))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_caller_goes_away_is_killed() {
    let data = tempfile::tempdir().unwrap();
    let manager = manager(data.path());
    let workspace = manager
        .create(CreateRequest {
            name: "abandoned".into(),
            start: true,
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    // A marker only this test's command has, as its own argument.
    let marker = format!("{}", 4_000_000 + std::process::id());
    let started = workspace.dir.join("started");
    let run = manager.run(
        "abandoned",
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "touch started; sleep \"$0\"".into(),
            marker.clone(),
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
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running(&marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned command is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
