//! LSP → engine conversions.

use std::path::PathBuf;

use aicockpit_engine::{TextChange, TextPosition};
use tower_lsp::jsonrpc;
use tower_lsp::lsp_types::{Position, TextDocumentContentChangeEvent, Url};

/// The file path of a `file://` URI, or an `InvalidParams` error naming it.
pub fn path(uri: &Url) -> jsonrpc::Result<PathBuf> {
    uri.to_file_path()
        .map_err(|()| jsonrpc::Error::invalid_params(format!("not a file URI: {uri}")))
}

pub fn position(position: Position) -> TextPosition {
    TextPosition {
        line: position.line,
        col: position.character,
    }
}

pub fn change(event: TextDocumentContentChangeEvent) -> TextChange {
    TextChange {
        range: event
            .range
            .map(|range| (position(range.start), position(range.end))),
        text: event.text,
    }
}
