//! Terminal sessions that outlive their clients: one interactive process's
//! byte streams, watched by any number of clients that come and go.
//!
//! Invariants: memory per session is bounded (a ring of the last
//! `replay_bytes` bytes of output and a broadcast channel of at most
//! [`BROADCAST_CHUNKS`] chunks of at most [`MAX_CHUNK_BYTES`] bytes each); a
//! client that attaches receives the replay and then every later byte, none
//! lost or repeated, because the replay is taken and the subscription made
//! under the same lock that output is published under; a slow client never
//! blocks the session or other clients; a session nobody has watched for
//! `idle_timeout` closes itself, dropping the process's input.
//!
//! A client that falls more than [`BROADCAST_CHUNKS`] chunks behind catches
//! up from the ring; if the bytes it missed have already left the ring,
//! they are skipped (no marker is inserted into the stream, which could
//! break an escape sequence) and counted in [`TerminalClient::missed_bytes`]
//! so the caller can tell the user or redraw.
//!
//! This module does not know whether the process is a `docker exec` or a
//! host process. Sessions spawn Tokio tasks, so [`TerminalSession::start`]
//! and [`TerminalRegistry::start`] must be called within a Tokio runtime.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};

/// How many chunks of live output a client may fall behind before it has to
/// catch up from the replay ring.
pub const BROADCAST_CHUNKS: usize = 128;

/// Output is broadcast in pieces of at most this many bytes, which bounds
/// the broadcast channel's memory at `BROADCAST_CHUNKS * MAX_CHUNK_BYTES`.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// Changes the size of the process's terminal to (columns, rows).
pub type ResizeCallback = Box<dyn Fn(u16, u16) -> BoxFuture<'static, io::Result<()>> + Send + Sync>;

/// The byte streams of one interactive process.
pub struct TerminalIo {
    /// What the process writes. The session closes when this ends or fails.
    pub output: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    /// The process's input. Dropped when the session closes, so the process sees end of input.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Called with (columns, rows) on every resize.
    pub resize: ResizeCallback,
}

impl TerminalIo {
    /// Box the parts of a process's streams.
    pub fn new<Output, Input, Resize, ResizeFuture>(
        output: Output,
        input: Input,
        resize: Resize,
    ) -> TerminalIo
    where
        Output: Stream<Item = io::Result<Bytes>> + Send + 'static,
        Input: AsyncWrite + Send + 'static,
        Resize: Fn(u16, u16) -> ResizeFuture + Send + Sync + 'static,
        ResizeFuture: Future<Output = io::Result<()>> + Send + 'static,
    {
        TerminalIo {
            output: Box::pin(output),
            input: Box::pin(input),
            resize: Box::new(move |columns, rows| resize(columns, rows).boxed()),
        }
    }
}

/// How a session keeps output and when it gives up on absent clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalOptions {
    /// How many of the last bytes of output a newly attached client receives.
    pub replay_bytes: usize,
    /// A session with no client attached for this long closes itself.
    pub idle_timeout: Duration,
}

