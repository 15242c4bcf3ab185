//! Framing in front of tower-lsp: every incoming message is checked before
//! tower-lsp sees it, so bad input is answered with a JSON-RPC parse error
//! (-32700) and the session goes on; the input ends right after `exit`, so
//! the server stops.
//!
//! tower-lsp's reader ends the whole session after the first message it
//! cannot decode, and keeps reading after `exit` until the client closes the
//! pipe; both would leave an editor with a dead or lingering server.
//!
//! It is also where message order is kept: tower-lsp runs handlers
//! concurrently, so after each notification that changes what later
//! requests see (text sync, settings) the next message is held back until
//! the server has applied it ([`Gate`]). And a request whose method starts
//! with `$/` is answered "method not found" here, since tower-lsp ignores
//! every `$/` message, requests included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc::{self, error::SendTimeoutError, UnboundedSender};
use tokio::sync::watch;
use tower_lsp::Server;

use crate::server::{build_service, ServerOptions};

/// A checked message on its way to the gate, with the share of its
/// session's input budget it holds until the gate takes it (see
/// [`serve_messages`]; stdio input has no budget).
type Checked = (String, Option<tokio::sync::OwnedSemaphorePermit>);

/// Bodies larger than this are discarded and answered with a parse error.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Header lines longer than this are garbage.
const MAX_HEADER_LINE: usize = 8 * 1024;
/// A safety net: a gated notification the server never reports applied
/// (a bug) holds the input back at most this long.
const GATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Checked messages waiting for the gate, at most (more wait in the channel)…
const MAX_HELD: usize = 256;
/// …and their bytes at most (one larger message is still taken).
const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;
/// Messages queued between the reader, the gate and tower-lsp.
const INPUT_QUEUE: usize = 16;
/// Messages queued for the client (before `outgoing`).
const OUTPUT_QUEUE: usize = 64;
/// After `exit` or the end of the input, what the server still sends is
/// delivered for at most this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The notifications after which the transport waits until the server has
/// applied them, so a request that follows sees their effect.
pub const GATED_NOTIFICATIONS: &[&str] = &[
    "textDocument/didOpen",
    "textDocument/didChange",
    "textDocument/didSave",
    "textDocument/didClose",
    "workspace/didChangeConfiguration",
];

/// Keeps notifications and the requests after them in order. The server
/// arms it once `initialize` succeeded (before that, tower-lsp drops
/// notifications unhandled) and disarms it on `shutdown`; each gated
/// handler reports itself applied (also when it returns early).
#[derive(Clone, Debug)]
pub struct Gate {
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    applied: watch::Sender<u64>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            armed: std::sync::Arc::default(),
            applied: watch::channel(0).0,
        }
    }
}

impl Gate {
    pub fn arm(&self, armed: bool) {
        self.armed.store(armed, std::sync::atomic::Ordering::SeqCst);
    }

    /// A guard that reports one gated notification applied when dropped.
    pub fn applying(&self) -> Applied {
        Applied(self.applied.clone())
    }

    fn armed(&self) -> bool {
        self.armed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Reports a gated notification applied when dropped, however its handler ends.
pub struct Applied(watch::Sender<u64>);

impl Drop for Applied {
    fn drop(&mut self) {
        self.0.send_modify(|applied| *applied += 1);
    }
}

/// Check messages from `input`; good ones go on through the returned stream,
/// parse errors go to `replies` as complete response bodies. While a gated
/// notification is being applied, later requests and notifications are held
/// back; the client's responses are not (a handler may be waiting for one).
pub fn frame_input<R>(input: R, replies: UnboundedSender<String>, gate: Gate) -> DuplexStream
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (checked_sender, checked) = mpsc::channel::<Checked>(INPUT_QUEUE);
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        loop {
            let checked_body = match read_message(&mut input).await {
                Ok(Some(body)) => check(&body).map(|()| body),
                Ok(None) => return,
                Err(problem) => Err((Value::Null, -32700, format!("Parse error: {problem}"))),
            };
            match checked_body {
                Ok(body) => {
                    let body = normalize_params(body);
                    let is_exit = is_exit_notification(&body);
                    if checked_sender.send((body, None)).await.is_err() || is_exit {
                        return; // Nothing is read after `exit`.
                    }
                }
                Err((id, code, message)) => {
                    tracing::warn!("bad LSP input: {message}");
                    let _ = replies.send(error_response(id, code, &message));
                }
            }
        }
    });
    gate_input(checked, gate)
}

