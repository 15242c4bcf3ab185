//! A mock OpenAI-compatible server for tests (feature `test-support`).
//!
//! It speaks the real wire formats over real HTTP on 127.0.0.1: model
//! listing, chat completions (JSON, or SSE when `stream` is true),
//! legacy completions with `suffix`, embeddings (OpenAI's `/embeddings` and
//! Ollama's native `/api/embed`), Azure's deployment paths,
//! and OpenAI-style error bodies. It records every request and can
//! misbehave: answer slowly, split SSE frames across writes, rate-limit
//! with `Retry-After`, fail with 500s or any status and message, send
//! garbage, fail mid-stream, send answers, streamed replies or error
//! messages of any size (written piece by piece, never held whole, and
//! counted), or never answer. It notices when a client drops a request.
//!
//! Like llama.cpp it can serve `/props` (a context size) and `/infill`; and
//! it can stand in for a fill-in-the-middle model ([`MockServer::set_fim`]):
//! completions that carry a suffix are then answered with the longest word
//! of that suffix, so answers follow the suffix as a FIM model's do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the next requests are answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Behavior {
    Normal,
    /// Wait this long before answering (noticing if the client goes away).
    Slow(Duration),
    /// Stream SSE in pieces of this many bytes, each written separately.
    SplitFrames(usize),
    /// Answer 429 with `Retry-After: seconds` this many times, then normally.
    RateLimited {
        retry_after_secs: u64,
        times: u32,
    },
    /// Answer 500 this many times, then normally.
    ServerError {
        times: u32,
    },
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Stream one chunk, then an error event.
    ErrorMidStream,
    /// Accept the request and never answer.
    Hang,
    /// Answer every request 200 with a JSON body of this many bytes (a
    /// `/models` list padded with a long string), written in pieces, with
    /// `Content-Length` when `declared` and otherwise until the connection
    /// closes.
    HugeBody {
        bytes: u64,
        declared: bool,
    },
    /// Stream a chat reply of this many bytes of text, in pieces of 16 KiB
    /// (other requests are answered normally).
    HugeReply(u64),
    /// Answer every request with this status and an OpenAI-style error
    /// carrying this message.
    Refuse {
        status: u16,
        message: String,
    },
    /// Answer every request 400 with an OpenAI-style error whose message is
    /// this many bytes long, until the connection closes; a streamed chat
    /// gets it as an error event after its first piece.
    HugeError(u64),
}

/// A request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/openai/deployments/gpt/chat/completions?api-version=2024-10-21`.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Set when the client closed the connection before the answer was complete.
    pub dropped: bool,
    /// When the whole request had arrived.
    pub received_at: std::time::Instant,
    /// When the last byte of the answer was written.
    pub answered_at: Option<std::time::Instant>,
    /// Bytes of the answer's body written so far, for the huge answers
    /// ([`Behavior::HugeBody`], [`Behavior::HugeReply`], [`Behavior::HugeError`]);
    /// 0 for the others.
    pub written: u64,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct State {
    behavior: Behavior,
    reply: String,
    models: Vec<String>,
    requests: Vec<RecordedRequest>,
    fim: bool,
    context_tokens: Option<u64>,
    /// Embedding requests still answered; `None`: all of them.
    embeddings_left: Option<u32>,
}

/// The running mock server. Stops when dropped.
pub struct MockServer {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// Start on a free port of 127.0.0.1.
    pub async fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock server");
        let port = listener.local_addr().expect("mock address").port();
        let state = Arc::new(Mutex::new(State {
            behavior: Behavior::Normal,
            reply: "Hello from the mock.".to_string(),
            models: vec!["mock-chat".to_string(), "mock-coder".to_string()],
            requests: Vec::new(),
            fim: false,
            context_tokens: None,
            embeddings_left: None,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(socket, shared.clone()));
            }
        });
        MockServer { port, state, task }
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL of an OpenAI-compatible service.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// `http://127.0.0.1:PORT`, the endpoint of an Azure resource or an Ollama server.
    pub fn root_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .behavior = behavior;
    }

    /// The text chat and completion replies carry.
    pub fn set_reply(&self, reply: impl Into<String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).reply = reply.into();
    }

    /// The models `/models` lists (`mock-chat` and `mock-coder` at first).
    pub fn set_models(&self, models: &[&str]) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).models =
            models.iter().map(|m| m.to_string()).collect();
    }

    /// Behave as a fill-in-the-middle model: a completion with a `suffix`
    /// (and `/infill`) is answered with the suffix's longest word; without
    /// FIM, `/infill` is refused with HTTP 501 as llama.cpp refuses it.
    pub fn set_fim(&self, fim: bool) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).fim = fim;
    }

    /// Serve `/props` with this context size (`None`: `/props` is a 404).
    pub fn set_context_tokens(&self, tokens: Option<u64>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .context_tokens = tokens;
    }

    /// Answer only the next `count` embedding requests, then refuse them
    /// with HTTP 400 (`None`: answer all), to fail an embedding run midway.
    pub fn set_embeddings_left(&self, count: Option<u32>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .embeddings_left = count;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .clone()
    }
}

