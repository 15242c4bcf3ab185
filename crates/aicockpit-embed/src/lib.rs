//! Text embeddings for semantic search: one [`Embedder`] trait over local
//! models run in-process on the CPU (BERT-style sentence encoders with
//! candle, model2vec-style static models) and the active AI service's
//! embeddings endpoint; installing the default local model; the vector store
//! kept beside the project index; and the fusion of text and dense results.
//!
//! Architecture invariants: every method is blocking and meant for a blocking
//! thread; nothing here downloads anything except [`install::from_hub`], which
//! only `aicockpit model install` calls; tokenizing is always the model's own
//! `tokenizer.json` through the `tokenizers` crate; the vector store is a
//! cache that can always be rebuilt, so a corrupt or foreign one is replaced
//! with a warning, never an error.
//!
//! ```no_run
//! use aicockpit_embed::{load_local, Embedder};
//!
//! let model = load_local(std::path::Path::new("/path/to/all-MiniLM-L6-v2"))?;
//! let vectors = model.embed(&["where do we retry a failed upload"])?;
//! assert_eq!(vectors[0].len(), model.dimension());
//! # Ok::<(), aicockpit_embed::EmbedError>(())
//! ```

mod bert;
pub mod fusion;
pub mod hybrid;
pub mod install;
pub mod provider;
mod service;
mod static_model;
pub mod store;

use std::path::{Path, PathBuf};

pub use bert::{BertEmbedder, MAX_TOKENS};
pub use service::ServiceEmbedder;
pub use static_model::StaticEmbedder;

/// Turns texts into unit-length vectors, one per text, in order.
pub trait Embedder: Send + Sync {
    /// Names the model and its dimension; vectors made by one identity are
    /// never compared with another's.
    fn id(&self) -> &str;
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// What can go wrong embedding, naming the file or service involved.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("no embedding model in {path}: it needs config.json (for a BERT encoder) or model.safetensors and tokenizer.json (for a static model)")]
    NoModel { path: PathBuf },
    #[error("embedding failed: {0}")]
    Compute(String),
    #[error("embedding service: {0}")]
    Service(#[from] aicockpit_ai::AiError),
    #[error("{service}: answered {got} vectors for {expected} texts")]
    Count {
        service: String,
        expected: usize,
        got: usize,
    },
    #[error("{service}: answered vectors of {got} dimensions, {expected} before")]
    Dimension {
        service: String,
        expected: usize,
        got: usize,
    },
    #[error("embedding was cancelled")]
    Cancelled,
    #[error("installing the model: {0}")]
    Install(String),
}

/// Load the local model in `dir`: a BERT encoder when `config.json` says
/// `"model_type": "bert"` (or names a `BertModel`), else a static model.
pub fn load_local(dir: &Path) -> Result<Box<dyn Embedder>, EmbedError> {
    let config = dir.join("config.json");
    let is_bert = match std::fs::read_to_string(&config) {
        Ok(text) => {
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|error| EmbedError::Model {
                    path: config.clone(),
                    message: error.to_string(),
                })?;
            value["model_type"] == "bert"
                || value["architectures"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "BertModel"))
        }
        Err(_) => false,
    };
    if is_bert {
        return Ok(Box::new(BertEmbedder::load(dir)?));
    }
    if dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file() {
        return Ok(Box::new(StaticEmbedder::load(dir)?));
    }
    Err(EmbedError::NoModel {
        path: dir.to_path_buf(),
    })
}

/// `kind:folder-name:dimension:weights-size`: changes when the model does.
fn model_identity(kind: &str, dir: &Path, dimension: usize) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = std::fs::metadata(dir.join("model.safetensors")).map_or(0, |m| m.len());
    format!("{kind}:{name}:{dimension}:{size}")
}

/// The vector scaled to unit length (a zero vector stays zero).
pub fn normalized(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in &mut vector {
            *v /= norm;
        }
    }
    vector
}
