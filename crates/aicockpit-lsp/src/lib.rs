//! `aicockpit-lsp`: the language server. It speaks LSP over stdio (or any
//! byte stream) and answers from `aicockpit-engine`.
//!
//! Architecture invariant: this is the only crate that knows LSP. Protocol
//! types are converted at the edge ([`to_proto`], [`from_proto`]); position
//! encodings (UTF-16 by default, UTF-8 when the client offers it) are decided
//! here and nowhere else. Custom requests live in [`ext`] and are documented
//! in `docs/lsp.md`.

pub mod ext;
pub mod from_proto;
mod project;
mod server;
pub mod to_proto;
mod transport;
mod watch;

pub use project::SharedEngine;
pub use server::{build_service, serve, ServerOptions, MAX_MESSAGE_BYTES, SLOW_CLIENT_TIMEOUT};
pub use transport::{serve_messages, SessionEnd};