async fn serve_connection(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let Some((method, path, headers, body)) = read_request(&mut socket, &mut buffer).await
        else {
            return;
        };
        let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (index, behavior, reply, models, fim, context_tokens) = {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            state.requests.push(RecordedRequest {
                method: method.clone(),
                path: path.clone(),
                headers,
                body: body_json.clone(),
                dropped: false,
                received_at: std::time::Instant::now(),
                answered_at: None,
                written: 0,
            });
            let behavior = state.behavior.clone();
            // Count down the limited misbehaviours.
            match &mut state.behavior {
                Behavior::RateLimited { times, .. } | Behavior::ServerError { times } => {
                    *times = times.saturating_sub(1);
                    if *times == 0 {
                        state.behavior = Behavior::Normal;
                    }
                }
                _ => {}
            }
            (
                state.requests.len() - 1,
                behavior,
                state.reply.clone(),
                state.models.clone(),
                state.fim,
                state.context_tokens,
            )
        };
        let mark_dropped =
            || state.lock().unwrap_or_else(|p| p.into_inner()).requests[index].dropped = true;
        let count_written = |bytes: usize| {
            state.lock().unwrap_or_else(|p| p.into_inner()).requests[index].written += bytes as u64;
        };
        let route = path.split('?').next().unwrap_or("").to_string();
        let streaming = body_json["stream"] == json!(true);
        match behavior {
            Behavior::Hang => {
                let mut probe = [0u8; 1];
                // Wait until the client gives up.
                let _ = socket.read(&mut probe).await;
                mark_dropped();
                return;
            }
            Behavior::Slow(delay) => {
                let mut probe = [0u8; 1];
                match tokio::time::timeout(delay, socket.read(&mut probe)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        mark_dropped();
                        return;
                    }
                    _ => {}
                }
            }
            Behavior::RateLimited {
                retry_after_secs, ..
            } => {
                let body = json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}});
                let extra = format!("Retry-After: {retry_after_secs}\r\n");
                if write_json(&mut socket, 429, "Too Many Requests", &extra, &body)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Behavior::ServerError { .. } => {
                let body = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}});
                if write_json(&mut socket, 500, "Internal Server Error", "", &body)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Behavior::Garbage => {
                let text = "<html>definitely not json</html>";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                    text.len()
                );
                if socket
                    .write_all(format!("{head}{text}").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Behavior::Refuse { status, message } => {
                let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
                if write_json(&mut socket, status, "Refused", "", &body)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Behavior::HugeBody { bytes, declared } => {
                let result = write_huge_body(&mut socket, bytes, declared, &count_written).await;
                finish_huge(result, &state, index);
                return;
            }
            Behavior::HugeError(bytes) => {
                let result = if streaming && route.ends_with("/chat/completions") {
                    write_stream_with_huge_error(&mut socket, bytes, &count_written).await
                } else {
                    write_huge_error(&mut socket, bytes, &count_written).await
                };
                finish_huge(result, &state, index);
                return;
            }
            Behavior::HugeReply(bytes) if streaming && route.ends_with("/chat/completions") => {
                let result = write_huge_reply(&mut socket, bytes, &count_written).await;
                finish_huge(result, &state, index);
                return;
            }
            _ => {}
        }
        let result = if method == "GET" && route.ends_with("/models") {
            let data: Vec<Value> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model"}))
                .collect();
            let body = json!({"object": "list", "data": data});
            write_json(&mut socket, 200, "OK", "", &body).await
        } else if method == "GET" && route == "/props" {
            match context_tokens {
                Some(n_ctx) => {
                    let body =
                        json!({"default_generation_settings": {"n_ctx": n_ctx}, "total_slots": 1});
                    write_json(&mut socket, 200, "OK", "", &body).await
                }
                None => {
                    let body = json!({"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}});
                    write_json(&mut socket, 404, "Not Found", "", &body).await
                }
            }
        } else if method == "POST" && route == "/infill" {
            if fim {
                let suffix = body_json["input_suffix"].as_str().unwrap_or("");
                let body =
                    json!({"content": longest_word(suffix), "stop": true, "stop_type": "eos"});
                write_json(&mut socket, 200, "OK", "", &body).await
            } else {
                let body = json!({"error": {"code": 501, "message": "Infill is not supported by this model: prefix token is missing. suffix token is missing. middle token is missing. ", "type": "not_supported_error"}});
                write_json(&mut socket, 501, "Not Implemented", "", &body).await
            }
        } else if method == "POST" && route.ends_with("/chat/completions") {
            if streaming {
                let result = write_stream(&mut socket, &body_json, &reply, &behavior).await;
                if result.is_err() {
                    mark_dropped();
                }
                return; // Streams end with the connection.
            }
            let body = json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": body_json["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            });
            write_json(&mut socket, 200, "OK", "", &body).await
        } else if method == "POST" && route.ends_with("/completions") {
            let reply = match body_json["suffix"].as_str() {
                Some(suffix) if fim => longest_word(suffix),
                _ => reply,
            };
            let body = json!({
                "id": "cmpl-mock", "object": "text_completion", "created": 0, "model": body_json["model"],
                "choices": [{"index": 0, "text": reply, "finish_reason": "stop"}],
            });
            write_json(&mut socket, 200, "OK", "", &body).await
        } else if method == "POST"
            && (route.ends_with("/embeddings") || route.ends_with("/api/embed"))
        {
            let ollama = route.ends_with("/api/embed");
            let inputs = body_json["input"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![body_json["input"].clone()]);
            let allowed = {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                match &mut state.embeddings_left {
                    Some(0) => false,
                    Some(left) => {
                        *left -= 1;
                        true
                    }
                    None => true,
                }
            };
            if allowed && ollama {
                // Ollama's native answer: the vectors in input order.
                let embeddings: Vec<Value> = inputs
                    .iter()
                    .map(|input| json!(embedding_of(input.as_str().unwrap_or(""))))
                    .collect();
                write_json(
                    &mut socket,
                    200,
                    "OK",
                    "",
                    &json!({"model": body_json["model"], "embeddings": embeddings}),
                )
                .await
            } else if allowed {
                let data: Vec<Value> = inputs
                    .iter()
                    .enumerate()
                    .map(|(index, input)| {
                        let vector = embedding_of(input.as_str().unwrap_or(""));
                        json!({"object": "embedding", "index": index, "embedding": vector})
                    })
                    .collect();
                write_json(
                    &mut socket,
                    200,
                    "OK",
                    "",
                    &json!({"object": "list", "data": data, "model": body_json["model"]}),
                )
                .await
            } else {
                let body = json!({"error": {"message": "mock: embeddings are switched off", "type": "invalid_request_error"}});
                write_json(&mut socket, 400, "Bad Request", "", &body).await
            }
        } else {
            let body = json!({"error": {"message": format!("Unknown route {method} {route}"), "type": "invalid_request_error"}});
            write_json(&mut socket, 404, "Not Found", "", &body).await
        };
        if result.is_err() {
            mark_dropped();
            return;
        }
        state.lock().unwrap_or_else(|p| p.into_inner()).requests[index].answered_at =
            Some(std::time::Instant::now());
    }
}

