//! The local backend: a workspace is a host folder and commands are host
//! processes. It exists for machines without Docker and is NOT isolated:
//! commands run as the calling user with full access to the host.
//!
//! Invariant: every command runs in its own process group with the
//! workspace folder as its working directory, so `stop` and a `run` timeout
//! can kill the whole group.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use tokio::io::AsyncReadExt;

use crate::backend::{Backend, ExecIo, Observed, OutputKind, OutputStream, Resizer};
use crate::error::WorkspaceError;
use crate::model::{BackendKind, ExecRequest, RunOutput, Stats, Workspace};

/// Host folders and host processes.
#[derive(Default)]
pub struct LocalBackend {
    /// Process groups started per workspace id, killed by `stop`.
    groups: Arc<Mutex<HashMap<String, Vec<i32>>>>,
}

impl LocalBackend {
    pub fn new() -> LocalBackend {
        LocalBackend::default()
    }

    fn remember(&self, workspace: &Workspace, pid: i32) {
        if let Ok(mut groups) = self.groups.lock() {
            groups.entry(workspace.id.clone()).or_default().push(pid);
        }
    }

    /// Start a command; returns it and its process group id.
    fn spawn(
        &self,
        workspace: &Workspace,
        request: ExecRequest,
    ) -> Result<(ExecIo, i32), WorkspaceError> {
        let mut command = command_for(workspace, &request)?;
        if request.tty {
            let (cols, rows) = request.size.unwrap_or((80, 24));
            let (mut master, mut slave) = (-1, -1);
            let size = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: openpty writes two descriptors we then own; the other pointers may be null.
            let result = unsafe {
                libc::openpty(
                    &mut master,
                    &mut slave,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    &size,
                )
            };
            if result != 0 {
                return Err(spawn_error(workspace, io::Error::last_os_error()));
            }
            // SAFETY: both descriptors were just returned by openpty and are owned by nothing else.
            let (master, slave) =
                unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
            let clone = |fd: &OwnedFd| fd.try_clone().map_err(|e| spawn_error(workspace, e));
            command
                .stdin(Stdio::from(clone(&slave)?))
                .stdout(Stdio::from(clone(&slave)?))
                .stderr(Stdio::from(slave));
            command.env("TERM", "xterm-256color");
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                use std::os::unix::process::CommandExt;
                command.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = command.spawn().map_err(|e| spawn_error(workspace, e))?;
            drop(command);
            let pid = child.id() as i32;
            self.remember(workspace, pid);
            let (groups, id) = (Arc::clone(&self.groups), workspace.id.clone());
            let resize_fd = Arc::new(clone(&master)?);
            let reader = std::fs::File::from(clone(&master)?);
            let writer = write_on_thread(std::fs::File::from(master))
                .map_err(|e| spawn_error(workspace, e))?;
            let resize: Resizer = Box::new(move |cols, rows| {
                let fd = Arc::clone(&resize_fd);
                async move { set_window_size(fd.as_raw_fd(), cols, rows) }.boxed()
            });
            let exit_code = async move {
                let code = tokio::task::spawn_blocking(move || {
                    child.wait().ok().and_then(|s| s.code()).map(i64::from)
                })
                .await
                .ok()
                .flatten();
                forget(&groups, &id, pid);
                code
            }
            .boxed();
            return Ok((
                ExecIo {
                    output: read_on_thread(reader, OutputKind::Stdout),
                    input: Box::pin(writer),
                    resize,
                    exit_code,
                    terminate: Box::new(move || {
                        Box::pin(async move {
                            let _ = kill_group(pid);
                        })
                    }),
                },
                pid,
            ));
        }
        let mut command = tokio::process::Command::from(command);
        command
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(|e| spawn_error(workspace, e))?;
        let Some(pid) = child.id().map(|pid| pid as i32) else {
            return Err(spawn_error(
                workspace,
                io::Error::other("the process ended at once"),
            ));
        };
        self.remember(workspace, pid);
        let (groups, id) = (Arc::clone(&self.groups), workspace.id.clone());
        let input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = match child.stdin.take() {
            Some(stdin) => Box::pin(stdin),
            None => Box::pin(tokio::io::sink()),
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(spawn_error(workspace, io::Error::other("no pipes")));
        };
        let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<(OutputKind, Bytes)>>(64);
        let pump =
            |mut source: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
             kind: OutputKind,
             sender: tokio::sync::mpsc::Sender<io::Result<(OutputKind, Bytes)>>| async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    match source.read(&mut buffer).await {
                        Ok(0) => break,
                        Ok(n) => {
                            if sender
                                .send(Ok((kind, Bytes::copy_from_slice(&buffer[..n]))))
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(error) => {
                            let _ = sender.send(Err(error)).await;
                            break;
                        }
                    }
                }
            };
        tokio::spawn(pump(Box::pin(stdout), OutputKind::Stdout, sender.clone()));
        tokio::spawn(pump(Box::pin(stderr), OutputKind::Stderr, sender));
        let output: OutputStream = Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        ));
        let exit_code = async move {
            let code = child
                .wait()
                .await
                .ok()
                .and_then(|s| s.code())
                .map(i64::from);
            forget(&groups, &id, pid);
            code
        }
        .boxed();
        let resize: Resizer = Box::new(|_, _| async { Ok(()) }.boxed());
        Ok((
            ExecIo {
                output,
                input,
                resize,
                exit_code,
                terminate: Box::new(move || {
                    Box::pin(async move {
                        let _ = kill_group(pid);
                    })
                }),
            },
            pid,
        ))
    }

    fn kill_all(&self, workspace: &Workspace) {
        let pids = self
            .groups
            .lock()
            .map(|mut groups| groups.remove(&workspace.id).unwrap_or_default())
            .unwrap_or_default();
        for pid in pids {
            let _ = kill_group(pid);
        }
    }
}

