//! AI services: one [`Client`] per configured service, speaking the
//! OpenAI-compatible wire formats of OpenAI, Azure OpenAI, LM Studio, Ollama
//! and any custom base URL: chat completions (plain and streamed over SSE),
//! legacy completions with `suffix` for fill-in-the-middle, embeddings and
//! model listing.
//!
//! Architecture invariants: provider differences live in [`endpoint`] (URLs
//! and auth headers) and nowhere else; API keys are held in [`ApiKey`], whose
//! `Debug` and `Display` never show the key, and they are never logged or
//! returned; every request has a connect timeout and an idle timeout, retries
//! 429 and 5xx with backoff honouring `Retry-After`, and is cancelled by
//! dropping its future (the HTTP connection is dropped with it); every answer
//! is read up to a size limit ([`MAX_ANSWER_BYTES`], [`MAX_REPLY_BYTES`],
//! [`MAX_ERROR_BODY_BYTES`]) and no further, so a service cannot fill memory.
//! Errors name the service, the HTTP status and the service's own message
//! (cut to [`MAX_ERROR_MESSAGE_CHARS`]).
//!
//! With the `test-support` feature, [`mock::MockServer`] is an in-process
//! OpenAI-compatible server for tests that records requests and misbehaves
//! on demand.

mod client;
pub mod download;
pub mod endpoint;
mod keys;
#[cfg(feature = "test-support")]
pub mod mock;
pub mod sse;

use std::time::Duration;

pub use client::{
    Client, ClientOptions, ServiceTest, MAX_ANSWER_BYTES, MAX_ERROR_BODY_BYTES,
    MAX_ERROR_MESSAGE_CHARS, MAX_REPLY_BYTES,
};
pub use keys::{
    client_for, key_file, remove_keys, require_key, resolve_key, store_key, ApiKey, KeySource,
};

/// Who said a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// A chat request; `model` defaults to the service's chat model.
#[derive(Clone, Debug, Default)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
}

/// A finished chat reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
}

/// A fill-in-the-middle or plain completion request (the legacy `/completions`
/// endpoint); `model` defaults to the service's completion model.
#[derive(Clone, Debug, Default)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: String,
    /// Text after the cursor, for models that take a `suffix`.
    pub suffix: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
}

/// A finished completion.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionReply {
    pub text: String,
    pub finish_reason: Option<String>,
}

/// What went wrong talking to a service. Every variant names the service.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AiError {
    #[error("{service}: invalid configuration: {message}")]
    Config { service: String, message: String },
    #[error("{service}: no API key: ${variable} is not set; set it (`export {variable}=…`) in the environment AiCockpit, or the editor that starts its language server, runs in")]
    MissingKey { service: String, variable: String },
    #[error("{service}: cannot connect to {url}: {message}. Nothing answers there: start the service (LM Studio: its local server; Ollama: `ollama serve`) or point `{service}` at the right URL in the config file, then check with `aicockpit ai test {service}`")]
    Connect {
        service: String,
        url: String,
        message: String,
    },
    #[error("{service}: no answer within {after:?} ({phase})")]
    Timeout {
        service: String,
        phase: &'static str,
        after: Duration,
    },
    #[error("{service}: HTTP {status}: {message}")]
    Status {
        service: String,
        status: u16,
        message: String,
    },
    /// A download (`aicockpit model install`) that failed or was refused:
    /// not HTTPS, a redirect elsewhere, too large, too slow, an HTTP error.
    #[error("{service}: cannot download {url}: {message}")]
    Download {
        service: String,
        url: String,
        message: String,
    },
    #[error("{service}: unexpected answer: {message}")]
    Protocol { service: String, message: String },
    #[error("{service}: the stream failed: {message}")]
    Stream { service: String, message: String },
    /// An answer past a size limit: reading stopped there, the rest was never read.
    #[error("{service}: the AI service's {what} is over {limit_mib} MiB, more than AiCockpit accepts, so it stopped reading{hint}")]
    TooLarge {
        service: String,
        /// "answer" or "streamed reply".
        what: &'static str,
        limit_mib: usize,
        /// What to do about it, if anything: `; …` or empty.
        hint: &'static str,
    },
}

impl AiError {
    /// Whether a retry may help (rate limits, server errors, timeouts, connection resets).
    pub fn is_transient(&self) -> bool {
        match self {
            AiError::Status { status, .. } => *status == 429 || *status >= 500,
            AiError::Timeout { .. } | AiError::Connect { .. } => true,
            _ => false,
        }
    }
}