/// The longest identifier-like word of `text` (the first of equal length).
fn longest_word(text: &str) -> String {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .fold(
            "",
            |best, word| {
                if word.len() > best.len() {
                    word
                } else {
                    best
                }
            },
        )
        .to_string()
}

async fn read_request(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break position;
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split_whitespace();
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some((method, path, headers, body))
}

async fn write_json(
    socket: &mut TcpStream,
    status: u16,
    reason: &str,
    extra_headers: &str,
    body: &Value,
) -> std::io::Result<()> {
    let text = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n{text}",
        text.len()
    );
    socket.write_all(response.as_bytes()).await
}

async fn write_stream(
    socket: &mut TcpStream,
    request: &Value,
    reply: &str,
    behavior: &Behavior,
) -> std::io::Result<()> {
    let mut events = String::from(": keep-alive\n\n");
    let chunk = |content: Value, finish: Value| {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "delta": content, "finish_reason": finish}],
        })
    };
    events.push_str(&format!(
        "data: {}\n\n",
        chunk(json!({"role": "assistant", "content": ""}), Value::Null)
    ));
    let words: Vec<&str> = reply.split_inclusive(' ').collect();
    for (position, word) in words.iter().enumerate() {
        events.push_str(&format!(
            "data: {}\n\n",
            chunk(json!({"content": word}), Value::Null)
        ));
        if *behavior == Behavior::ErrorMidStream && position == 0 {
            events.push_str(&format!("data: {}\n\n", json!({"error": {"message": "The model crashed mid-stream", "type": "server_error"}})));
            break;
        }
    }
    if *behavior != Behavior::ErrorMidStream {
        events.push_str(&format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
        events.push_str("data: [DONE]\n\n");
    }
    socket.write_all(SSE_HEAD.as_bytes()).await?;
    match behavior {
        Behavior::SplitFrames(size) => {
            for piece in events.as_bytes().chunks((*size).max(1)) {
                socket.write_all(piece).await?;
                socket.flush().await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        _ => socket.write_all(events.as_bytes()).await?,
    }
    socket.shutdown().await
}

/// The pieces the huge answers are written in.
const PIECE: usize = 16 * 1024;

/// Record how a huge answer ended: answered in full, or dropped by the client.
fn finish_huge(result: std::io::Result<()>, state: &Mutex<State>, index: usize) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => state.requests[index].answered_at = Some(std::time::Instant::now()),
        Err(_) => state.requests[index].dropped = true,
    }
}