fn error_response(id: Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// Hand checked messages to tower-lsp as Content-Length frames, in order,
/// holding requests and notifications back while a gated notification is
/// being applied. The stream ends after `exit` or when `checked` ends.
fn gate_input(mut checked: mpsc::Receiver<Checked>, gate: Gate) -> DuplexStream {
    let (mut writer, reader) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let mut applied = gate.applied.subscribe();
        let mut held: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut held_bytes = 0usize;
        // While set: the applied count a gated notification must raise.
        let mut waiting: Option<u64> = None;
        let mut input_ended = false;
        let mut deadline = tokio::time::Instant::now();
        loop {
            if waiting.is_none() {
                if let Some(body) = held.pop_front() {
                    held_bytes -= body.len();
                    let is_exit = is_exit_notification(&body);
                    // Seen before the write: the handler may report applied at once.
                    let gated = gate.armed() && is_gated_notification(&body);
                    let before = *applied.borrow_and_update();
                    if write_frame(&mut writer, &body).await.is_err() || is_exit {
                        return; // Dropping the writer ends the server's input.
                    }
                    if gated {
                        waiting = Some(before);
                        deadline = tokio::time::Instant::now() + GATE_TIMEOUT;
                    }
                    continue;
                }
                if input_ended {
                    return;
                }
            }
            tokio::select! {
                // Bounded: a client that floods while a notification is
                // applied waits in the channel, then in its own socket.
                // Taking a message gives its share of the budget back: held
                // messages have a bound of their own.
                body = checked.recv(), if !input_ended && held.len() < MAX_HELD && held_bytes < MAX_HELD_BYTES => match body.map(|(body, _share)| body) {
                    // The client's responses never wait behind a notification.
                    Some(body) if waiting.is_some() && is_response(&body) => {
                        if write_frame(&mut writer, &body).await.is_err() {
                            return;
                        }
                    }
                    Some(body) => {
                        held_bytes += body.len();
                        held.push_back(body);
                    }
                    None => input_ended = true,
                },
                changed = applied.changed(), if waiting.is_some() => {
                    if changed.is_err() {
                        return; // The server is gone.
                    }
                    if waiting.is_some_and(|before| *applied.borrow_and_update() > before) {
                        waiting = None;
                    }
                }
                () = tokio::time::sleep_until(deadline), if waiting.is_some() => {
                    tracing::error!("a notification was not applied in {GATE_TIMEOUT:?}");
                    waiting = None;
                }
            }
        }
    });
    reader
}

/// Why a session over messages ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent `exit`; `after_shutdown` is whether `shutdown` came first.
    Exit { after_shutdown: bool },
    /// The incoming channel ended (the connection closed) without `exit`.
    Closed,
    /// The host's shutdown signal ([`ServerOptions::shutdown`] or
    /// [`crate::SharedEngine::shutdown`]): the client was told.
    ServerShutdown,
    /// The client took no message for [`ServerOptions::slow_client_timeout`]
    /// while the server had some to send.
    ClientTooSlow,
    /// The receiver of `outgoing` was dropped.
    OutputClosed,
}

