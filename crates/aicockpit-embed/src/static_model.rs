//! model2vec-style static models: a text's vector is the mean of its tokens'
//! rows in one embedding matrix, L2-normalised. Hundreds of times faster than
//! an encoder, and somewhat less accurate.
//!
//! The folder holds `tokenizer.json` and `model.safetensors` with the matrix
//! (`embeddings`, or its only two-dimensional tensor), and optionally
//! `mapping` (token id to matrix row) and `weights` (one factor per token).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tokenizers::Tokenizer;

use crate::{model_identity, EmbedError, Embedder};

/// Tokens past this are not read.
const MAX_TOKENS: usize = 512;

/// A static embedding model.
pub struct StaticEmbedder {
    id: String,
    tokenizer: Tokenizer,
    matrix: Vec<f32>,
    rows: usize,
    dimension: usize,
    mapping: Option<Vec<usize>>,
    weights: Option<Vec<f32>>,
}

impl StaticEmbedder {
    /// Load the model in `dir`. Errors name the file and what is wrong with it.
    pub fn load(dir: &Path) -> Result<StaticEmbedder, EmbedError> {
        let tokenizer = crate::bert::load_tokenizer(dir, MAX_TOKENS, true)?;
        let path = dir.join("model.safetensors");
        let bad = |message: String| EmbedError::Model {
            path: path.clone(),
            message,
        };
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|error| bad(error.to_string()))?;
        let matrix_name = if tensors.contains_key("embeddings") {
            "embeddings".to_string()
        } else {
            let mut matrices: Vec<&String> = tensors
                .iter()
                .filter(|(_, t)| t.rank() == 2)
                .map(|(name, _)| name)
                .collect();
            matrices.sort();
            match matrices.as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(bad(
                        "no `embeddings` tensor and not exactly one matrix".into()
                    ))
                }
            }
        };
        let matrix = tensors
            .remove(&matrix_name)
            .ok_or_else(|| bad(format!("no tensor {matrix_name}")))?;
        let (rows, dimension) = matrix.dims2().map_err(|e| bad(e.to_string()))?;
        let matrix = matrix
            .to_dtype(DType::F32)
            .and_then(|m| m.flatten_all())
            .and_then(|m| m.to_vec1::<f32>())
            .map_err(|e| bad(e.to_string()))?;
        let vector = |tensor: Tensor| -> Result<Vec<f32>, EmbedError> {
            tensor
                .to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| bad(e.to_string()))
        };
        let mapping = match tensors.remove("mapping") {
            Some(tensor) => {
                let mapping: Vec<usize> = vector(tensor)?.into_iter().map(|v| v as usize).collect();
                if let Some(row) = mapping.iter().find(|&&row| row >= rows) {
                    return Err(bad(format!(
                        "mapping names row {row}, the matrix has {rows}"
                    )));
                }
                Some(mapping)
            }
            None => None,
        };
        let weights = tensors.remove("weights").map(vector).transpose()?;
        Ok(StaticEmbedder {
            id: model_identity("static", dir, dimension),
            tokenizer,
            matrix,
            rows,
            dimension,
            mapping,
            weights,
        })
    }

    fn embed_one(&self, ids: &[u32]) -> Vec<f32> {
        let mut sum = vec![0f32; self.dimension];
        let mut count = 0usize;
        for &id in ids {
            let id = id as usize;
            let row = match &self.mapping {
                Some(mapping) => match mapping.get(id) {
                    Some(&row) => row,
                    None => continue,
                },
                None => id,
            };
            if row >= self.rows {
                continue;
            }
            let factor = self
                .weights
                .as_ref()
                .map_or(1.0, |w| w.get(id).copied().unwrap_or(1.0));
            let values = &self.matrix[row * self.dimension..(row + 1) * self.dimension];
            for (s, v) in sum.iter_mut().zip(values) {
                *s += factor * v;
            }
            count += 1;
        }
        if count > 0 {
            for s in &mut sum {
                *s /= count as f32;
            }
        }
        crate::normalized(sum)
    }
}

impl Embedder for StaticEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), false)
            .map_err(|error| EmbedError::Compute(format!("tokenizing: {error}")))?;
        Ok(encodings
            .iter()
            .map(|encoding| self.embed_one(encoding.get_ids()))
            .collect())
    }
}