impl Default for TerminalOptions {
    fn default() -> Self {
        TerminalOptions {
            replay_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// A running terminal session. Cloning gives another handle to the same session.
#[derive(Clone)]
pub struct TerminalSession {
    inner: Arc<Inner>,
}

impl TerminalSession {
    /// Start pumping the process's output; the session is idle (and counts
    /// towards `idle_timeout`) until a client attaches.
    pub fn start(id: String, io: TerminalIo, options: TerminalOptions) -> TerminalSession {
        let (sender, _) = broadcast::channel(BROADCAST_CHUNKS);
        let inner = Arc::new(Inner {
            id,
            state: Mutex::new(State {
                ring: VecDeque::new(),
                capacity: options.replay_bytes,
                total: 0,
                sender: Some(sender),
                clients: 0,
            }),
            input: tokio::sync::Mutex::new(Some(io.input)),
            resize: io.resize,
            closed: watch::channel(false).0,
            clients: watch::channel(0).0,
            exit: watch::channel(None).0,
        });
        tokio::spawn(pump(Arc::clone(&inner), io.output));
        tokio::spawn(close_when_idle(Arc::clone(&inner), options.idle_timeout));
        TerminalSession { inner }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Attach a client: it receives the replay, then all later output.
    pub fn attach(&self) -> TerminalClient {
        let mut state = self.inner.state();
        let replay = Bytes::copy_from_slice(state.ring.make_contiguous());
        let receiver = state.sender.as_ref().map(broadcast::Sender::subscribe);
        let position = state.total;
        state.clients += 1;
        // Published under the lock so counts never arrive out of order.
        self.inner.clients.send_replace(state.clients);
        drop(state);
        TerminalClient {
            replay,
            receiver,
            position,
            missed: 0,
            inner: Arc::clone(&self.inner),
        }
    }

    /// Send bytes to the process's input.
    pub async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut closed = self.inner.closed.subscribe();
        if *closed.borrow_and_update() {
            return Err(self.inner.closed_error());
        }
        // Waiting for the input or for a write to finish stops at close, so
        // a process that stopped reading cannot keep the session open.
        let mut input = tokio::select! {
            input = self.inner.input.lock() => input,
            _ = closed.wait_for(|closed| *closed) => return Err(self.inner.closed_error()),
        };
        let Some(input) = input.as_mut() else {
            return Err(self.inner.closed_error());
        };
        tokio::select! {
            result = async {
                input.write_all(bytes).await?;
                input.flush().await
            } => result,
            _ = closed.wait_for(|closed| *closed) => Err(self.inner.closed_error()),
        }
    }

    /// Resize the process's terminal.
    pub async fn resize(&self, columns: u16, rows: u16) -> io::Result<()> {
        if self.is_closed() {
            return Err(self.inner.closed_error());
        }
        (self.inner.resize)(columns, rows).await
    }

    /// How many clients are attached.
    pub fn clients(&self) -> usize {
        self.inner.state().clients
    }

    /// How many bytes of output the process has produced so far.
    pub fn output_len(&self) -> u64 {
        self.inner.state().total
    }

    /// Whether the process's output ended or the session was torn down.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Resolves once the session is closed.
    pub async fn closed(&self) {
        let mut closed = self.inner.closed.subscribe();
        // The sender lives in `inner`, which this handle keeps alive, so
        // the wait can only end by the session closing.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Tear the session down now: clients receive what was already sent and
    /// then `None`, the process's input is dropped and its output no longer read.
    pub fn close(&self) {
        self.inner.mark_closed(&mut self.inner.state());
    }

    /// Record the process's exit status once it is known (`None` inside:
    /// the code could not be learnt, e.g. the process was killed).
    pub fn set_exit_status(&self, code: Option<i64>) {
        self.inner.exit.send_replace(Some(code));
    }

    /// The process's exit status, waiting at most `wait` for it to be known
    /// after the session closed. `None`: not known (yet).
    pub async fn exit_status(&self, wait: Duration) -> Option<Option<i64>> {
        let mut exit = self.inner.exit.subscribe();
        let known = tokio::time::timeout(wait, exit.wait_for(Option::is_some)).await;
        match known {
            Ok(Ok(status)) => *status,
            _ => None,
        }
    }

    fn same_as(&self, other: &TerminalSession) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for TerminalSession {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TerminalSession")
            .field("id", &self.inner.id)
            .field("clients", &self.clients())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// One attached client. Dropping it detaches it.
pub struct TerminalClient {
    /// The last output before the client attached (at most `replay_bytes`).
    pub replay: Bytes,
    receiver: Option<broadcast::Receiver<Chunk>>,
    /// Offset in the whole output of the next byte this client expects.
    position: u64,
    missed: u64,
    inner: Arc<Inner>,
}

impl TerminalClient {
    /// The next output after what this client has received; `None` once the
    /// session has closed and everything sent before was received.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            let receiver = self.receiver.as_mut()?;
            match receiver.recv().await {
                Ok(chunk) => {
                    if let Some(bytes) = self.accept(chunk) {
                        return Some(bytes);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(bytes) = self.catch_up() {
                        return Some(bytes);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.receiver = None;
                    return None;
                }
            }
        }
    }

    /// How many bytes of output this client skipped because it fell behind
    /// further than the replay ring reaches.
    pub fn missed_bytes(&self) -> u64 {
        self.missed
    }

    /// The part of a chunk this client has not seen yet.
    fn accept(&mut self, chunk: Chunk) -> Option<Bytes> {
        let end = chunk.start + chunk.bytes.len() as u64;
        if end <= self.position {
            // Already delivered by a catch-up from the ring.
            return None;
        }
        if chunk.start > self.position {
            self.missed += chunk.start - self.position;
            self.position = chunk.start;
        }
        let offset = usize::try_from(self.position - chunk.start).unwrap_or(usize::MAX);
        self.position = end;
        Some(chunk.bytes.slice(offset.min(chunk.bytes.len())..))
    }

    /// After lagging: everything from `position` that the ring still holds.
    fn catch_up(&mut self) -> Option<Bytes> {
        let mut state = self.inner.state();
        let ring_start = state.total - state.ring.len() as u64;
        if self.position < ring_start {
            self.missed += ring_start - self.position;
            self.position = ring_start;
        }
        let skip = usize::try_from(self.position - ring_start).unwrap_or(usize::MAX);
        let ring = state.ring.make_contiguous();
        let bytes = Bytes::copy_from_slice(ring.get(skip..).unwrap_or_default());
        self.position = state.total;
        drop(state);
        (!bytes.is_empty()).then_some(bytes)
    }
}

impl Drop for TerminalClient {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        state.clients = state.clients.saturating_sub(1);
        self.inner.clients.send_replace(state.clients);
    }
}

impl fmt::Debug for TerminalClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TerminalClient")
            .field("session", &self.inner.id)
            .field("position", &self.position)
            .field("missed", &self.missed)
            .finish()
    }
}

/// Why a registry refused a session.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("a terminal session with id `{id}` is already open")]
    DuplicateId { id: String },
}

/// The open terminal sessions by id. Cloning gives another handle to the
/// same registry. A session that closes (its process ended, it idled out, or
/// it was closed) is removed automatically.
#[derive(Clone)]
pub struct TerminalRegistry {
    options: TerminalOptions,
    sessions: Arc<Mutex<HashMap<String, TerminalSession>>>,
}

impl TerminalRegistry {
    /// A registry whose sessions are started with `options`.
    pub fn new(options: TerminalOptions) -> TerminalRegistry {
        TerminalRegistry {
            options,
            sessions: Arc::default(),
        }
    }

    pub fn options(&self) -> &TerminalOptions {
        &self.options
    }

    /// Start a session with the registry's options and register it. An open
    /// session with the same id is an error; `io` is then dropped, which
    /// ends the new process's input.
    pub fn start(
        &self,
        id: impl Into<String>,
        io: TerminalIo,
    ) -> Result<TerminalSession, TerminalError> {
        let id = id.into();
        let mut sessions = self.sessions();
        refuse_duplicate(&sessions, &id)?;
        let session = TerminalSession::start(id.clone(), io, self.options.clone());
        sessions.insert(id, session.clone());
        drop(sessions);
        self.forget_when_closed(&session);
        Ok(session)
    }

    /// Register a session started elsewhere, under its own id.
    pub fn insert(&self, session: TerminalSession) -> Result<(), TerminalError> {
        let mut sessions = self.sessions();
        refuse_duplicate(&sessions, session.id())?;
        sessions.insert(session.id().to_string(), session.clone());
        drop(sessions);
        self.forget_when_closed(&session);
        Ok(())
    }

    /// The open session with this id.
    pub fn get(&self, id: &str) -> Option<TerminalSession> {
        self.sessions()
            .get(id)
            .filter(|session| !session.is_closed())
            .cloned()
    }

    /// Forget the session with this id and close it.
    pub fn remove(&self, id: &str) -> Option<TerminalSession> {
        let session = self.sessions().remove(id)?;
        session.close();
        Some(session)
    }

    /// Forget every closed session; returns how many were forgotten. Closed
    /// sessions are also forgotten on their own shortly after closing.
    pub fn remove_closed(&self) -> usize {
        let mut sessions = self.sessions();
        let before = sessions.len();
        sessions.retain(|_, session| !session.is_closed());
        before - sessions.len()
    }

    /// The ids of the open sessions, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sessions()
            .iter()
            .filter(|(_, session)| !session.is_closed())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions()
            .values()
            .filter(|session| !session.is_closed())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, TerminalSession>> {
        // No code panics while holding this lock, so a poisoned lock still
        // holds a consistent map.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remove `session` from the registry once it closes, unless it has been
    /// replaced by then. Holds the registry weakly so it can be dropped.
    fn forget_when_closed(&self, session: &TerminalSession) {
        let registry: Weak<Mutex<HashMap<String, TerminalSession>>> =
            Arc::downgrade(&self.sessions);
        let session = session.clone();
        tokio::spawn(async move {
            session.closed().await;
            let Some(registry) = registry.upgrade() else {
                return;
            };
            let mut sessions = registry.lock().unwrap_or_else(PoisonError::into_inner);
            if sessions
                .get(session.id())
                .is_some_and(|current| current.same_as(&session))
            {
                sessions.remove(session.id());
            }
        });
    }
}

impl fmt::Debug for TerminalRegistry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TerminalRegistry")
            .field("options", &self.options)
            .field("sessions", &self.ids())
            .finish()
    }
}

fn refuse_duplicate(
    sessions: &HashMap<String, TerminalSession>,
    id: &str,
) -> Result<(), TerminalError> {
    match sessions.get(id) {
        Some(existing) if !existing.is_closed() => {
            Err(TerminalError::DuplicateId { id: id.to_string() })
        }
        _ => Ok(()),
    }
}

/// A piece of output and where it starts in the whole output.
#[derive(Clone)]
struct Chunk {
    start: u64,
    bytes: Bytes,
}

struct Inner {
    id: String,
    state: Mutex<State>,
    /// `None` once the session closed and the input was dropped.
    input: tokio::sync::Mutex<Option<Pin<Box<dyn AsyncWrite + Send>>>>,
    resize: ResizeCallback,
    closed: watch::Sender<bool>,
    /// The number of attached clients, for the idle watcher.
    clients: watch::Sender<usize>,
    /// The process's exit status once known: `Some(None)` when it has no code.
    exit: watch::Sender<Option<Option<i64>>>,
}

/// What output is published and attached under, behind one lock.
struct State {
    /// The last `capacity` bytes of output.
    ring: VecDeque<u8>,
    capacity: usize,
    /// Bytes of output so far; the ring ends at this offset.
    total: u64,
    /// `None` once closed, which ends every client's stream.
    sender: Option<broadcast::Sender<Chunk>>,
    clients: usize,
}

impl State {
    fn remember(&mut self, bytes: &[u8]) {
        if bytes.len() >= self.capacity {
            self.ring.clear();
            self.ring.extend(&bytes[bytes.len() - self.capacity..]);
        } else {
            let overflow = (self.ring.len() + bytes.len()).saturating_sub(self.capacity);
            self.ring.drain(..overflow);
            self.ring.extend(bytes);
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding this lock, so a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, bytes: Bytes) {
        let mut state = self.state();
        let mut offset = 0;
        while offset < bytes.len() {
            let end = bytes.len().min(offset + MAX_CHUNK_BYTES);
            let piece = bytes.slice(offset..end);
            offset = end;
            state.remember(&piece);
            let start = state.total;
            state.total += piece.len() as u64;
            if let Some(sender) = &state.sender {
                // An error only means that no client is attached right now.
                let _ = sender.send(Chunk {
                    start,
                    bytes: piece,
                });
            }
        }
    }

    /// Mark the session closed; takes the state lock's guard so callers can
    /// decide atomically (the idle watcher checks the client count first).
    fn mark_closed(&self, state: &mut State) {
        state.sender = None;
        self.closed.send_replace(true);
    }

    fn closed_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("terminal session `{}` is closed", self.id),
        )
    }
}

