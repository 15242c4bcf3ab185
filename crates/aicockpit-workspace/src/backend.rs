//! The backend trait: what every way of running a workspace must offer.
//!
//! Invariant: backends are stateless about records. The manager owns the
//! store and passes each call the record; a backend only talks to its engine
//! (Docker, or the host for the local backend), so a new process can pick up
//! where an old one stopped.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
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
    /// The user, group and supplementary groups of every process of a
    /// running workspace, as the host sees them (not as any program inside
    /// the container reports them). `None` when the backend cannot tell.
    async fn process_owners(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<Vec<ProcessOwner>>, WorkspaceError>;
    /// The host folders bind-mounted (writable) into any container on the
    /// engine, with the container's id, whoever made it.
    async fn writable_mount_sources(&self) -> Result<Vec<(String, PathBuf)>, WorkspaceError>;
    /// Wait, at most `within`, for work that outlived its call (the kill of
    /// an abandoned run): a stopping server calls it before it exits.
    async fn settle(&self, within: Duration) -> bool {
        let _ = within;
        true
    }
}

/// Work that outlives the call that started it (the kill of an abandoned
/// run, the audit record of a call whose client hung up), counted so that
/// a stopping server can wait for it before its runtime goes.
#[derive(Clone, Debug, Default)]
pub struct Detached(std::sync::Arc<std::sync::atomic::AtomicUsize>);