/// Drop a finished process group, so its id (which the system may reuse)
/// is never signalled later.
fn forget(groups: &Mutex<HashMap<String, Vec<i32>>>, workspace_id: &str, pid: i32) {
    if let Ok(mut groups) = groups.lock() {
        if let Some(pids) = groups.get_mut(workspace_id) {
            pids.retain(|p| *p != pid);
        }
    }
}

fn kill_group(pid: i32) -> Result<(), String> {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    if unsafe { libc::kill(-pid, libc::SIGKILL) } == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    // ESRCH: the group is already gone, which is what a kill wants.
    if error.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(format!("kill of process group {pid} failed: {error}"))
    }
}

fn command_for(
    workspace: &Workspace,
    request: &ExecRequest,
) -> Result<std::process::Command, WorkspaceError> {
    let Some((program, args)) = request.command.split_first() else {
        return Err(WorkspaceError::InvalidRequest("no command given".into()));
    };
    let mut command = std::process::Command::new(program);
    command.args(args);
    let dir = match &request.working_dir {
        // `/workspace` paths from callers that think in container terms map to the folder.
        Some(path) => match path.strip_prefix(crate::docker::MOUNT_POINT) {
            Some(rest) => workspace.dir.join(rest.trim_start_matches('/')),
            None => workspace.dir.join(path.trim_start_matches('/')),
        },
        None => workspace.dir.clone(),
    };
    command.current_dir(dir);
    command.envs(workspace.env.iter());
    command.envs(request.env.iter().map(|(k, v)| (k, v)));
    command.env("AICOCKPIT_WORKSPACE", &workspace.name);
    Ok(command)
}

fn spawn_error(workspace: &Workspace, error: io::Error) -> WorkspaceError {
    WorkspaceError::InvalidRequest(format!(
        "cannot start the command in workspace {:?}: {error}",
        workspace.name
    ))
}

/// Read a blocking source on a thread, as a stream of chunks.
fn read_on_thread(mut source: impl Read + Send + 'static, kind: OutputKind) -> OutputStream {
    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<(OutputKind, Bytes)>>(64);
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if sender
                        .blocking_send(Ok((kind, Bytes::copy_from_slice(&buffer[..n]))))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A terminal's master side reports EIO once the last process closes it.
                Err(error) if error.raw_os_error() == Some(libc::EIO) => break,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    break;
                }
            }
        }
    });
    Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ))
}

