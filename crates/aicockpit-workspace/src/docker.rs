//! The Docker backend: each workspace is one hardened container, made and
//! driven through the Engine API with bollard.
//!
//! Invariant: every container is created by [`container_body`], the one
//! place that decides its security settings; nothing here sets `privileged`,
//! adds a capability, weakens seccomp/AppArmor or mounts a host path other
//! than the workspace folder.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RestartContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt, TryStreamExt};

use crate::backend::{labels, Backend, ExecIo, Observed, OutputKind};
use crate::error::WorkspaceError;
use crate::model::{BackendKind, ExecRequest, RunOutput, Stats, Workspace, WorkspaceState};

/// Where in the container the workspace folder is mounted.
pub const MOUNT_POINT: &str = "/workspace";

/// The environment variable holding a run's random tag: what the run starts
/// inherits it, so a process that left the run's tree is still found (a
/// process that clears its environment is not).
const RUN_TAG: &str = "AICOCKPIT_RUN";

/// Settings of the Docker backend beyond each workspace's own limits.
#[derive(Clone, Debug)]
pub struct DockerOptions {
    /// Mount the image's root filesystem read-only (with tmpfs `/tmp` and `/run`).
    pub read_only_root: bool,
    /// Seconds `stop` waits for the processes to end before killing them.
    pub stop_timeout_secs: i32,
    /// Size of the tmpfs at `/tmp`.
    pub tmp_size: String,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            read_only_root: true,
            stop_timeout_secs: 3,
            tmp_size: "512m".to_string(),
        }
    }
}

/// A Docker engine.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
    host: String,
    options: DockerOptions,
    /// The kills of abandoned runs, waited for by [`Backend::settle`].
    detached: crate::backend::Detached,
    /// At most this many of those kills talk to the engine at once.
    sweeps: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Kills of abandoned runs talking to the engine at once, at most.
const CONCURRENT_SWEEPS: usize = 4;

/// When an abandoned run whose pid never arrived is swept by its tag again
/// (after the first sweep): the engine may still have been starting it.
const LATE_SWEEPS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

