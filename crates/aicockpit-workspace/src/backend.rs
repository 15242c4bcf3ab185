//! The backend trait: what every way of running a workspace must offer.
//!
//! Invariant: backends are stateless about records. The manager owns the
//! store and passes each call the record; a backend only talks to its engine
//! (Docker, or the host for the local backend), so a new process can pick up
//! where an old one stopped.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use tokio::io::AsyncWrite;

use crate::error::WorkspaceError;
use crate::model::{BackendKind, ExecRequest, RunOutput, Stats, Workspace, WorkspaceState};

/// Label keys written on every container AiCockpit makes.
pub mod labels {
    /// The workspace id; the presence of this label marks a container as ours.
    pub const WORKSPACE: &str = "aicockpit.workspace";
    pub const NAME: &str = "aicockpit.name";
    /// The record as JSON at creation time, so an orphan can be adopted.
    pub const RECORD: &str = "aicockpit.record";
    /// The data folder of the store that made the container: managers of
    /// other data folders on the same engine leave it alone.
    pub const SCOPE: &str = "aicockpit.scope";
}

/// Which stream a chunk of output came from (a terminal has only `Stdout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Stdout,
    Stderr,
}

/// Output of a running command.
pub type OutputStream = Pin<Box<dyn Stream<Item = io::Result<(OutputKind, Bytes)>> + Send>>;

/// Resize a command's terminal to (cols, rows).
pub type Resizer = Box<dyn Fn(u16, u16) -> BoxFuture<'static, io::Result<()>> + Send + Sync>;

/// End a started command (and what it started) now.
pub type Terminator = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A terminator that does nothing (for commands that end by themselves).
pub fn no_terminator() -> Terminator {
    Box::new(|| Box::pin(async {}))
}

/// A started command: its output, its input, a resize handle and its exit code.
pub struct ExecIo {
    pub output: OutputStream,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub resize: Resizer,
    /// Ends the command. Closing the input is not enough: a shell on a
    /// terminal in a container outlives its client's connection.
    pub terminate: Terminator,
    /// Resolves to the exit code once the output has ended (`None` if unknown).
    pub exit_code: BoxFuture<'static, Option<i64>>,
}

/// What a backend sees of a workspace on its engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub container_id: String,
    /// The container's name on the engine, without the leading `/`.
    pub container_name: String,
    pub state: WorkspaceState,
    pub image: String,
    /// Unix seconds.
    pub started_at: Option<u64>,
    pub ports: Vec<String>,
    pub labels: HashMap<String, String>,
}

/// A way of running workspaces.
#[async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// Whether workspaces of this backend are isolated from the host.
    fn isolated(&self) -> bool;
    /// Check the engine is reachable; the error says how to fix it when not.
    async fn ping(&self) -> Result<(), WorkspaceError>;
    /// Make the container (not started), labelled with `scope`; returns its id.
    /// Leaves nothing behind on failure.
    async fn create(&self, workspace: &Workspace, scope: &str) -> Result<String, WorkspaceError>;
    async fn start(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    async fn stop(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    async fn restart(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    /// Freeze every process of a running workspace (the pool keeps its
    /// containers frozen: no CPU, and ready far sooner than a cold start).
    async fn freeze(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    /// Undo [`Backend::freeze`].
    async fn thaw(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    /// Give the workspace's container the name `container_name` (a pooled container being claimed).
    async fn rename(
        &self,
        workspace: &Workspace,
        container_name: &str,
    ) -> Result<(), WorkspaceError>;
    /// Remove the container; a container already gone is not an error.
    async fn remove(&self, workspace: &Workspace) -> Result<(), WorkspaceError>;
    /// Every container carrying our labels and `scope`, keyed by workspace id.
    async fn list(&self, scope: &str) -> Result<HashMap<String, Observed>, WorkspaceError>;
    /// The workspace's container, or `None` if it is gone.
    async fn inspect(&self, workspace: &Workspace) -> Result<Option<Observed>, WorkspaceError>;
    /// Start a command; with `tty`, on a terminal that can be resized.
    async fn exec(
        &self,
        workspace: &Workspace,
        request: ExecRequest,
    ) -> Result<ExecIo, WorkspaceError>;
    /// Run a command to completion, capturing its output; killed after `timeout`.
    async fn run(
        &self,
        workspace: &Workspace,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<RunOutput, WorkspaceError>;
    async fn stats(&self, workspace: &Workspace) -> Result<Stats, WorkspaceError>;
}

/// Collect an [`ExecIo`] to completion, killing nothing: the caller bounds it.
pub(crate) async fn collect(io: ExecIo, limit: usize) -> io::Result<RunOutput> {
    use futures_util::StreamExt;
    let ExecIo {
        mut output,
        input,
        exit_code,
        ..
    } = io;
    drop(input);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        let (kind, bytes) = chunk?;
        let buffer = match kind {
            OutputKind::Stdout => &mut stdout,
            OutputKind::Stderr => &mut stderr,
        };
        // Keep the first `limit` bytes of each stream; a chatty command cannot exhaust memory.
        let room = limit.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
    Ok(RunOutput {
        stdout,
        stderr,
        exit_code: exit_code.await,
        timed_out: false,
    })
}

/// Collect an [`ExecIo`] until it ends or `timeout` passes; on timeout, run
/// `kill` and keep what was printed before the kill (waiting at most 10 s more).
pub(crate) async fn collect_with_deadline(
    io: ExecIo,
    timeout: Duration,
    kill: impl std::future::Future<Output = ()>,
) -> io::Result<RunOutput> {
    use futures_util::StreamExt;
    const LIMIT: usize = 16 << 20;
    let ExecIo {
        mut output,
        input,
        exit_code,
        ..
    } = io;
    drop(input);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut timed_out = false;
    let mut kill = Some(kill);
    loop {
        tokio::select! {
            chunk = output.next() => {
                let Some(chunk) = chunk else { break };
                let (kind, bytes) = match chunk {
                    Ok(chunk) => chunk,
                    Err(_) if timed_out => break,
                    Err(error) => return Err(error),
                };
                let buffer = match kind {
                    OutputKind::Stdout => &mut stdout,
                    OutputKind::Stderr => &mut stderr,
                };
                let room = LIMIT.saturating_sub(buffer.len());
                buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            () = &mut deadline => {
                if timed_out {
                    break;
                }
                timed_out = true;
                if let Some(kill) = kill.take() {
                    kill.await;
                }
                deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(10));
            }
        }
    }
    Ok(RunOutput {
        stdout,
        stderr,
        exit_code: if timed_out {
            // Still collect the killed command's status (bounded), so it is reaped.
            let _ = tokio::time::timeout(Duration::from_secs(2), exit_code).await;
            None
        } else {
            exit_code.await
        },
        timed_out,
    })
}