/// A blocking sink (a terminal's master side) written on a plain thread,
/// offered as an `AsyncWrite`. Not `tokio::fs::File`: made for regular
/// files, on a PTY master its writes now and then reached the shell as
/// end-of-file under load (1–3 sessions in 30 ended early; none in 120 this way).
fn write_on_thread(mut sink: std::fs::File) -> io::Result<tokio::io::DuplexStream> {
    let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    std::thread::spawn(move || {
        use std::io::Write;
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match handle.block_on(theirs.read(&mut buffer)) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(ours)
}

fn set_window_size(fd: i32, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct we own for the duration of the call.
    let result = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Local
    }

    fn isolated(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn create(&self, workspace: &Workspace, _scope: &str) -> Result<String, WorkspaceError> {
        std::fs::create_dir_all(&workspace.dir)
            .map_err(|e| WorkspaceError::io(&workspace.dir, e))?;
        Ok(format!("local-{}", workspace.id))
    }

    async fn start(&self, _workspace: &Workspace) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn stop(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        self.kill_all(workspace);
        Ok(())
    }

    async fn restart(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        self.kill_all(workspace);
        Ok(())
    }

    async fn freeze(&self, _workspace: &Workspace) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn thaw(&self, _workspace: &Workspace) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn rename(
        &self,
        _workspace: &Workspace,
        _container_name: &str,
    ) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn remove(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        self.kill_all(workspace);
        Ok(())
    }

    async fn list(&self, _scope: &str) -> Result<HashMap<String, Observed>, WorkspaceError> {
        Ok(HashMap::new())
    }

    async fn inspect(&self, workspace: &Workspace) -> Result<Option<Observed>, WorkspaceError> {
        Ok(workspace.dir.is_dir().then(|| Observed {
            container_id: format!("local-{}", workspace.id),
            container_name: workspace.container_name(),
            state: match workspace.state {
                crate::model::WorkspaceState::Missing => crate::model::WorkspaceState::Stopped,
                other => other,
            },
            image: String::new(),
            started_at: workspace.started_at,
            ports: Vec::new(),
            labels: HashMap::new(),
        }))
    }

    async fn exec(
        &self,
        workspace: &Workspace,
        request: ExecRequest,
    ) -> Result<ExecIo, WorkspaceError> {
        self.spawn(workspace, request).map(|(io, _)| io)
    }

    async fn run(
        &self,
        workspace: &Workspace,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<RunOutput, WorkspaceError> {
        let (io, pid) = self.spawn(
            workspace,
            ExecRequest {
                command,
                ..ExecRequest::default()
            },
        )?;
        // The caller gone: the command's group is killed, not left running.
        let on_drop = crate::backend::OnDrop::new(move || {
            if let Err(reason) = kill_group(pid) {
                tracing::warn!(%reason, "cannot kill an abandoned command");
            }
        });
        let kill = async move { kill_group(pid) };
        let collected = crate::backend::collect_with_deadline(io, timeout, kill).await;
        on_drop.disarm();
        collected.map_err(|error| match error {
            crate::backend::CollectError::Io(error) => WorkspaceError::io(&workspace.dir, error),
            crate::backend::CollectError::KillFailed(reason) => WorkspaceError::KillFailed {
                name: workspace.name.clone(),
                seconds: timeout.as_secs(),
                reason,
            },
        })
    }

    async fn process_owners(
        &self,
        _workspace: &Workspace,
    ) -> Result<Option<Vec<crate::backend::ProcessOwner>>, WorkspaceError> {
        // Host processes run as whoever runs AiCockpit: nothing to check.
        Ok(None)
    }

    async fn writable_mount_sources(
        &self,
    ) -> Result<Vec<(String, std::path::PathBuf)>, WorkspaceError> {
        Ok(Vec::new())
    }

    async fn stats(&self, _workspace: &Workspace) -> Result<Stats, WorkspaceError> {
        Err(WorkspaceError::Unsupported {
            backend: "local",
            what: "measure a workspace's resource use (its processes are ordinary host processes)"
                .to_string(),
        })
    }
}