impl DockerBackend {
    /// Connect to `DOCKER_HOST` (or the default socket), agree on an API
    /// version and check the engine answers.
    pub async fn connect(options: DockerOptions) -> Result<DockerBackend, WorkspaceError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let docker = Docker::connect_with_defaults()
            .map_err(|error| connection_error(&host, &error))?
            .with_timeout(Duration::from_secs(120));
        let docker = tokio::time::timeout(Duration::from_secs(15), docker.negotiate_version())
            .await
            .map_err(|_| WorkspaceError::DockerUnavailable {
                host: host.clone(),
                reason: "no answer within 15 s".to_string(),
            })?
            .map_err(|error| connection_error(&host, &error))?;
        let backend = DockerBackend {
            docker,
            host,
            options,
            detached: crate::backend::Detached::default(),
            sweeps: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SWEEPS)),
        };
        backend.ping().await?;
        Ok(backend)
    }

    /// The engine client, for image builds.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn error(&self, action: &str, error: bollard::errors::Error) -> WorkspaceError {
        engine_error(&self.host, action, error)
    }

    /// Whether the engine has an image (never pulls).
    pub async fn has_image(&self, image: &str) -> Result<bool, WorkspaceError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(error) if status(&error) == Some(404) => Ok(false),
            Err(error) => Err(self.error(&format!("inspect image {image}"), error)),
        }
    }

    /// Kill a command started by [`DockerBackend::run`] or `exec`, and its
    /// descendants, from inside the container (the engine has no "kill
    /// exec" call), then check it is gone. Needs no writable folder: the pid
    /// came from the command's own first line of output. With a `tag` (a
    /// run's [`RUN_TAG`] value), every process whose environment still
    /// holds it is killed as well: those that left the tree (`setsid … &`),
    /// and the run itself when its pid never arrived.
    async fn kill_tree(
        &self,
        container: &str,
        pid: Option<u32>,
        tag: Option<&str>,
    ) -> Result<(), String> {
        if pid.is_none() && tag.is_none() {
            return Err(
                "its process id never arrived, so it could not be found to kill".to_string(),
            );
        }
        // `$1` the pid or empty, `$2` the tag or empty. `tagged` lists the
        // live (not zombie) processes whose environment holds the tag.
        const SCRIPT: &str = "p=$1; t=$2; \
             k(){ kill -STOP $1 2>/dev/null; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do k $c; done; kill -KILL $1 2>/dev/null; }; \
             alive(){ [ -e /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }; \
             tagged(){ [ -n \"$t\" ] || return 0; \
               for f in $(grep -lzxF \"AICOCKPIT_RUN=$t\" /proc/[0-9]*/environ 2>/dev/null); do \
                 q=${f#/proc/}; q=${q%/environ}; alive $q && echo $q; \
               done; }; \
             [ -n \"$p\" ] && k $p; for q in $(tagged); do k $q; done; i=0; \
             while { [ -n \"$p\" ] && alive $p; } || [ -n \"$(tagged)\" ]; do \
               i=$((i+1)); [ $i -gt 50 ] && exit 1; for q in $(tagged); do k $q; done; sleep 0.1; \
             done; exit 0";
        let request = ExecRequest {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                SCRIPT.into(),
                "sh".into(),
                pid.map(|p| p.to_string()).unwrap_or_default(),
                tag.unwrap_or_default().to_string(),
            ],
            // The image's own tools, not ones the workspace put first on PATH.
            env: vec![
                ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
                ("LD_PRELOAD".into(), String::new()),
                ("LD_LIBRARY_PATH".into(), String::new()),
            ],
            ..ExecRequest::default()
        };
        let io = self
            .exec_in(container, container, None, request)
            .await
            .map_err(|error| format!("the kill could not be started: {error}"))?;
        match tokio::time::timeout(Duration::from_secs(15), crate::backend::collect(io, 4096)).await
        {
            Ok(Ok(output)) if output.exit_code == Some(0) => Ok(()),
            Ok(Ok(output)) => Err(format!(
                "process {} was still alive after SIGKILL (exit code {:?}: {})",
                pid.map_or_else(|| "tagged".to_string(), |p| p.to_string()),
                output.exit_code,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Ok(Err(error)) => Err(format!("the kill's output could not be read: {error}")),
            Err(_) => Err("the kill did not finish within 15 s".to_string()),
        }
    }

    async fn exec_in(
        &self,
        container: &str,
        workspace_name: &str,
        user: Option<&str>,
        request: ExecRequest,
    ) -> Result<ExecIo, WorkspaceError> {
        let env: Vec<String> = request
            .env
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    // Attached only when asked: a command that reads stdin
                    // would otherwise wait for input that never comes.
                    attach_stdin: Some(request.tty || request.stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(request.tty),
                    env: Some(env),
                    cmd: Some(request.command.clone()),
                    user: user.map(str::to_string),
                    working_dir: Some(
                        request
                            .working_dir
                            .clone()
                            .unwrap_or_else(|| MOUNT_POINT.to_string()),
                    ),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| match status(&error) {
                Some(409) => WorkspaceError::NotRunning {
                    name: workspace_name.to_string(),
                    state: "not running".to_string(),
                },
                _ => self.error("start a command", error),
            })?;
        let exec_id = created.id;
        let started = self
            .docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: request.tty,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(|error| self.error("start a command", error))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(WorkspaceError::Docker {
                action: "start a command".into(),
                message: "the engine did not attach to the command".into(),
            });
        };
        let output = output
            .filter_map(|item| async move {
                match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok((OutputKind::Stderr, message)))
                    }
                    Ok(bollard::container::LogOutput::StdOut { message })
                    | Ok(bollard::container::LogOutput::Console { message }) => {
                        Some(Ok((OutputKind::Stdout, message)))
                    }
                    Ok(bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(error) => Some(Err(io::Error::other(error.to_string()))),
                }
            })
            .boxed();
        let resize_docker = self.docker.clone();
        let resize_id = exec_id.clone();
        let resize: crate::backend::Resizer = Box::new(move |cols, rows| {
            let docker = resize_docker.clone();
            let id = resize_id.clone();
            async move {
                docker
                    .resize_exec(
                        &id,
                        bollard::exec::ResizeExecOptions {
                            width: cols,
                            height: rows,
                        },
                    )
                    .await
                    .map_err(|error| io::Error::other(error.to_string()))
            }
            .boxed()
        });
        if let (true, Some((cols, rows))) = (request.tty, request.size) {
            // A fresh exec may not accept a resize yet; the client resizes again on its next change.
            let _ = resize(cols, rows).await;
        }
        let exit_docker = self.docker.clone();
        let exit_code = async move {
            // The output ends a moment before the engine records the exit code.
            for _ in 0..50 {
                match exit_docker.inspect_exec(&exec_id).await {
                    Ok(inspect) if inspect.running == Some(false) => return inspect.exit_code,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(_) => return None,
                }
            }
            None
        }
        .boxed();
        Ok(ExecIo {
            output,
            input,
            resize,
            exit_code,
            terminate: crate::backend::no_terminator(),
        })
    }

    /// The id of the workspace's container. Never its name: a container of
    /// that name may belong to another data folder, or to nobody we know.
    fn container_ref(workspace: &Workspace) -> Result<String, WorkspaceError> {
        workspace
            .container_id
            .clone()
            .ok_or_else(|| WorkspaceError::Missing {
                name: workspace.name.clone(),
            })
    }
}