/// Serve one language-server session over whole JSON-RPC messages (one
/// message per item, no `Content-Length` framing), as a WebSocket carries
/// them in text frames. The same handlers and ordering as [`crate::serve`]:
/// requests wait for the notifications received before them, `didChange`
/// applies in receive order.
///
/// Bad input never ends the session: a message that is not JSON is
/// answered with a parse error (-32700), one that is not a JSON-RPC object
/// or is over [`ServerOptions::max_message_bytes`] with an invalid-request
/// error (-32600), with the message's id when it is known. Both channels are
/// bounded: the session reads `incoming` only as fast as it handles it, and
/// a client that takes nothing from `outgoing` for
/// [`ServerOptions::slow_client_timeout`] while messages wait is dropped
/// ([`SessionEnd::ClientTooSlow`]), so memory stays bounded. The host should
/// read the socket and write it in two tasks (or one `select!`), so that a
/// session waiting on one direction never stalls the other.
///
/// The session ends when `incoming` ends, after `exit`, when `outgoing` is
/// dropped, or on the host's shutdown signal; in every case the documents
/// it opened are released (for a shared project, the index goes back to
/// the disk for those no other session has open).
pub async fn serve_messages(
    options: ServerOptions,
    incoming: mpsc::Receiver<String>,
    outgoing: mpsc::Sender<String>,
) -> SessionEnd {
    let max_bytes = options.max_message_bytes;
    let slow_client_timeout = options.slow_client_timeout;
    let host_signal = options.shutdown.clone();
    let project_signal = options
        .shared
        .as_ref()
        .map(|shared| shared.shutdown_signal());
    let (service, socket) = build_service(options);
    let inner = service.inner().session();
    let (to_client, mut to_client_queue) = mpsc::channel::<String>(OUTPUT_QUEUE);
    inner.set_direct_output(Some(crate::server::DirectOutput::Messages(
        to_client.clone(),
    )));
    let (checked_sender, checked) = mpsc::channel::<Checked>(INPUT_QUEUE);
    let exit_seen = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(
        incoming,
        checked_sender,
        to_client.clone(),
        max_bytes,
        exit_seen.clone(),
    );
    let server_input = gate_input(checked, inner.gate.clone());

    // tower-lsp's framed output, split back into messages.
    let (server_output, from_server) = tokio::io::duplex(1 << 20);
    let from_server_sender = to_client.clone();
    tokio::spawn(async move {
        let mut from_server = BufReader::new(from_server);
        let mut delivering = true;
        // Read until tower-lsp ends, even once nothing can be delivered:
        // tower-lsp panics when its output closes under it.
        while let Ok(Some(body)) = read_message(&mut from_server).await {
            delivering = delivering && from_server_sender.send(body).await.is_ok();
        }
    });
    drop(to_client);

    // To the client, never waiting on it for ever.
    let client_out = outgoing.clone();
    let (pump_end_sender, pump_end) = tokio::sync::oneshot::channel::<SessionEnd>();
    let pump = tokio::spawn(async move {
        while let Some(body) = to_client_queue.recv().await {
            let body = advertise_inline_completion(body);
            match client_out.send_timeout(body, slow_client_timeout).await {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        "LSP session dropped: the client took no message for {slow_client_timeout:?}"
                    );
                    let _ = pump_end_sender.send(SessionEnd::ClientTooSlow);
                    return;
                }
                Err(SendTimeoutError::Closed(_)) => {
                    let _ = pump_end_sender.send(SessionEnd::OutputClosed);
                    return;
                }
            }
        }
    });

    let mut serve = Box::pin(
        Server::new(server_input, server_output, socket)
            .concurrency_level(64)
            .serve(service),
    );
    let ended = tokio::select! {
        () = &mut serve => None,
        reason = pump_end => Some(reason.unwrap_or(SessionEnd::OutputClosed)),
        () = signalled(host_signal, project_signal) => {
            let notice = json!({
                "jsonrpc": "2.0",
                "method": "window/showMessage",
                "params": {"type": 2, "message": "AiCockpit: the server is shutting down; this session ends."},
            });
            let _ = outgoing.send_timeout(notice.to_string(), Duration::from_secs(1)).await;
            Some(SessionEnd::ServerShutdown)
        }
    };
    drop(serve);
    // The pump ends once every sender is gone.
    inner.set_direct_output(None);
    reader.abort();
    let end = match ended {
        Some(reason) => {
            pump.abort();
            reason
        }
        None => {
            // What the server sent last (the answer to `shutdown`) still goes out.
            let mut pump = pump;
            if tokio::time::timeout(DRAIN_TIMEOUT, &mut pump)
                .await
                .is_err()
            {
                // Nothing is written for a session that has ended.
                pump.abort();
                tracing::warn!(
                    "LSP session: the last messages were not taken in {DRAIN_TIMEOUT:?}"
                );
            }
            if exit_seen.load(Ordering::SeqCst) {
                SessionEnd::Exit {
                    after_shutdown: inner.shut_down.load(Ordering::SeqCst),
                }
            } else {
                SessionEnd::Closed
            }
        }
    };
    inner.end_session().await;
    tracing::debug!(?end, "LSP session ended");
    end
}

