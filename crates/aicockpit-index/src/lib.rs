//! The persistent project index: a `.gitignore`-aware walk, content hashes,
//! symbols and chunks from `aicockpit-syntax`, and a tantivy index of symbol
//! docs and chunk docs with a code tokenizer.
//!
//! Architecture invariants: every method is blocking and meant for a blocking
//! thread (parsing runs on the index's own bounded pool, never on an async
//! executor); the index on disk is a cache that can always be rebuilt, so a
//! corrupt or outdated one is replaced with a warning, never an error.
//!
//! ```no_run
//! use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery};
//!
//! let options = IndexOptions::new("/path/to/project", "/tmp/aicockpit-cache");
//! let (index, _opened) = ProjectIndex::open(options)?;
//! let stats = index.refresh(&|_progress| {})?;
//! println!("{} files, {} symbols", stats.files, stats.symbols);
//! for hit in index.search(&SearchQuery::new("http request"))? {
//!     println!("{}:{} {}", hit.path, hit.span.start.line + 1, hit.snippet);
//! }
//! # Ok::<(), aicockpit_index::IndexError>(())
//! ```

mod directory;
mod fuzzy;
mod ignore_rules;
mod listing;
mod overlay;
mod project;
mod schema;
mod search;
mod source;
mod tokenizer;
mod walk;

use std::path::PathBuf;

pub use fuzzy::SymbolHit;
pub use project::{
    index_dir, FileRecord, IndexOptions, IndexStats, OpenReport, Progress, ProjectIndex,
    RefreshStats,
};
pub use search::{SearchHit, SearchQuery};
pub use source::read_project_file;
pub use tokenizer::{tokenize, CodeTokenizer, CODE_TOKENIZER};
pub use walk::{
    default_skip_folders, is_indexable, is_indexable_skipping, is_test_path, is_walked_folder,
    relative, walk, walk_folders, walk_skipping, SkipReason, WalkEntry,
};

/// What can go wrong with an index, naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("project root {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("project root {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("index folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the index in {path} is in use by another AiCockpit process (its writer lock is held)"
    )]
    Locked { path: PathBuf },
    #[error("the index in {path} was opened read-only")]
    ReadOnly { path: PathBuf },
    #[error("index {path}: {source}")]
    Tantivy {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
}