/// Counts one piece of [`Detached`] work until dropped (run or not).
struct Outstanding(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Detached {
    /// Run `work` on the current runtime; false (nothing runs) without one.
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let outstanding = Outstanding(self.0.clone());
        runtime.spawn(async move {
            let _outstanding = outstanding;
            work.await;
        });
        true
    }

    /// How many are under way.
    pub fn outstanding(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until none is under way, at most `within`; whether none is.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.outstanding() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Who a process runs as, seen from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessOwner {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
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

/// The line a wrapper shell prints first, on stderr (or the terminal), so
/// AiCockpit learns the pid of the command it started without writing a
/// file inside the container (whose `/tmp` may not be writable).
pub(crate) const PID_MARKER: &str = "\u{1e}aicockpit-pid:";

/// The shell prologue that prints [`PID_MARKER`] with the shell's pid.
pub(crate) fn pid_marker_prologue(to_stderr: bool) -> String {
    let redirect = if to_stderr { " >&2" } else { "" };
    format!("printf '\\036aicockpit-pid:%s\\n' \"$$\"{redirect}")
}

/// Strip the [`PID_MARKER`] line from the first output of `kind` and put
/// the pid into `pid`. The line is looked for in the first 4 KiB, not only
/// at the very start: on a terminal, input typed before the shell started is
/// echoed ahead of it. Output passes through as it comes, except for the few
/// bytes at a chunk's end that could be the start of the marker.
pub(crate) fn strip_pid_marker(
    output: OutputStream,
    kind: OutputKind,
    pid: std::sync::Arc<std::sync::OnceLock<u32>>,
) -> OutputStream {
    use futures_util::StreamExt;
    let mut scanner = MarkerScanner::default();
    let stripped = output
        .map(move |item| match item {
            Ok((chunk_kind, bytes)) if chunk_kind == kind && scanner.searching() => {
                let (out, found) = scanner.feed(&bytes);
                if let Some(found) = found {
                    let _ = pid.set(found);
                }
                Ok((chunk_kind, Bytes::from(out)))
            }
            other => other,
        })
        .filter(|item| std::future::ready(!matches!(item, Ok((_, bytes)) if bytes.is_empty())));
    Box::pin(stripped)
}

/// Looks for the marker line in the first [`MarkerScanner::WINDOW`] bytes.
#[derive(Default)]
struct MarkerScanner {
    /// Bytes held back: a possible start of the marker, or a marker whose
    /// line has not ended yet.
    carry: Vec<u8>,
    seen: usize,
    done: bool,
}

impl MarkerScanner {
    const WINDOW: usize = 4096;

    fn searching(&self) -> bool {
        !self.done
    }

    /// The bytes to pass on now, and the pid once the marker line is whole.
    fn feed(&mut self, chunk: &[u8]) -> (Vec<u8>, Option<u32>) {
        self.seen += chunk.len();
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let marker = PID_MARKER.as_bytes();
        if let Some(start) = find(&data, marker) {
            match parse_pid_marker(data.get(start..).unwrap_or_default()) {
                MarkerParse::Found(found, rest) => {
                    let mut out = data.get(..start).unwrap_or_default().to_vec();
                    out.extend_from_slice(rest);
                    self.done = true;
                    return (out, Some(found));
                }
                MarkerParse::Incomplete if self.seen <= Self::WINDOW => {
                    self.carry = data.split_off(start);
                    return (data, None);
                }
                _ => {
                    self.done = true;
                    return (data, None);
                }
            }
        }
        if self.seen > Self::WINDOW {
            self.done = true;
            return (data, None);
        }
        // Hold back a tail that could be the marker's beginning.
        let keep = (1..marker.len())
            .rev()
            .find(|&len| data.len() >= len && data.ends_with(marker.get(..len).unwrap_or_default()))
            .unwrap_or(0);
        self.carry = data.split_off(data.len() - keep);
        (data, None)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

enum MarkerParse<'a> {
    Incomplete,
    Found(u32, &'a [u8]),
    Absent,
}

fn parse_pid_marker(buffer: &[u8]) -> MarkerParse<'_> {
    let marker = PID_MARKER.as_bytes();
    let shared = buffer.len().min(marker.len());
    if buffer.get(..shared) != marker.get(..shared) {
        return MarkerParse::Absent;
    }
    let Some(newline) = buffer.iter().position(|&byte| byte == b'\n') else {
        // A pid has at most 10 digits; anything longer is not our marker.
        return if buffer.len() > marker.len() + 12 {
            MarkerParse::Absent
        } else {
            MarkerParse::Incomplete
        };
    };
    let digits = buffer.get(marker.len()..newline).unwrap_or_default();
    let digits = digits.strip_suffix(b"\r").unwrap_or(digits);
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
    {
        Some(found) => MarkerParse::Found(found, buffer.get(newline + 1..).unwrap_or_default()),
        None => MarkerParse::Absent,
    }
}

/// Why a timed-out command could not be collected.
#[derive(Debug)]
pub(crate) enum CollectError {
    /// Reading the output failed.
    Io(io::Error),
    /// The command timed out and was not killed (or did not end when killed).
    KillFailed(String),
}

/// Runs its action when dropped, unless disarmed first: what a future must
/// undo if it is dropped before it finishes.
pub(crate) struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub(crate) fn new(action: F) -> OnDrop<F> {
        OnDrop(Some(action))
    }

    /// Finished: nothing to undo.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(action) = self.0.take() {
            action();
        }
    }
}

/// Collect an [`ExecIo`] until it ends or `timeout` passes; on timeout, run
/// `kill` and keep what was printed before the kill. A kill that fails, or
/// after which the output does not end within 10 s, is an error: a timeout
/// is only reported once the command is known to be gone.
pub(crate) async fn collect_with_deadline<Kill>(
    io: ExecIo,
    timeout: Duration,
    kill: Kill,
) -> Result<RunOutput, CollectError>
where
    Kill: std::future::Future<Output = Result<(), String>>,
{
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
                    Err(error) => return Err(CollectError::Io(error)),
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
                    return Err(CollectError::KillFailed(
                        "the command's output was still open 10 s after it was killed".to_string(),
                    ));
                }
                timed_out = true;
                if let Some(kill) = kill.take() {
                    kill.await.map_err(CollectError::KillFailed)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn detached_work_is_counted_until_it_ends_and_waited_for() {
        let detached = Detached::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        assert!(detached.spawn(async move {
            let _ = released.await;
        }));
        assert_eq!(detached.outstanding(), 1);
        assert!(!detached.settle(Duration::from_millis(50)).await);
        release.send(()).unwrap();
        assert!(detached.settle(Duration::from_secs(5)).await);
        assert_eq!(detached.outstanding(), 0);
    }

    #[test]
    fn detached_work_without_a_runtime_is_refused() {
        let detached = Detached::default();
        assert!(!detached.spawn(async {}));
        assert_eq!(detached.outstanding(), 0);
    }

    #[test]
    fn pid_markers_are_parsed_only_when_whole() {
        let marker = PID_MARKER;
        assert!(matches!(
            parse_pid_marker(&marker.as_bytes()[..3]),
            MarkerParse::Incomplete
        ));
        let line = format!("{marker}4242\r\nrest");
        match parse_pid_marker(line.as_bytes()) {
            MarkerParse::Found(pid, rest) => {
                assert_eq!(pid, 4242);
                assert_eq!(rest, b"rest");
            }
            _ => panic!("marker not found"),
        }
        assert!(matches!(
            parse_pid_marker(b"error: x\n"),
            MarkerParse::Absent
        ));
        let bogus = format!("{marker}12x\n");
        assert!(matches!(
            parse_pid_marker(bogus.as_bytes()),
            MarkerParse::Absent
        ));
    }
}