/// Write `count` bytes of `byte` in pieces, counting each one written.
async fn write_filler(
    socket: &mut TcpStream,
    byte: u8,
    count: u64,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    let piece = [byte; PIECE];
    let mut left = count;
    while left > 0 {
        let size = usize::try_from(left).unwrap_or(PIECE).min(PIECE);
        socket.write_all(&piece[..size]).await?;
        count_written(size);
        left -= size as u64;
    }
    Ok(())
}

/// Write `text`, counting it.
async fn write_counted(
    socket: &mut TcpStream,
    text: &str,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    socket.write_all(text.as_bytes()).await?;
    count_written(text.len());
    Ok(())
}

async fn write_huge_body(
    socket: &mut TcpStream,
    bytes: u64,
    declared: bool,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    // A valid `/models` answer, however long: a client that read it all would accept it.
    let (start, end) = (
        r#"{"object": "list", "data": [{"id": "mock-chat", "object": "model"}], "padding": ""#,
        r#""}"#,
    );
    let padding = bytes.saturating_sub((start.len() + end.len()) as u64);
    let length = if declared {
        format!(
            "Content-Length: {}\r\n",
            start.len() as u64 + padding + end.len() as u64
        )
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await?;
    write_counted(socket, start, count_written).await?;
    write_filler(socket, b'x', padding, count_written).await?;
    write_counted(socket, end, count_written).await?;
    socket.shutdown().await
}

async fn write_huge_error(
    socket: &mut TcpStream,
    bytes: u64,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    let head =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
    socket.write_all(head.as_bytes()).await?;
    write_counted(socket, r#"{"error": {"message": ""#, count_written).await?;
    write_filler(socket, b'x', bytes, count_written).await?;
    write_counted(
        socket,
        r#"", "type": "invalid_request_error"}}"#,
        count_written,
    )
    .await?;
    socket.shutdown().await
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

async fn write_stream_with_huge_error(
    socket: &mut TcpStream,
    bytes: u64,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    socket.write_all(SSE_HEAD.as_bytes()).await?;
    let first =
        json!({"choices": [{"index": 0, "delta": {"content": "Partly "}, "finish_reason": null}]});
    write_counted(socket, &format!("data: {first}\n\n"), count_written).await?;
    write_counted(socket, r#"data: {"error": {"message": ""#, count_written).await?;
    write_filler(socket, b'x', bytes, count_written).await?;
    write_counted(
        socket,
        "\", \"type\": \"server_error\"}}\n\n",
        count_written,
    )
    .await?;
    socket.shutdown().await
}

async fn write_huge_reply(
    socket: &mut TcpStream,
    bytes: u64,
    count_written: &impl Fn(usize),
) -> std::io::Result<()> {
    socket.write_all(SSE_HEAD.as_bytes()).await?;
    let words = "many words ".repeat(PIECE / "many words ".len());
    let event = |content: &str| {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
        format!("data: {chunk}\n\n")
    };
    let full = event(&words);
    let mut left = bytes;
    while left > 0 {
        if left >= words.len() as u64 {
            write_counted(socket, &full, count_written).await?;
            left -= words.len() as u64;
        } else {
            let size = usize::try_from(left).unwrap_or(0);
            write_counted(socket, &event(&words[..size]), count_written).await?;
            left = 0;
        }
    }
    let last = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    write_counted(
        socket,
        &format!("data: {last}\n\ndata: [DONE]\n\n"),
        count_written,
    )
    .await?;
    socket.shutdown().await
}

/// Dimensions of the mock's embeddings.
pub const EMBEDDING_DIMENSION: usize = 64;

/// The mock's embedding of a text: deterministic, a hashed bag of its
/// lower-cased words (FNV-1a of each word picks a dimension), so texts that
/// share words are near and others are not. Not normalised, as services' are not.
pub fn embedding_of(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; EMBEDDING_DIMENSION];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.to_lowercase().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % EMBEDDING_DIMENSION as u64) as usize] += 1.0;
    }
    if vector.iter().all(|v| *v == 0.0) {
        vector[0] = 1.0;
    }
    vector
}
