//! The tantivy schema: one document per file, per symbol and per chunk.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, STORED, STRING,
};

use tantivy::TantivyDocument;

use crate::tokenizer::CODE_TOKENIZER;

/// Bumped whenever the schema or the meaning of stored data changes; an index
/// with another version is rebuilt.
pub const FORMAT_VERSION: u32 = 6;

pub const KIND_FILE: &str = "file";
/// Stored in `ordinal` when a chunk belongs to no symbol.
pub const NO_SYMBOL: u64 = u64::MAX;

#[derive(Clone, Copy)]
pub struct Fields {
    /// `file`, on file docs only (symbol and chunk docs are told apart by
    /// their fields: a term per doc for nothing to search by is not free).
    pub doc_kind: Field,
    /// Relative path of the file the doc belongs to (all kinds). Folder
    /// filters are ranges over its terms.
    pub path: Field,
    /// Relative path, on file docs only (to replace a file doc alone).
    pub file_path: Field,
    /// The file's record as JSON (file docs).
    pub record: Field,
    /// Symbol name (symbol docs).
    pub name: Field,
    /// The symbol name exactly as written, for definition lookups (symbol docs).
    pub name_exact: Field,
    /// The name of the symbol a chunk belongs to (chunk docs). Symbol and
    /// chunk docs use disjoint text fields, so a plain disjunction of terms
    /// finds both kinds and tantivy can prune it with block-max WAND.
    pub chunk_name: Field,
    /// Symbol kind name (symbol docs).
    pub kind: Field,
    /// The first line of a symbol that has chunks of its own (a field's or
    /// a constant's line is searched in its enclosing chunk).
    pub signature: Field,
    /// The first paragraph of the symbol's doc comment (the whole comment
    /// is in the chunk that holds the definition).
    pub doc: Field,
    /// Chunk text (chunk docs), indexed only: snippets re-read the file
    /// (or the editor's text) by the stored line range, so the index does
    /// not hold a second copy of every file.
    pub content: Field,
    /// Index of the symbol in the file record (symbol and chunk docs).
    pub ordinal: Field,
    /// First and last line (zero-based, inclusive) of a chunk (chunk docs only).
    pub start_line: Field,
    pub end_line: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    // Term frequencies but no positions: search uses term queries only.
    let code = || {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqs);
        TextOptions::default().set_indexing_options(indexing)
    };
    let fields = Fields {
        doc_kind: builder.add_text_field("doc_kind", STRING),
        path: builder.add_text_field("path", STRING | STORED),
        file_path: builder.add_text_field("file_path", STRING),
        record: builder.add_text_field("record", STORED),
        name: builder.add_text_field("name", code()),
        chunk_name: builder.add_text_field("chunk_name", code()),
        name_exact: builder.add_text_field("name_exact", STRING),
        kind: builder.add_text_field("kind", STRING),
        signature: builder.add_text_field("signature", code()),
        doc: builder.add_text_field("doc", code()),
        content: builder.add_text_field("content", code()),
        // Read back from the doc store with the path; nothing filters or sorts on it.
        ordinal: builder.add_u64_field("ordinal", STORED),
        start_line: builder.add_u64_field("start_line", STORED),
        end_line: builder.add_u64_field("end_line", STORED),
    };
    (builder.build(), fields)
}

/// The doc of a file: its record as JSON, read back when the index opens.
pub fn file_doc(
    fields: &Fields,
    rel: &str,
    record: &crate::FileRecord,
) -> Result<TantivyDocument, serde_json::Error> {
    let mut doc = TantivyDocument::default();
    doc.add_text(fields.doc_kind, KIND_FILE);
    doc.add_text(fields.path, rel);
    doc.add_text(fields.file_path, rel);
    doc.add_text(fields.record, serde_json::to_string(record)?);
    Ok(doc)
}