#[async_trait]
impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn isolated(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), WorkspaceError> {
        match tokio::time::timeout(Duration::from_secs(15), self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(connection_error(&self.host, &error)),
            Err(_) => Err(WorkspaceError::DockerUnavailable {
                host: self.host.clone(),
                reason: "no answer within 15 s".to_string(),
            }),
        }
    }

    async fn create(&self, workspace: &Workspace, scope: &str) -> Result<String, WorkspaceError> {
        if !self.has_image(&workspace.image).await? {
            return Err(WorkspaceError::ImageMissing {
                image: workspace.image.clone(),
            });
        }
        let body = container_body(workspace, scope, &self.options)?;
        let name = workspace.container_name();
        match self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
        {
            Ok(created) => Ok(created.id),
            Err(error) if status(&error) == Some(409) => {
                Err(WorkspaceError::ContainerNameTaken { container: name })
            }
            Err(error) if status(&error) == Some(404) => Err(WorkspaceError::ImageMissing {
                image: workspace.image.clone(),
            }),
            Err(error) => Err(self.error("create a container", error)),
        }
    }

    async fn start(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        match self
            .docker
            .start_container(
                &Self::container_ref(workspace)?,
                None::<StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if status(&error) == Some(304) => Ok(()),
            Err(error) if status(&error) == Some(404) => Err(WorkspaceError::Missing {
                name: workspace.name.clone(),
            }),
            Err(error) => Err(self.error(&format!("start workspace {}", workspace.name), error)),
        }
    }

    async fn stop(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        let options = StopContainerOptions {
            t: Some(self.options.stop_timeout_secs),
            ..Default::default()
        };
        match self
            .docker
            .stop_container(&Self::container_ref(workspace)?, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if status(&error) == Some(304) => Ok(()),
            Err(error) if status(&error) == Some(404) => Err(WorkspaceError::Missing {
                name: workspace.name.clone(),
            }),
            Err(error) => Err(self.error(&format!("stop workspace {}", workspace.name), error)),
        }
    }

    async fn restart(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        let options = RestartContainerOptions {
            t: Some(self.options.stop_timeout_secs),
            ..Default::default()
        };
        match self
            .docker
            .restart_container(&Self::container_ref(workspace)?, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if status(&error) == Some(404) => Err(WorkspaceError::Missing {
                name: workspace.name.clone(),
            }),
            Err(error) => Err(self.error(&format!("restart workspace {}", workspace.name), error)),
        }
    }

    async fn freeze(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        self.docker
            .pause_container(&Self::container_ref(workspace)?)
            .await
            .map_err(|error| {
                self.error(
                    &format!("freeze container {}", workspace.container_name()),
                    error,
                )
            })
    }

    async fn thaw(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        self.docker
            .unpause_container(&Self::container_ref(workspace)?)
            .await
            .map_err(|error| {
                self.error(
                    &format!("thaw container {}", workspace.container_name()),
                    error,
                )
            })
    }

    async fn rename(
        &self,
        workspace: &Workspace,
        container_name: &str,
    ) -> Result<(), WorkspaceError> {
        let options = bollard::query_parameters::RenameContainerOptions {
            name: container_name.to_string(),
        };
        match self
            .docker
            .rename_container(&Self::container_ref(workspace)?, options)
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if status(&error) == Some(409) => Err(WorkspaceError::ContainerNameTaken {
                container: container_name.to_string(),
            }),
            Err(error) => Err(self.error(
                &format!("rename container {}", workspace.container_name()),
                error,
            )),
        }
    }

    async fn remove(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        if workspace.container_id.is_none() {
            return Ok(());
        }
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self
            .docker
            .remove_container(&Self::container_ref(workspace)?, Some(options))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if status(&error) == Some(404) => Ok(()),
            Err(error) => Err(self.error(&format!("remove workspace {}", workspace.name), error)),
        }
    }

    async fn list(&self, scope: &str) -> Result<HashMap<String, Observed>, WorkspaceError> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![
                labels::WORKSPACE.to_string(),
                format!("{}={scope}", labels::SCOPE),
            ],
        );
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|error| self.error("list containers", error))?;
        let mut out = HashMap::new();
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let (Some(id), Some(workspace_id)) = (container.id, labels.get(labels::WORKSPACE))
            else {
                continue;
            };
            let state = match container.state.map(|s| s.to_string()).as_deref() {
                Some("running") | Some("paused") | Some("restarting") => WorkspaceState::Running,
                Some("created") => WorkspaceState::Created,
                _ => WorkspaceState::Stopped,
            };
            out.insert(
                workspace_id.clone(),
                Observed {
                    container_id: id,
                    container_name: container
                        .names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    state,
                    image: container.image.unwrap_or_default(),
                    started_at: None,
                    ports: Vec::new(),
                    labels,
                },
            );
        }
        Ok(out)
    }

    async fn inspect(&self, workspace: &Workspace) -> Result<Option<Observed>, WorkspaceError> {
        if workspace.container_id.is_none() {
            return Ok(None);
        }
        let inspected = match self
            .docker
            .inspect_container(
                &Self::container_ref(workspace)?,
                None::<InspectContainerOptions>,
            )
            .await
        {
            Ok(inspected) => inspected,
            Err(error) if status(&error) == Some(404) => return Ok(None),
            Err(error) => {
                return Err(self.error(&format!("inspect workspace {}", workspace.name), error))
            }
        };
        let ours = inspected
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(labels::WORKSPACE))
            == Some(&workspace.id);
        if !ours {
            return Ok(None);
        }
        let container_state = inspected.state.unwrap_or_default();
        let state = match container_state.status.map(|s| s.to_string()).as_deref() {
            Some("running") | Some("paused") | Some("restarting") => WorkspaceState::Running,
            Some("created") => WorkspaceState::Created,
            _ => WorkspaceState::Stopped,
        };
        let mut ports = Vec::new();
        if let Some(map) = inspected.network_settings.and_then(|n| n.ports) {
            for (port, bindings) in map {
                for binding in bindings.unwrap_or_default() {
                    ports.push(format!(
                        "{port} -> {}:{}",
                        binding.host_ip.unwrap_or_default(),
                        binding.host_port.unwrap_or_default()
                    ));
                }
            }
        }
        ports.sort();
        Ok(Some(Observed {
            container_id: inspected.id.unwrap_or_default(),
            container_name: inspected
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            state,
            image: inspected
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            started_at: container_state
                .started_at
                .as_deref()
                .and_then(parse_timestamp),
            ports,
            labels: inspected.config.and_then(|c| c.labels).unwrap_or_default(),
        }))
    }

    async fn exec(
        &self,
        workspace: &Workspace,
        request: ExecRequest,
    ) -> Result<ExecIo, WorkspaceError> {
        let container = Self::container_ref(workspace)?;
        if !request.tty {
            return self
                .exec_in(&container, &workspace.name, Some(&workspace.user), request)
                .await;
        }
        // A shell on a terminal lives on after its connection closes: its
        // first line on the terminal tells us its pid (stripped from the
        // output), so `terminate` can end it, and what it started, from inside.
        let mut request = request;
        let mut wrapped = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "{}; exec \"$@\"",
                crate::backend::pid_marker_prologue(false)
            ),
            "sh".to_string(),
        ];
        wrapped.append(&mut request.command);
        request.command = wrapped;
        let mut io = self
            .exec_in(&container, &workspace.name, Some(&workspace.user), request)
            .await?;
        let pid = std::sync::Arc::new(std::sync::OnceLock::new());
        io.output = crate::backend::strip_pid_marker(io.output, OutputKind::Stdout, pid.clone());
        let backend = self.clone();
        io.terminate = Box::new(move || {
            Box::pin(async move {
                if let Err(reason) = backend
                    .kill_tree(&container, pid.get().copied(), None)
                    .await
                {
                    tracing::warn!("ending a terminal's shell in {container}: {reason}");
                }
            })
        });
        Ok(io)
    }

    async fn run(
        &self,
        workspace: &Workspace,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<RunOutput, WorkspaceError> {
        if command.is_empty() {
            return Err(WorkspaceError::InvalidRequest("no command given".into()));
        }
        let container = Self::container_ref(workspace)?;
        // The shell prints its pid first on stderr (stripped again below),
        // so a timeout can kill it and its tree from inside; it stays the
        // command's parent, so killing its tree gets everything that stays
        // in it. A fresh tag in the run's environment finds the rest.
        let tag = crate::confined::random_hex(12).map_err(|error| WorkspaceError::Docker {
            action: "start a command".into(),
            message: format!("no random tag: {error}"),
        })?;
        let mut wrapped = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("{}; \"$@\"", crate::backend::pid_marker_prologue(true)),
            "sh".to_string(),
        ];
        wrapped.extend(command);
        let pid = std::sync::Arc::new(std::sync::OnceLock::new());
        // The caller gone (a client that hung up, access withdrawn): the
        // command is killed rather than left running unseen, also when it
        // goes before the command's pid arrived (by its tag; again a moment
        // later, in case the engine was still starting it).
        let (backend, tree, pids, tagged) =
            (self.clone(), container.clone(), pid.clone(), tag.clone());
        let on_drop = crate::backend::OnDrop::new(move || {
            let detached = backend.detached.clone();
            let spawned = detached.spawn(async move {
                let pid = pids.get().copied();
                let late = if pid.is_none() { &LATE_SWEEPS[..] } else { &[] };
                for wait in std::iter::once(&Duration::ZERO).chain(late) {
                    tokio::time::sleep(*wait).await;
                    let Ok(_turn) = backend.sweeps.acquire().await else {
                        return;
                    };
                    let pid = pids.get().copied();
                    if let Err(reason) = backend.kill_tree(&tree, pid, Some(&tagged)).await {
                        tracing::warn!(%reason, "cannot kill an abandoned command");
                    }
                }
            });
            if !spawned {
                tracing::warn!("an abandoned command could not be killed: no runtime");
            }
        });
        let io = self
            .exec_in(
                &container,
                &workspace.name,
                Some(&workspace.user),
                ExecRequest {
                    command: wrapped,
                    env: vec![(RUN_TAG.to_string(), tag.clone())],
                    ..ExecRequest::default()
                },
            )
            .await;
        let mut io = match io {
            Ok(io) => io,
            Err(error) => {
                on_drop.disarm();
                return Err(error);
            }
        };
        io.output = crate::backend::strip_pid_marker(io.output, OutputKind::Stderr, pid.clone());
        let kill = async {
            self.kill_tree(&container, pid.get().copied(), Some(&tag))
                .await
        };
        let collected = crate::backend::collect_with_deadline(io, timeout, kill).await;
        on_drop.disarm();
        collected.map_err(|error| match error {
            crate::backend::CollectError::Io(error) => WorkspaceError::Docker {
                action: "read a command's output".into(),
                message: error.to_string(),
            },
            crate::backend::CollectError::KillFailed(reason) => WorkspaceError::KillFailed {
                name: workspace.name.clone(),
                seconds: timeout.as_secs(),
                reason,
            },
        })
    }

    async fn settle(&self, within: Duration) -> bool {
        self.detached.settle(within).await
    }

    async fn process_owners(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<Vec<crate::backend::ProcessOwner>>, WorkspaceError> {
        // `top` runs `ps` on the engine's host: what it reports cannot be
        // faked by programs inside the container.
        let top = self
            .docker
            .top_processes(
                &Self::container_ref(workspace)?,
                Some(bollard::query_parameters::TopOptions {
                    ps_args: "-o pid,uid,gid,supgid".to_string(),
                }),
            )
            .await
            .map_err(|error| self.error("list a workspace's processes", error))?;
        let titles = top.titles.unwrap_or_default();
        let column = |name: &str| titles.iter().position(|title| title == name);
        let (Some(pid), Some(uid), Some(gid), Some(groups)) = (
            column("PID"),
            column("UID"),
            column("GID"),
            column("SUPGID"),
        ) else {
            return Err(WorkspaceError::Docker {
                action: "list a workspace's processes".into(),
                message: format!("unexpected columns {titles:?}"),
            });
        };
        let number = |row: &[String], index: usize| {
            row.get(index)
                .and_then(|cell| cell.trim().parse::<u32>().ok())
        };
        let mut owners = Vec::new();
        for row in top.processes.unwrap_or_default() {
            let (Some(pid), Some(uid), Some(gid)) =
                (number(&row, pid), number(&row, uid), number(&row, gid))
            else {
                return Err(WorkspaceError::Docker {
                    action: "list a workspace's processes".into(),
                    message: format!("unreadable process line {row:?}"),
                });
            };
            let groups = row
                .get(groups)
                .map(|cell| {
                    cell.split(',')
                        .filter(|g| !g.trim().is_empty() && g.trim() != "-")
                        .map(|g| g.trim().parse::<u32>().unwrap_or(0))
                        .collect()
                })
                .unwrap_or_default();
            owners.push(crate::backend::ProcessOwner {
                pid,
                uid,
                gid,
                groups,
            });
        }
        Ok(Some(owners))
    }

    async fn writable_mount_sources(
        &self,
    ) -> Result<Vec<(String, std::path::PathBuf)>, WorkspaceError> {
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|error| self.error("list containers", error))?;
        let mut out = Vec::new();
        for container in containers {
            let id = container.id.unwrap_or_default();
            for mount in container.mounts.unwrap_or_default() {
                let bind = mount.typ.map(|t| t.to_string()).as_deref() == Some("bind");
                if bind && mount.rw != Some(false) {
                    if let Some(source) = mount.source {
                        out.push((id.clone(), std::path::PathBuf::from(source)));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn stats(&self, workspace: &Workspace) -> Result<Stats, WorkspaceError> {
        let mut stream = self.docker.stats(
            &Self::container_ref(workspace)?,
            Some(StatsOptions {
                stream: false,
                one_shot: false,
            }),
        );
        let sample = match stream.try_next().await {
            Ok(Some(sample)) => sample,
            Ok(None) => {
                return Err(WorkspaceError::Docker {
                    action: format!("read the stats of workspace {}", workspace.name),
                    message: "the engine sent no sample".into(),
                })
            }
            Err(error) if status(&error) == Some(404) => {
                return Err(WorkspaceError::Missing {
                    name: workspace.name.clone(),
                })
            }
            Err(error) => {
                return Err(self.error(
                    &format!("read the stats of workspace {}", workspace.name),
                    error,
                ))
            }
        };
        let cpu = sample.cpu_stats.unwrap_or_default();
        let precpu = sample.precpu_stats.unwrap_or_default();
        let total = |s: &bollard::models::ContainerCpuStats| {
            s.cpu_usage
                .as_ref()
                .and_then(|u| u.total_usage)
                .unwrap_or(0)
        };
        let cpu_delta = total(&cpu).saturating_sub(total(&precpu)) as f64;
        let system_delta = cpu
            .system_cpu_usage
            .unwrap_or(0)
            .saturating_sub(precpu.system_cpu_usage.unwrap_or(0)) as f64;
        let online = cpu.online_cpus.unwrap_or(1).max(1) as f64;
        let cpu_percent = if system_delta > 0.0 {
            cpu_delta / system_delta * online * 100.0
        } else {
            0.0
        };
        let memory = sample.memory_stats.unwrap_or_default();
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
            .unwrap_or(0);
        let pids = sample.pids_stats.unwrap_or_default();
        Ok(Stats {
            cpu_percent,
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            pids: pids.current.unwrap_or(0),
            pids_limit: pids.limit.unwrap_or(0),
        })
    }
}

/// The container a workspace runs in: the one place its hardening is decided.
pub fn container_body(
    workspace: &Workspace,
    scope: &str,
    options: &DockerOptions,
) -> Result<ContainerCreateBody, WorkspaceError> {
    if workspace.network == "host" || workspace.network.starts_with("container:") {
        return Err(WorkspaceError::InvalidRequest(format!(
            "network mode {:?} shares a namespace with the host or another container; use \"none\", \"bridge\" or a named network",
            workspace.network
        )));
    }
    let dir = workspace
        .dir
        .to_str()
        .ok_or_else(|| {
            WorkspaceError::InvalidRequest(format!(
                "the workspace folder {} is not valid UTF-8",
                workspace.dir.display()
            ))
        })?
        .to_string();
    let memory = i64::try_from(workspace.limits.memory_bytes).unwrap_or(i64::MAX);
    let mut env: Vec<String> = vec!["HOME=/tmp".to_string()];
    env.extend(workspace.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels_map = HashMap::new();
    labels_map.insert(labels::WORKSPACE.to_string(), workspace.id.clone());
    labels_map.insert(labels::NAME.to_string(), workspace.name.clone());
    labels_map.insert(labels::SCOPE.to_string(), scope.to_string());
    // Values of `env` are secrets: labels carry the names only.
    let mut record = workspace.without_env_values();
    record.container_id = None;
    labels_map.insert(
        labels::RECORD.to_string(),
        serde_json::to_string(&record).unwrap_or_default(),
    );
    let ulimit = |name: &str, value: u32| ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(i64::from(value)),
        hard: Some(i64::from(value)),
    };
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        "/tmp".to_string(),
        format!("rw,nosuid,nodev,mode=1777,size={}", options.tmp_size),
    );
    tmpfs.insert(
        "/run".to_string(),
        "rw,nosuid,nodev,noexec,size=16m".to_string(),
    );
    let mut log_options = HashMap::new();
    log_options.insert("max-size".to_string(), "1m".to_string());
    log_options.insert("max-file".to_string(), "2".to_string());
    Ok(ContainerCreateBody {
        image: Some(workspace.image.clone()),
        // Keep the container alive whatever the image's own command is.
        entrypoint: Some(vec!["sleep".to_string()]),
        cmd: Some(vec!["infinity".to_string()]),
        user: Some(workspace.user.clone()),
        working_dir: Some(MOUNT_POINT.to_string()),
        env: Some(env),
        labels: Some(labels_map),
        hostname: Some(workspace.name.chars().take(63).collect()),
        host_config: Some(HostConfig {
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges:true".to_string()]),
            init: Some(true),
            pids_limit: Some(i64::from(workspace.limits.pids)),
            ulimits: Some(vec![
                ulimit("nofile", workspace.limits.nofile),
                ulimit("nproc", workspace.limits.nproc),
            ]),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((workspace.limits.cpus * 1e9) as i64),
            readonly_rootfs: Some(options.read_only_root),
            tmpfs: Some(tmpfs),
            network_mode: Some(workspace.network.clone()),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(log_options),
            }),
            mounts: Some(vec![Mount {
                target: Some(MOUNT_POINT.to_string()),
                source: Some(dir),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The HTTP status of an engine error, if it was one.
fn status(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An engine error, with "cannot connect" and "permission denied" told apart.
fn engine_error(host: &str, action: &str, error: bollard::errors::Error) -> WorkspaceError {
    match &error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            WorkspaceError::Docker {
                action: action.to_string(),
                message: message.clone(),
            }
        }
        _ => match connection_error(host, &error) {
            WorkspaceError::DockerUnavailable { reason, .. } if io_kind(&error).is_none() => {
                WorkspaceError::Docker {
                    action: action.to_string(),
                    message: reason,
                }
            }
            other => other,
        },
    }
}

fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            return Some(io_error.kind());
        }
        current = error.source();
    }
    None
}

fn connection_error(host: &str, error: &bollard::errors::Error) -> WorkspaceError {
    if let bollard::errors::Error::SocketNotFoundError(path) = error {
        return WorkspaceError::DockerUnavailable {
            host: host.to_string(),
            reason: format!("there is no socket at {path}"),
        };
    }
    match io_kind(error) {
        Some(io::ErrorKind::PermissionDenied) => WorkspaceError::DockerPermission {
            host: host.to_string(),
        },
        _ => WorkspaceError::DockerUnavailable {
            host: host.to_string(),
            reason: error_chain(error),
        },
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = source.source();
    }
    text
}

fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", hasher.finish())
}

/// Unix seconds of an RFC 3339 time as the engine writes it
/// (`2026-11-25T18:50:01.123456789Z`); the engine's "never" (year 1) is `None`.
pub(crate) fn parse_timestamp(text: &str) -> Option<u64> {
    let date = text.get(0..10)?;
    let time = text.get(11..19)?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let mut time_parts = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (
        time_parts.next()??,
        time_parts.next()??,
        time_parts.next()??,
    );
    if year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// A new workspace id: 12 hex digits.
pub(crate) fn new_id() -> String {
    unique_suffix()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2026-11-25T18:50:01.123456789Z"),
            Some(1_795_632_601)
        );
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("garbage"), None);
    }
}
