//! Syntax: the language table, the embedded tree-sitter queries, and the pure
//! functions that turn source text into symbols and retrieval chunks.
//!
//! Architecture invariant: this crate does no I/O and never panics on user
//! text. Broken code is data: [`analyze`] returns whatever it could extract
//! plus a list of [`SyntaxNote`]s (syntax errors, a parse that timed out).
//!
//! ```
//! use aicockpit_syntax::{analyze, LanguageId, SymbolKind};
//!
//! let file = analyze(LanguageId::Rust, "/// Adds.\nfn add(a: i32) -> i32 { a }\n");
//! let add = &file.symbols[0];
//! assert_eq!(&*add.name, "add");
//! assert_eq!(add.kind, SymbolKind::Function);
//! assert_eq!(add.doc.as_deref(), Some("Adds."));
//! assert_eq!(&*add.signature, "fn add(a: i32) -> i32 { a }");
//! ```

mod chunks;
mod language;
mod symbols;
mod text;

pub use chunks::{Chunk, CHUNK_MAX_LINES};
pub use language::LanguageId;
pub use symbols::{
    analyze, analyze_edit, parse_only, symbols, FileSyntax, Symbol, SymbolKind, SyntaxNote,
    SyntaxTree,
};
pub use text::{is_identifier_byte, word_at, LineIndex, Pos, Span};
