//! The HTTP client of one service: requests, retries, timeouts, streaming.

use std::time::{Duration, Instant};

use aicockpit_config::{ServiceConfig, ServiceKind};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::endpoint::{self, Operation};
use crate::sse::{SseEvent, SseParser};
use crate::{
    AiError, ApiKey, ChatMessage, ChatReply, ChatRequest, CompletionReply, CompletionRequest,
};

/// The largest JSON answer read (chat, completions, `/infill`, `/models`,
/// `/props`, embeddings); reading stops there, whatever the service sends.
/// The largest legitimate answer is a batch of embeddings:
/// `search.embedding_batch` (64 by default) vectors of up to 4096 numbers
/// (3072 for OpenAI's largest model), each printed in up to ~31 bytes when a
/// service pretty-prints them one per line, as OpenAI does: 64 × 4096 × 31
/// ≈ 8 MB. 32 MiB leaves four times that (a batch of 256 such vectors), and
/// stops a service that streams gigabytes long before memory runs out.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The most of an error answer (a non-2xx status) read: only its message is
/// kept, and that is cut to [`MAX_ERROR_MESSAGE_CHARS`].
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The longest service error message passed on (in characters): room for
/// any real one (they run to a few hundred), while a message of megabytes
/// never reaches an error, a status notification or an editor's popup.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// The longest streamed chat reply (in bytes of text): about a million
/// tokens, more than any model writes in one answer. A reply that goes on
/// past it is a runaway model or a misbehaving service; the stream ends
/// there with [`AiError::TooLarge`], after the text received before it.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// Timeouts and retries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed: waiting for headers, or between two pieces of a body.
    pub idle_timeout: Duration,
    /// Retries after the first attempt, for 429, 5xx, timeouts and refused connections.
    pub max_retries: u32,
    /// The first backoff; it doubles with every retry.
    pub initial_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned.
    pub max_retry_after: Duration,
    /// The longest a streamed reply may take in all.
    pub max_stream: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_retries: 3,
            initial_backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(30),
            max_stream: Duration::from_secs(600),
        }
    }
}

/// The result of testing a service.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServiceTest {
    pub service: String,
    pub ok: bool,
    pub latency_ms: f64,
    /// The models the service lists (empty if it lists none).
    pub models: Vec<String>,
    /// The error, with the service's own message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A client of one AI service. Cheap to clone; reuses connections.
#[derive(Clone, Debug)]
pub struct Client {
    service: ServiceConfig,
    key: Option<ApiKey>,
    http: reqwest::Client,
    options: ClientOptions,
    /// For a local service with no model set: the model picked from its list.
    discovered: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Client {
    pub fn new(
        service: ServiceConfig,
        key: Option<ApiKey>,
        options: ClientOptions,
    ) -> Result<Client, AiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            // Never follow a redirect: it could carry the key header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .read_timeout(options.idle_timeout)
            .build()
            .map_err(|error| AiError::Config {
                service: service.name.clone(),
                message: error.to_string(),
            })?;
        Ok(Client {
            service,
            key,
            http,
            options,
            discovered: std::sync::Arc::default(),
        })
    }

    /// For LM Studio and Ollama with no model configured (or asked for):
    /// pick one from the service's model list, once, so the entries that
    /// are configured out of the box work with whatever model is loaded.
    pub async fn ensure_model(
        &self,
        asked: Option<&String>,
        completion: bool,
    ) -> Result<(), AiError> {
        if self.model(asked, completion).is_ok()
            || !matches!(
                self.service.kind,
                ServiceKind::Lmstudio | ServiceKind::Ollama
            )
        {
            return Ok(());
        }
        let models = self.list_models().await?;
        let Some(picked) = pick_model(&models) else {
            return Err(AiError::Config {
                service: self.name(),
                message:
                    "no model is loaded: load one (LM Studio) or `ollama pull NAME` (Ollama), \
                          or set `chat_model` for this service"
                        .into(),
            });
        };
        tracing::info!(service = %self.name(), model = %picked, "no model set; using the first one the service lists");
        *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(picked);
        Ok(())
    }

    pub fn service(&self) -> &ServiceConfig {
        &self.service
    }

    fn name(&self) -> String {
        self.service.name.clone()
    }

