//! Shared set-up for the tests that need a real Docker engine: the engine
//! check (a clear failure, or an explicit opt-out), the test image and
//! managers over temporary data folders.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aicockpit_workspace::image::{build_image, ImageSource};
use aicockpit_workspace::{
    BackendKind, DockerBackend, DockerOptions, Limits, ManagerOptions, WorkspaceManager,
};

/// The tag the tests build and use; never pulled, built from busybox-static.
pub const TEST_IMAGE: &str = "aicockpit-test/workspace:latest";

/// Set to 1 to skip (loudly) the tests that need a Docker engine.
pub const OPT_OUT: &str = "AICOCKPIT_SKIP_DOCKER_TESTS";

static IMAGE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The engine, or `None` when the run opted out; otherwise a missing engine fails the test.
pub async fn docker() -> Option<DockerBackend> {
    match DockerBackend::connect(DockerOptions::default()).await {
        Ok(backend) => {
            IMAGE
                .get_or_init(|| async {
                    build_image(&backend, TEST_IMAGE, &ImageSource::default(), |_| {})
                        .await
                        .expect("building the test image (needs busybox-static: apt-get install busybox-static)");
                })
                .await;
            Some(backend)
        }
        Err(error) if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED (by {OPT_OUT}=1): no Docker engine: {error}");
            None
        }
        Err(error) => panic!(
            "these tests need a running Docker engine: {error}\n\
             install it with `apt-get install docker.io busybox-static` and start \
             `dockerd --bridge=none --iptables=false --ip-masq=false` (or run `bash .ci/run`); \
             set {OPT_OUT}=1 to skip them explicitly"
        ),
    }
}

/// Manager options for a data folder, with small limits and network `none`.
pub fn options(data_dir: &Path, backend: BackendKind) -> ManagerOptions {
    ManagerOptions {
        data_dir: data_dir.to_path_buf(),
        backend,
        default_image: TEST_IMAGE.to_string(),
        network: "none".to_string(),
        limits: Limits {
            memory_bytes: 128 << 20,
            cpus: 1.0,
            pids: 64,
            nofile: 1024,
            nproc: 4096,
        },
        docker: DockerOptions::default(),
        idle_stop: Some(Duration::from_secs(3600)),
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
    }
}

/// A manager on the real engine over `data_dir`; when the test ends, even
/// by a panic, every container of that data folder is removed.
pub async fn manager(data_dir: &Path) -> Option<TestManager> {
    manager_with(data_dir, |_| {}).await
}

/// [`manager`] with the options changed by `adjust` first.
pub async fn manager_with(
    data_dir: &Path,
    adjust: impl FnOnce(&mut ManagerOptions),
) -> Option<TestManager> {
    let mut backend = docker().await?;
    let mut options = options(data_dir, BackendKind::Docker);
    adjust(&mut options);
    if options.docker.read_only_root != DockerOptions::default().read_only_root {
        backend = DockerBackend::connect(options.docker.clone())
            .await
            .expect("the engine answered a moment ago");
    }
    let manager = Arc::new(WorkspaceManager::with_backend(options, Arc::new(backend)));
    Some(TestManager {
        scope: manager.options().data_dir.display().to_string(),
        manager,
    })
}

/// A manager that sweeps its containers away on drop.
pub struct TestManager {
    manager: Arc<WorkspaceManager>,
    scope: String,
}

impl std::ops::Deref for TestManager {
    type Target = WorkspaceManager;
    fn deref(&self) -> &WorkspaceManager {
        &self.manager
    }
}

impl Drop for TestManager {
    fn drop(&mut self) {
        let scope = self.scope.clone();
        // Drop runs inside the test's runtime; a plain thread may start its own.
        let sweep = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(docker) = bollard::Docker::connect_with_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                let mut filters = std::collections::HashMap::new();
                filters.insert(
                    "label".to_string(),
                    vec![format!("aicockpit.scope={scope}")],
                );
                let listed = docker
                    .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                        all: true,
                        filters: Some(filters),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default();
                for container in listed {
                    if let Some(id) = container.id {
                        let _ = docker
                            .remove_container(
                                &id,
                                Some(bollard::query_parameters::RemoveContainerOptions {
                                    force: true,
                                    ..Default::default()
                                }),
                            )
                            .await;
                    }
                }
            });
        });
        let _ = sweep.join();
    }
}

/// A workspace name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Run a shell line in a workspace and return (stdout, stderr, exit code).
pub async fn sh(
    manager: &WorkspaceManager,
    name: &str,
    line: &str,
) -> (String, String, Option<i64>) {
    let output = manager
        .run(
            name,
            vec!["/bin/sh".into(), "-c".into(), line.into()],
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("running {line:?} in {name}: {e}"));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.exit_code,
    )
}

/// Remove a workspace and its files whatever state the test left it in.
pub async fn cleanup(manager: &WorkspaceManager, name: &str) {
    let _ = manager.remove(name, true).await;
}