/// Read and check a session's messages: errors go to the client, good
/// messages to the gate. The checked messages the gate has not taken yet
/// hold at most `max_bytes` (one message's limit) between them, so a client
/// that sends large messages while a notification is applied waits in its
/// own socket, not in the server's memory.
fn spawn_reader(
    mut incoming: mpsc::Receiver<String>,
    checked_sender: mpsc::Sender<Checked>,
    replies: mpsc::Sender<String>,
    max_bytes: usize,
    saw_exit: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let budget_bytes = max_bytes.clamp(1, u32::MAX as usize);
    let budget = Arc::new(tokio::sync::Semaphore::new(
        budget_bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    tokio::spawn(async move {
        while let Some(message) = incoming.recv().await {
            let checked_message = if message.len() > max_bytes {
                Err((
                    Value::Null,
                    -32600,
                    format!(
                        "Invalid request: a {}-byte message is over the limit of {max_bytes} bytes",
                        message.len()
                    ),
                ))
            } else {
                check(&message).map(|()| message)
            };
            match checked_message {
                Ok(body) => {
                    let body = normalize_params(body);
                    let is_exit = is_exit_notification(&body);
                    let share =
                        u32::try_from(body.len().clamp(1, budget_bytes)).unwrap_or(u32::MAX);
                    let Ok(share) = budget.clone().acquire_many_owned(share).await else {
                        return;
                    };
                    if checked_sender.send((body, Some(share))).await.is_err() {
                        return;
                    }
                    if is_exit {
                        saw_exit.store(true, Ordering::SeqCst);
                        return; // Nothing is read after `exit`.
                    }
                }
                Err((id, code, message)) => {
                    tracing::warn!("bad LSP input: {message}");
                    if replies
                        .send(error_response(id, code, &message))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    })
}

/// Resolves when either signal is set (never, if neither is given).
async fn signalled(host: Option<watch::Receiver<bool>>, project: Option<watch::Receiver<bool>>) {
    async fn one(signal: Option<watch::Receiver<bool>>) {
        let Some(mut signal) = signal else {
            return std::future::pending().await;
        };
        loop {
            if *signal.borrow_and_update() {
                return;
            }
            if signal.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
    tokio::select! {
        () = one(host) => {}
        () = one(project) => {}
    }
}

async fn write_frame(writer: &mut DuplexStream, body: &str) -> std::io::Result<()> {
    let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
    writer.write_all(frame.as_bytes()).await
}

/// A response (to a request the server sent): an id and no method.
fn is_response(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .is_ok_and(|message| message.get("method").is_none() && message.get("id").is_some())
}

/// Copy whole messages from the server's output, and the replies sent to
/// `replies`, to `output`, never interleaving two messages.
pub async fn pump_output<O>(
    from_server: DuplexStream,
    replies: UnboundedSender<String>,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<String>,
    mut output: O,
) where
    O: AsyncWrite + Unpin,
{
    tokio::spawn(async move {
        let mut from_server = BufReader::new(from_server);
        let mut delivering = true;
        // Read until tower-lsp ends, even when nothing can be delivered:
        // tower-lsp panics when its output closes under it.
        while let Ok(Some(body)) = read_message(&mut from_server).await {
            delivering = delivering && replies.send(body).is_ok();
        }
    });
    while let Some(body) = receiver.recv().await {
        let body = advertise_inline_completion(body);
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        if output.write_all(frame.as_bytes()).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}
/// lsp-types 0.94 has no `inlineCompletionProvider` (LSP 3.18), so the
/// capability is added to our `initialize` result on its way out.
fn advertise_inline_completion(body: String) -> String {
    if !(body.contains("\"capabilities\"") && body.contains("\"aicockpit-lsp\"")) {
        return body;
    }
    let Ok(mut message) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    if message["result"]["serverInfo"]["name"] != "aicockpit-lsp" {
        return body;
    }
    if let Some(capabilities) = message["result"]["capabilities"].as_object_mut() {
        capabilities.insert("inlineCompletionProvider".into(), Value::Bool(true));
    }
    message.to_string()
}

/// One message body; `Ok(None)` at the end of the input; `Err` for a message
/// that was consumed but is not usable.
async fn read_message<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
) -> Result<Option<String>, String> {
    let mut content_length: Option<usize> = None;
    let mut headers_seen = false;
    let mut bad_header = None;
    loop {
        let mut line = Vec::new();
        let read = (&mut *input)
            .take(MAX_HEADER_LINE as u64)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if headers_seen {
                break;
            }
            continue;
        }
        headers_seen = true;
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.trim().parse::<usize>() {
                    Ok(length) => content_length = Some(length),
                    Err(_) => bad_header = Some(format!("bad Content-Length {:?}", value.trim())),
                }
            }
        } else {
            bad_header = Some(format!("not a header: {text:?}"));
        }
    }
    let Some(length) = content_length else {
        return Err(bad_header.unwrap_or_else(|| "a message without Content-Length".into()));
    };
    if length > MAX_BODY_BYTES {
        let skipped = tokio::io::copy(
            &mut (&mut *input).take(length as u64),
            &mut tokio::io::sink(),
        )
        .await;
        return match skipped {
            Ok(n) if n == length as u64 => {
                Err(format!("a {length}-byte message is over the limit"))
            }
            _ => Ok(None),
        };
    }
    let mut body = vec![0; length];
    if input.read_exact(&mut body).await.is_err() {
        return Ok(None);
    }
    String::from_utf8(body)
        .map(Some)
        .map_err(|_| "a message body that is not UTF-8".to_string())
}

/// Whether a body is a JSON-RPC 2.0 request, notification or response; if
/// not, the id to answer with, the error code and a message.
fn check(body: &str) -> Result<(), (Value, i64, String)> {
    let message: Value = serde_json::from_str(body)
        .map_err(|error| (Value::Null, -32700, format!("Parse error: {error}")))?;
    let invalid =
        |id: &Value, why: &str| Err((id.clone(), -32600, format!("Invalid request: {why}")));
    let Some(object) = message.as_object() else {
        return invalid(&Value::Null, "not a JSON object");
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    // tower-lsp's ids are i64 or strings; anything else would end its reader.
    let id_ok = matches!(id, Value::Null | Value::String(_)) || id.as_i64().is_some();
    let answer_id = if id_ok { id.clone() } else { Value::Null };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(&answer_id, "`jsonrpc` must be \"2.0\"");
    }
    if !id_ok {
        return invalid(&Value::Null, "`id` must be a number or a string");
    }
    match object.get("method") {
        // `$/` methods are notifications; tower-lsp would leave a request unanswered.
        Some(Value::String(method)) if method.starts_with("$/") && object.contains_key("id") => {
            Err((id, -32601, format!("Method not found: {method}")))
        }
        Some(Value::String(_)) => Ok(()),
        Some(_) => invalid(&answer_id, "`method` must be a string"),
        None if object.contains_key("id")
            && (object.contains_key("result") || object.contains_key("error")) =>
        {
            Ok(())
        }
        None => invalid(&answer_id, "neither a request nor a response"),
    }
}

/// `"params": null` means no params; so does `{}` or `[]` for our
/// parameterless `aicockpit/status`. tower-lsp accepts only an absent field
/// for methods without params, so the field is removed.
fn normalize_params(body: String) -> String {
    if !body.contains("\"params\"") {
        return body;
    }
    let Ok(mut message) = serde_json::from_str::<Value>(&body) else {
        return body;
    };
    let empty = match message.get("params") {
        Some(Value::Null) => true,
        Some(Value::Object(map)) if map.is_empty() => message["method"] == "aicockpit/status",
        Some(Value::Array(items)) if items.is_empty() => message["method"] == "aicockpit/status",
        _ => false,
    };
    if !empty {
        return body;
    }
    if let Some(object) = message.as_object_mut() {
        object.remove("params");
    }
    message.to_string()
}

fn is_gated_notification(body: &str) -> bool {
    GATED_NOTIFICATIONS
        .iter()
        .any(|method| body.contains(method))
        && serde_json::from_str::<Value>(body).is_ok_and(|message| {
            message.get("id").is_none()
                && message["method"]
                    .as_str()
                    .is_some_and(|method| GATED_NOTIFICATIONS.contains(&method))
        })
}

fn is_exit_notification(body: &str) -> bool {
    body.contains("\"exit\"")
        && serde_json::from_str::<Value>(body)
            .is_ok_and(|message| message["method"] == "exit" && message.get("id").is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn framed(input: &'static [u8]) -> (String, Vec<String>) {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut out = String::new();
        frame_input(input, sender, Gate::default())
            .read_to_string(&mut out)
            .await
            .unwrap();
        let mut replies = Vec::new();
        while let Ok(reply) = receiver.try_recv() {
            replies.push(reply);
        }
        (out, replies)
    }

    #[tokio::test]
    async fn bad_bodies_are_answered_and_reading_goes_on() {
        let (out, replies) = framed(
            b"Content-Length: 2\r\n\r\n\xff\xfeContent-Length: 30\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}",
        )
        .await;
        assert_eq!(
            out,
            "Content-Length: 30\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}"
        );
        assert_eq!(replies.len(), 1);
        assert!(
            replies[0].contains("-32700") && replies[0].contains("not UTF-8"),
            "{replies:?}"
        );
    }

    #[test]
    fn shapes_that_are_not_json_rpc_are_refused_with_the_right_code() {
        assert!(check(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).is_ok());
        assert!(check(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).is_ok());
        assert_eq!(check("{").unwrap_err().1, -32700);
        assert_eq!(check("[]").unwrap_err().1, -32600);
        assert_eq!(
            check(r#"{"jsonrpc":"1.0","id":7,"method":"x"}"#)
                .unwrap_err()
                .0,
            json!(7)
        );
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#)
                .unwrap_err()
                .1,
            -32600
        );
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":3,"method":5}"#)
                .unwrap_err()
                .1,
            -32600
        );
        assert_eq!(check(r#"{"jsonrpc":"2.0","foo":1}"#).unwrap_err().1, -32600);
    }

    #[test]
    fn dollar_requests_are_method_not_found_and_dollar_notifications_pass() {
        let refused = check(r#"{"jsonrpc":"2.0","id":4,"method":"$/noSuchRequest"}"#).unwrap_err();
        assert_eq!((refused.0, refused.1), (json!(4), -32601));
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":"s","method":"$/setTrace","params":{}}"#)
                .unwrap_err()
                .1,
            -32601
        );
        assert!(check(r#"{"jsonrpc":"2.0","method":"$/setTrace","params":{}}"#).is_ok());
        assert!(check(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#).is_ok());
    }

    #[tokio::test]
    async fn a_gated_notification_holds_back_the_next_message_until_applied() {
        let did_close = r#"{"jsonrpc":"2.0","method":"textDocument/didClose","params":{}}"#;
        let request = r#"{"jsonrpc":"2.0","id":1,"method":"textDocument/documentSymbol"}"#;
        let input = format!(
            "Content-Length: {}\r\n\r\n{did_close}Content-Length: {}\r\n\r\n{request}",
            did_close.len(),
            request.len()
        );
        let gate = Gate::default();
        gate.arm(true);
        let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut server_input = BufReader::new(frame_input(
            std::io::Cursor::new(input.into_bytes()),
            sender,
            gate.clone(),
        ));
        assert_eq!(
            read_message(&mut server_input).await.unwrap().unwrap(),
            did_close
        );
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            read_message(&mut server_input),
        )
        .await;
        assert!(
            early.is_err(),
            "the request overtook the unapplied didClose"
        );
        drop(gate.applying());
        assert_eq!(
            read_message(&mut server_input).await.unwrap().unwrap(),
            request
        );
    }

    #[tokio::test]
    async fn the_clients_responses_pass_a_held_notification() {
        let did_open = r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{}}"#;
        let request = r#"{"jsonrpc":"2.0","id":1,"method":"textDocument/documentSymbol"}"#;
        let response = r#"{"jsonrpc":"2.0","id":0,"result":null}"#;
        let input: String = [did_open, request, response]
            .iter()
            .map(|body| format!("Content-Length: {}\r\n\r\n{body}", body.len()))
            .collect();
        let gate = Gate::default();
        gate.arm(true);
        let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut server_input = BufReader::new(frame_input(
            std::io::Cursor::new(input.into_bytes()),
            sender,
            gate.clone(),
        ));
        assert_eq!(
            read_message(&mut server_input).await.unwrap().unwrap(),
            did_open
        );
        // The handler of didOpen may be waiting for this response.
        assert_eq!(
            read_message(&mut server_input).await.unwrap().unwrap(),
            response
        );
        drop(gate.applying());
        assert_eq!(
            read_message(&mut server_input).await.unwrap().unwrap(),
            request
        );
    }

    #[tokio::test]
    async fn checked_messages_not_taken_yet_hold_at_most_one_messages_limit() {
        // Nothing takes the checked messages (a gate held by a notification
        // being applied, its held list full): the reader stops taking input
        // once they add up to the limit, instead of queueing 16 of them.
        let (incoming_sender, incoming) = mpsc::channel::<String>(1);
        let (checked_sender, mut checked) = mpsc::channel::<Checked>(INPUT_QUEUE);
        let (replies, _replies) = mpsc::channel::<String>(4);
        let _reader = spawn_reader(incoming, checked_sender, replies, 1000, Arc::default());
        let message = |n: usize| {
            let padding = "x".repeat(400);
            format!(r#"{{"jsonrpc":"2.0","method":"note/{n}","params":{{"p":"{padding}"}}}}"#)
        };
        let mut sent = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // Two fit in the budget, a third waits in the reader, a fourth in the channel.
        while sent < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {sent} were taken"
            );
            if incoming_sender.try_send(message(sent)).is_ok() {
                sent += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            incoming_sender.try_send(message(4)).is_err(),
            "the reader took input past its budget"
        );
        // Taking one gives its share back, and the input moves again.
        let (first, _share) = checked.recv().await.unwrap();
        assert!(first.contains("note/0"));
        drop(_share);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while incoming_sender.try_send(message(4)).is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the budget was never given back"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn empty_params_are_dropped() {
        let status = normalize_params(
            r#"{"jsonrpc":"2.0","id":1,"method":"aicockpit/status","params":{}}"#.into(),
        );
        assert!(!status.contains("params"), "{status}");
        let null = normalize_params(
            r#"{"jsonrpc":"2.0","id":2,"method":"shutdown","params":null}"#.into(),
        );
        assert!(!null.contains("params"), "{null}");
        let kept = r#"{"jsonrpc":"2.0","id":3,"method":"workspace/symbol","params":{}}"#;
        assert_eq!(normalize_params(kept.into()), kept);
    }

    #[test]
    fn ids_that_tower_lsp_cannot_hold_are_refused() {
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#)
                .unwrap_err()
                .1,
            -32600
        );
        assert_eq!(
            check(r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"x"}"#)
                .unwrap_err()
                .1,
            -32600
        );
        assert!(check(r#"{"jsonrpc":"2.0","id":-7,"method":"x"}"#).is_ok());
    }

    #[tokio::test]
    async fn input_ends_after_exit() {
        let exit = br#"{"jsonrpc":"2.0","method":"exit"}"#;
        let mut input = format!("Content-Length: {}\r\n\r\n", exit.len()).into_bytes();
        input.extend_from_slice(exit);
        input.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
        let (out, _) = framed(Box::leak(input.into_boxed_slice())).await;
        assert!(out.ends_with(r#""method":"exit"}"#), "{out}");
    }

    #[tokio::test]
    async fn missing_lengths_and_truncated_input_do_not_hang() {
        let (out, replies) = framed(b"Bogus header\r\n\r\nContent-Length: 10\r\n\r\n{}").await;
        assert_eq!(out, "");
        assert_eq!(replies.len(), 1, "{replies:?}");
    }
}