    /// The model a chat (or, with `completion`, a completion) request uses:
    /// the configured one, else the one picked from the service's list.
    pub fn model_name(&self, completion: bool) -> Option<String> {
        self.model(None, completion).ok()
    }

    fn model(&self, asked: Option<&String>, completion: bool) -> Result<String, AiError> {
        let configured = if completion {
            self.service
                .completion_model
                .as_ref()
                .or(self.service.chat_model.as_ref())
        } else {
            self.service.chat_model.as_ref()
        };
        let discovered = self
            .discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match (
            asked.or(configured).or(discovered.as_ref()),
            self.service.kind,
        ) {
            (Some(model), _) => Ok(model.clone()),
            // Azure names the model by its deployment, in the URL.
            (None, ServiceKind::Azure) => Ok(self.service.deployment.clone().unwrap_or_default()),
            (None, _) => Err(AiError::Config {
                service: self.name(),
                message: format!(
                    "no model: set `{}` for this service",
                    if completion {
                        "completion_model"
                    } else {
                        "chat_model"
                    }
                ),
            }),
        }
    }

    /// The models the service lists.
    pub async fn list_models(&self) -> Result<Vec<String>, AiError> {
        let response = self.send(Operation::Models, None).await?;
        let body = self.json_body(response).await?;
        let models = body["data"]
            .as_array()
            .or_else(|| body["models"].as_array())
            .ok_or_else(|| {
                self.protocol(format!("no `data` list in {}", snippet(&body.to_string())))
            })?;
        Ok(models
            .iter()
            .filter_map(|m| {
                m["id"]
                    .as_str()
                    .or_else(|| m["name"].as_str())
                    .map(str::to_string)
            })
            .collect())
    }