/// Move the process's output into the ring and to the clients until the
/// output ends or the session is closed, then drop both streams.
async fn pump(
    inner: Arc<Inner>,
    mut output: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
) {
    let mut closed = inner.closed.subscribe();
    loop {
        tokio::select! {
            _ = closed.wait_for(|closed| *closed) => break,
            item = output.next() => match item {
                Some(Ok(bytes)) => inner.publish(bytes),
                // A read error ends the session like the end of output: the
                // process can no longer be watched either way.
                Some(Err(_)) | None => break,
            },
        }
    }
    drop(output);
    inner.mark_closed(&mut inner.state());
    // Writers give up the input lock when the session closes, so this wait is short.
    inner.input.lock().await.take();
}

/// Close the session once no client has been attached for `timeout`.
async fn close_when_idle(inner: Arc<Inner>, timeout: Duration) {
    let mut clients = inner.clients.subscribe();
    let mut closed = inner.closed.subscribe();
    loop {
        let idle = *clients.borrow_and_update() == 0;
        tokio::select! {
            _ = tokio::time::sleep(timeout), if idle => {
                let mut state = inner.state();
                // A client may have attached just as the timer fired.
                if state.clients == 0 {
                    inner.mark_closed(&mut state);
                    return;
                }
            }
            changed = clients.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = closed.wait_for(|closed| *closed) => return,
        }
    }
}