    /// A chat completion, waiting for the whole reply.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, AiError> {
        self.ensure_model(request.model.as_ref(), false).await?;
        let body = self.chat_body(request, false)?;
        let response = self.send(Operation::ChatCompletions, Some(body)).await?;
        let body = self.json_body(response).await?;
        let choice = &body["choices"][0];
        let content = choice["message"]["content"].as_str().ok_or_else(|| {
            self.protocol(format!(
                "no choices[0].message.content in {}",
                snippet(&body.to_string())
            ))
        })?;
        Ok(ChatReply {
            content: content.to_string(),
            finish_reason: choice["finish_reason"].as_str().map(str::to_string),
            model: body["model"].as_str().map(str::to_string),
        })
    }

    /// A streamed chat completion: `on_delta` gets each piece as it arrives;
    /// the whole reply is returned at the end.
    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
        mut on_delta: impl FnMut(&str),
    ) -> Result<ChatReply, AiError> {
        self.ensure_model(request.model.as_ref(), false).await?;
        let body = self.chat_body(request, true)?;
        let response = self.send(Operation::ChatCompletions, Some(body)).await?;
        let mut reply = ChatReply {
            content: String::new(),
            finish_reason: None,
            model: None,
        };
        let mut parser = SseParser::new();
        let mut stream = response.bytes_stream();
        let started = Instant::now();
        loop {
            if started.elapsed() > self.options.max_stream {
                return Err(AiError::Timeout {
                    service: self.name(),
                    phase: "streaming the reply (in all)",
                    after: self.options.max_stream,
                });
            }
            let next = tokio::time::timeout(self.options.idle_timeout, stream.next())
                .await
                .map_err(|_| AiError::Timeout {
                    service: self.name(),
                    phase: "streaming the reply",
                    after: self.options.idle_timeout,
                })?;
            let ended = next.is_none();
            let events = match next {
                Some(Ok(bytes)) => parser
                    .feed(&bytes)
                    .map_err(|message| self.stream_error(message))?,
                Some(Err(error)) => {
                    return Err(self.stream_error(format!(
                        "the connection broke before the reply was finished: {}",
                        root_cause(&error)
                    )))
                }
                None => parser.finish(),
            };
            for event in events {
                match event {
                    SseEvent::Done => return Ok(reply),
                    SseEvent::Data(data) => {
                        let chunk: Value = serde_json::from_str(&data).map_err(|_| {
                            self.stream_error(format!("not JSON: {}", snippet(&data)))
                        })?;
                        if let Some(error) = chunk.get("error") {
                            return Err(self.stream_error(error_message(error)));
                        }
                        if reply.model.is_none() {
                            reply.model = chunk["model"].as_str().map(str::to_string);
                        }
                        let choice = &chunk["choices"][0];
                        if let Some(piece) = choice["delta"]["content"].as_str() {
                            if reply.content.len() + piece.len() > MAX_REPLY_BYTES {
                                // Dropping the stream closes the connection: nothing more is read.
                                return Err(self.too_large(
                                    "streamed reply",
                                    MAX_REPLY_BYTES,
                                    "; the reply ends there, unfinished",
                                ));
                            }
                            if !piece.is_empty() {
                                on_delta(piece);
                                reply.content.push_str(piece);
                            }
                        }
                        if let Some(reason) = choice["finish_reason"].as_str() {
                            reply.finish_reason = Some(reason.to_string());
                        }
                    }
                }
            }
            if ended {
                // Some servers close without `[DONE]`; a finish reason still marks a complete reply.
                return match reply.finish_reason {
                    Some(_) => Ok(reply),
                    None => {
                        Err(self
                            .stream_error("the stream ended before the reply was finished".into()))
                    }
                };
            }
        }
    }

    /// A completion from the legacy `/completions` endpoint, with `suffix`
    /// for fill-in-the-middle when given.
    pub async fn complete(&self, request: &CompletionRequest) -> Result<CompletionReply, AiError> {
        self.ensure_model(request.model.as_ref(), true).await?;
        let mut body = json!({
            "model": self.model(request.model.as_ref(), true)?,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens.unwrap_or(128),
            "temperature": request.temperature.unwrap_or(0.2),
            "stream": false,
        });
        if let Some(suffix) = &request.suffix {
            body["suffix"] = json!(suffix);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        let response = self.send(Operation::Completions, Some(body)).await?;
        let body = self.json_body(response).await?;
        let choice = &body["choices"][0];
        let text = choice["text"].as_str().ok_or_else(|| {
            self.protocol(format!(
                "no choices[0].text in {}",
                snippet(&body.to_string())
            ))
        })?;
        Ok(CompletionReply {
            text: text.to_string(),
            finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        })
    }

    /// Native fill-in-the-middle through llama.cpp's `/infill`: the server
    /// applies the model's own FIM tokens. A model without them is refused
    /// by the service (HTTP 501, "Infill is not supported by this model").
    pub async fn infill(&self, request: &CompletionRequest) -> Result<CompletionReply, AiError> {
        let mut body = json!({
            "input_prefix": request.prompt,
            "input_suffix": request.suffix.clone().unwrap_or_default(),
            "n_predict": request.max_tokens.unwrap_or(128),
            "temperature": request.temperature.unwrap_or(0.2),
            "stream": false,
        });
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        let response = self.send(Operation::Infill, Some(body)).await?;
        let body = self.json_body(response).await?;
        let text = body["content"].as_str().ok_or_else(|| {
            self.protocol(format!("no `content` in {}", snippet(&body.to_string())))
        })?;
        let finish_reason = match body["stop_type"].as_str() {
            Some("limit") => Some("length".to_string()),
            Some(_) => Some("stop".to_string()),
            None => body["stopped_eos"]
                .as_bool()
                .or(body["stopped_word"].as_bool())
                .map(|_| "stop".to_string()),
        };
        Ok(CompletionReply {
            text: text.to_string(),
            finish_reason,
        })
    }

    /// The context size (in tokens) the service serves, when it says:
    /// llama.cpp's `/props` (`default_generation_settings.n_ctx`). `Ok(None)`
    /// for other kinds and for a llama.cpp server that does not tell; an
    /// error only when the service could not be asked (worth asking again).
    pub async fn served_context_tokens(&self) -> Result<Option<usize>, AiError> {
        if self.service.kind != ServiceKind::Llamacpp {
            return Ok(None);
        }
        let response = match self.send(Operation::Props, None).await {
            Ok(response) => response,
            Err(error) if error.is_transient() => return Err(error),
            Err(_) => return Ok(None),
        };
        let Ok(body) = self.json_body(response).await else {
            return Ok(None);
        };
        Ok(body["default_generation_settings"]["n_ctx"]
            .as_u64()
            .or(body["n_ctx"].as_u64())
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok()))
    }

    /// Embeddings of several texts, in order.
    pub async fn embed(
        &self,
        model: Option<&str>,
        inputs: &[String],
    ) -> Result<Vec<Vec<f32>>, AiError> {
        let model = match model {
            Some(model) => model.to_string(),
            None => self.model(None, false)?,
        };
        let response = self
            .send(
                Operation::Embeddings,
                Some(json!({"model": model, "input": inputs})),
            )
            .await?;
        let body = self
            .json_body(response)
            .await
            .map_err(|error| match error {
                AiError::TooLarge { .. } => self.too_large(
                    "answer",
                    MAX_ANSWER_BYTES,
                    "; lower `search.embedding_batch` so that a batch's vectors fit",
                ),
                error => error,
            })?;
        if self.service().kind == ServiceKind::Ollama {
            // `/api/embed`: `{"embeddings": [[…], …]}` in input order.
            let lists = body["embeddings"]
                .as_array()
                .ok_or_else(|| self.protocol("no `embeddings` list".into()))?;
            return Ok(lists
                .iter()
                .map(|list| {
                    list.as_array()
                        .map(|v| {
                            v.iter()
                                .filter_map(Value::as_f64)
                                .map(|v| v as f32)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect());
        }
        let data = body["data"]
            .as_array()
            .ok_or_else(|| self.protocol("no `data` list".into()))?;
        let mut out = vec![Vec::new(); inputs.len()];
        for (position, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().map_or(position, |i| i as usize);
            let vector = item["embedding"]
                .as_array()
                .ok_or_else(|| self.protocol("an item without `embedding`".into()))?;
            if let Some(slot) = out.get_mut(index) {
                *slot = vector
                    .iter()
                    .filter_map(Value::as_f64)
                    .map(|v| v as f32)
                    .collect();
            }
        }
        Ok(out)
    }

    /// Test the service: list its models, or, where it lists none, send a
    /// one-token chat request; report latency and the service's own error.
    pub async fn test(&self) -> ServiceTest {
        let started = Instant::now();
        let result = match self.list_models().await {
            Ok(models) => Ok(models),
            Err(AiError::Status { status: 404, .. }) => {
                let request = ChatRequest {
                    messages: vec![ChatMessage::new(crate::Role::User, "Say OK.")],
                    max_tokens: Some(1),
                    ..ChatRequest::default()
                };
                self.chat(&request).await.map(|_| Vec::new())
            }
            Err(error) => Err(error),
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(models) => ServiceTest {
                service: self.name(),
                ok: true,
                latency_ms,
                models,
                error: None,
            },
            Err(error) => ServiceTest {
                service: self.name(),
                ok: false,
                latency_ms,
                models: Vec::new(),
                error: Some(error.to_string()),
            },
        }
    }

    fn chat_body(&self, request: &ChatRequest, stream: bool) -> Result<Value, AiError> {
        let mut body = json!({
            "model": self.model(request.model.as_ref(), false)?,
            "messages": request.messages,
            "stream": stream,
        });
        if let Some(max_tokens) = request.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        Ok(body)
    }

    /// Send with retries; returns a response with a success status.
    async fn send(
        &self,
        operation: Operation,
        body: Option<Value>,
    ) -> Result<reqwest::Response, AiError> {
        let url = endpoint::url(&self.service, operation);
        let mut attempt = 0;
        loop {
            let mut request = match &body {
                Some(body) => self.http.post(&url).json(body),
                None => self.http.get(&url),
            };
            if let Some(key) = &self.key {
                let (name, value) = endpoint::auth_header(self.service.kind, key.expose());
                request = request.header(name, value);
            }
            let sent = tokio::time::timeout(self.options.idle_timeout, request.send()).await;
            let (error, retry_after) = match sent {
                Err(_) => (
                    AiError::Timeout {
                        service: self.name(),
                        phase: "waiting for the response",
                        after: self.options.idle_timeout,
                    },
                    None,
                ),
                Ok(Err(error)) if error.is_connect() => (
                    AiError::Connect {
                        service: self.name(),
                        url: url.clone(),
                        message: root_cause(&error),
                    },
                    None,
                ),
                Ok(Err(error)) if error.is_timeout() => (
                    AiError::Timeout {
                        service: self.name(),
                        phase: "waiting for the response",
                        after: self.options.idle_timeout,
                    },
                    None,
                ),
                Ok(Err(error)) => {
                    return Err(AiError::Protocol {
                        service: self.name(),
                        message: root_cause(&error),
                    })
                }
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .map(|seconds| {
                            Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)
                        });
                    // Only the start of an error answer is read: its message is all we keep.
                    let text = tokio::time::timeout(
                        self.options.idle_timeout,
                        read_limited(response, MAX_ERROR_BODY_BYTES),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|body| String::from_utf8_lossy(&body.bytes).into_owned())
                    .unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .map(|body| error_message(body.get("error").unwrap_or(&body)))
                        .unwrap_or_else(|| snippet(&text));
                    (
                        AiError::Status {
                            service: self.name(),
                            status,
                            message,
                        },
                        retry_after,
                    )
                }
            };
            if !error.is_transient() || attempt >= self.options.max_retries {
                return Err(error);
            }
            let backoff = self.options.initial_backoff * 2u32.saturating_pow(attempt);
            let wait = match retry_after {
                Some(wait) if wait > self.options.max_retry_after => return Err(error),
                Some(wait) => wait,
                None => backoff,
            };
            tracing::info!(service = %self.service.name, %error, ?wait, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The JSON of a successful answer, read up to [`MAX_ANSWER_BYTES`]: a
    /// longer one is refused as soon as it says so (`Content-Length`) or
    /// goes past the limit, without reading the rest.
    async fn json_body(&self, response: reqwest::Response) -> Result<Value, AiError> {
        let too_large = || self.too_large("answer", MAX_ANSWER_BYTES, "");
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let body = tokio::time::timeout(
            self.options.idle_timeout,
            read_limited(response, MAX_ANSWER_BYTES),
        )
        .await
        .map_err(|_| AiError::Timeout {
            service: self.name(),
            phase: "reading the response",
            after: self.options.idle_timeout,
        })?
        .map_err(|error| self.protocol(root_cause(&error)))?;
        if body.over {
            return Err(too_large());
        }
        let text = String::from_utf8_lossy(&body.bytes);
        serde_json::from_str(&text)
            .map_err(|_| self.protocol(format!("not JSON: {}", snippet(&text))))
    }

    fn too_large(&self, what: &'static str, limit: usize, hint: &'static str) -> AiError {
        AiError::TooLarge {
            service: self.name(),
            what,
            limit_mib: limit / (1024 * 1024),
            hint,
        }
    }

    fn protocol(&self, message: String) -> AiError {
        AiError::Protocol {
            service: self.name(),
            message,
        }
    }

    fn stream_error(&self, message: String) -> AiError {
        AiError::Stream {
            service: self.name(),
            message,
        }
    }
}

/// A body read up to a limit.
struct LimitedBody {
    /// The body, or its first `limit` bytes.
    bytes: Vec<u8>,
    /// Whether the body went on past the limit (the rest was not read).
    over: bool,
}

/// Read a body piece by piece, stopping at `limit` bytes: what is past it is
/// never read (dropping the response closes its connection). The body is
/// read as sent: the client asks for no compression, so nothing expands.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<LimitedBody, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(piece) = response.chunk().await? {
        let room = limit - bytes.len();
        if piece.len() > room {
            bytes.extend_from_slice(&piece[..room]);
            return Ok(LimitedBody { bytes, over: true });
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(LimitedBody { bytes, over: false })
}

/// The message of an error object: `{"message": …}` (OpenAI, Azure), a
/// string (Ollama), or the JSON itself; at most [`MAX_ERROR_MESSAGE_CHARS`].
fn error_message(error: &Value) -> String {
    error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .map(|message| cut(message, MAX_ERROR_MESSAGE_CHARS))
        .unwrap_or_else(|| snippet(&error.to_string()))
}

/// The model to use when none is set: a code model if the service lists
/// one, never an embedding model.
fn pick_model(models: &[String]) -> Option<String> {
    let usable: Vec<&String> = models
        .iter()
        .filter(|m| !m.to_ascii_lowercase().contains("embed"))
        .collect();
    usable
        .iter()
        .find(|m| m.to_ascii_lowercase().contains("code"))
        .or_else(|| usable.first())
        .map(|m| m.to_string())
}

/// The start of a text, for an error message.
fn snippet(text: &str) -> String {
    cut(text, 300)
}

/// `text` trimmed and cut to `chars` characters, with `…` where it was cut.
fn cut(text: &str, chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

pub(crate) fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
