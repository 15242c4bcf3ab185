//! BERT-style sentence encoders (all-MiniLM-L6-v2 and its kin) run on the
//! CPU with candle: mean pooling over the tokens, L2-normalised.
//!
//! Speed comes from never computing padding: a batch is one ragged matrix of
//! all its texts' tokens (`[tokens, hidden]`), so every dense layer is one
//! large matrix product, and only attention runs per text, over that text's
//! own tokens. Batches are bounded by their token count, not their text count.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::{model_identity, EmbedError, Embedder};

/// Tokens past this are cut: what the model was trained for (its shipped
/// `tokenizer.json` says 128 and pads to 128; both are overridden).
pub const MAX_TOKENS: usize = 256;
/// Tokens in one ragged batch: large enough for efficient matrix products,
/// small enough that a batch's activations stay in cache-friendly sizes.
const BATCH_TOKENS: usize = 2048;

struct Layer {
    qkv_weight: Tensor,
    qkv_bias: Tensor,
    output_weight: Tensor,
    output_bias: Tensor,
    attention_norm: (Tensor, Tensor),
    intermediate_weight: Tensor,
    intermediate_bias: Tensor,
    ffn_weight: Tensor,
    ffn_bias: Tensor,
    output_norm: (Tensor, Tensor),
}

/// A BERT encoder loaded from a folder with `config.json`, `tokenizer.json`
/// and `model.safetensors`.
pub struct BertEmbedder {
    id: String,
    tokenizer: Tokenizer,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: (Tensor, Tensor),
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    eps: f32,
    max_tokens: usize,
}

#[derive(serde::Deserialize)]
struct BertConfig {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default)]
    hidden_act: Option<String>,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_positions() -> usize {
    512
}

impl BertEmbedder {
    /// Load the model in `dir`. Errors name the file and what is wrong with it.
    pub fn load(dir: &Path) -> Result<BertEmbedder, EmbedError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| EmbedError::Io {
            path: config_path.clone(),
            source,
        })?;
        let config: BertConfig =
            serde_json::from_str(&text).map_err(|error| EmbedError::Model {
                path: config_path.clone(),
                message: error.to_string(),
            })?;
        if let Some(act) = config.hidden_act.as_deref() {
            if act != "gelu" {
                return Err(EmbedError::Model {
                    path: config_path,
                    message: format!("hidden_act {act:?} is not supported (only \"gelu\")"),
                });
            }
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(EmbedError::Model {
                path: config_path,
                message: "hidden_size is not a multiple of num_attention_heads".into(),
            });
        }
        let max_tokens = MAX_TOKENS.min(config.max_position_embeddings);
        let tokenizer = load_tokenizer(dir, max_tokens, true)?;
        let weights_path = dir.join("model.safetensors");
        let mut weights = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|error| compute_at(&weights_path, error))?;
        let prefix = if weights.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let mut take = |name: &str| -> Result<Tensor, EmbedError> {
            let key = format!("{prefix}{name}");
            let tensor = weights.remove(&key).ok_or_else(|| EmbedError::Model {
                path: weights_path.clone(),
                message: format!("no tensor {key}"),
            })?;
            tensor
                .to_dtype(DType::F32)
                .map_err(|error| compute_at(&weights_path, error))
        };
        let at = |error| compute_at(&weights_path, error);
        // Dense weights are stored `[out, in]`; products want `[in, out]`.
        let transposed = |tensor: Tensor| tensor.t().and_then(|t| t.contiguous());
        let word = take("embeddings.word_embeddings.weight")?;
        let position = take("embeddings.position_embeddings.weight")?;
        let token_type = take("embeddings.token_type_embeddings.weight")?
            .get(0)
            .map_err(at)?;
        let embedding_norm = (
            take("embeddings.LayerNorm.weight")?,
            take("embeddings.LayerNorm.bias")?,
        );
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{n}.");
            let mut t = |name: &str| take(&format!("{p}{name}"));
            let qkv_weight = Tensor::cat(
                &[
                    t("attention.self.query.weight")?,
                    t("attention.self.key.weight")?,
                    t("attention.self.value.weight")?,
                ],
                0,
            )
            .and_then(transposed)
            .map_err(at)?;
            let qkv_bias = Tensor::cat(
                &[
                    t("attention.self.query.bias")?,
                    t("attention.self.key.bias")?,
                    t("attention.self.value.bias")?,
                ],
                0,
            )
            .map_err(at)?;
            layers.push(Layer {
                qkv_weight,
                qkv_bias,
                output_weight: transposed(t("attention.output.dense.weight")?).map_err(at)?,
                output_bias: t("attention.output.dense.bias")?,
                attention_norm: (
                    t("attention.output.LayerNorm.weight")?,
                    t("attention.output.LayerNorm.bias")?,
                ),
                intermediate_weight: transposed(t("intermediate.dense.weight")?).map_err(at)?,
                intermediate_bias: t("intermediate.dense.bias")?,
                ffn_weight: transposed(t("output.dense.weight")?).map_err(at)?,
                ffn_bias: t("output.dense.bias")?,
                output_norm: (t("output.LayerNorm.weight")?, t("output.LayerNorm.bias")?),
            });
        }
        Ok(BertEmbedder {
            id: model_identity("bert", dir, config.hidden_size),
            tokenizer,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            heads: config.num_attention_heads,
            hidden: config.hidden_size,
            eps: config.layer_norm_eps as f32,
            max_tokens,
        })
    }

    /// The most tokens of a text that are read.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// How many tokens of each text the encoder reads (after truncation,
    /// with `[CLS]` and `[SEP]`): its cost grows with them.
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>, EmbedError> {
        Ok(self.token_ids(texts)?.iter().map(Vec::len).collect())
    }

    /// Token ids of each text, truncated, with `[CLS]` and `[SEP]`.
    fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| EmbedError::Compute(format!("tokenizing: {error}")))?;
        Ok(encodings
            .into_iter()
            .map(|encoding| encoding.get_ids().to_vec())
            .collect())
    }

    /// One ragged batch through the encoder; one pooled vector per text.
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = Device::Cpu;
        let ids: Vec<u32> = batch.iter().flat_map(|ids| ids.iter().copied()).collect();
        let positions: Vec<u32> = batch.iter().flat_map(|ids| 0..ids.len() as u32).collect();
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, &device)?;
        let positions = Tensor::from_vec(positions, total, &device)?;
        let x = self
            .word
            .index_select(&ids, 0)?
            .add(&self.position.index_select(&positions, 0)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = layer_norm(&x, &self.embedding_norm, self.eps)?;
        let head_size = self.hidden / self.heads;
        let scale = 1.0 / (head_size as f64).sqrt();
        for layer in &self.layers {
            let qkv = x
                .matmul(&layer.qkv_weight)?
                .broadcast_add(&layer.qkv_bias)?;
            let mut contexts = Vec::with_capacity(batch.len());
            let mut offset = 0;
            for ids in batch {
                let n = ids.len();
                let per_head = qkv
                    .narrow(0, offset, n)?
                    .reshape((n, 3, self.heads, head_size))?
                    .permute((1, 2, 0, 3))?;
                let q = per_head.get(0)?.affine(scale, 0.0)?;
                let k = per_head.get(1)?.contiguous()?;
                let v = per_head.get(2)?.contiguous()?;
                let scores = q.matmul(&k.t()?)?;
                let weights = candle_nn::ops::softmax_last_dim(&scores)?;
                let context = weights
                    .matmul(&v)?
                    .transpose(0, 1)?
                    .reshape((n, self.hidden))?;
                contexts.push(context);
                offset += n;
            }
            let context = Tensor::cat(&contexts, 0)?;
            let attended = context
                .matmul(&layer.output_weight)?
                .broadcast_add(&layer.output_bias)?
                .add(&x)?;
            x = layer_norm(&attended, &layer.attention_norm, self.eps)?;
            let inner = x
                .matmul(&layer.intermediate_weight)?
                .broadcast_add(&layer.intermediate_bias)
                .and_then(|t| gelu(&t))?;
            let out = inner
                .matmul(&layer.ffn_weight)?
                .broadcast_add(&layer.ffn_bias)?
                .add(&x)?;
            x = layer_norm(&out, &layer.output_norm, self.eps)?;
        }
        let rows = x.to_vec2::<f32>()?;
        let mut vectors = Vec::with_capacity(batch.len());
        let mut offset = 0;
        for ids in batch {
            let n = ids.len();
            let mut pooled = vec![0f32; self.hidden];
            for row in &rows[offset..offset + n] {
                for (sum, value) in pooled.iter_mut().zip(row) {
                    *sum += value;
                }
            }
            offset += n;
            vectors.push(crate::normalized(pooled));
        }
        Ok(vectors)
    }
}

impl Embedder for BertEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.hidden
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = self.token_ids(texts)?;
        let mut vectors = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < ids.len() && (end == start || tokens + ids[end].len() <= BATCH_TOKENS) {
                tokens += ids[end].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = ids[start..end].iter().map(Vec::as_slice).collect();
            vectors.extend(
                self.forward(&batch)
                    .map_err(|error| EmbedError::Compute(error.to_string()))?,
            );
            start = end;
        }
        Ok(vectors)
    }
}

/// Exact (erf) GELU, on all cores. candle's `gelu_erf` runs a scalar f64
/// `erf` on one thread, which took most of the encoder's time; this erf
/// (Abramowitz and Stegun 7.1.26) is within 1.5e-7 of the true one.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let shape = x.shape().clone();
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    values.par_chunks_mut(8192).for_each(|chunk| {
        for v in chunk {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
    Tensor::from_vec(values, shape, &Device::Cpu)
}

fn erf(x: f32) -> f32 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    sign * (1.0 - poly * (-x * x).exp())
}

fn layer_norm(x: &Tensor, norm: &(Tensor, Tensor), eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::layer_norm(x, &norm.0, &norm.1, eps)
}

fn compute_at(path: &Path, error: candle_core::Error) -> EmbedError {
    EmbedError::Model {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// The model's `tokenizer.json`, truncating at `max_tokens` and never padding.
pub(crate) fn load_tokenizer(
    dir: &Path,
    max_tokens: usize,
    truncate: bool,
) -> Result<Tokenizer, EmbedError> {
    let path: PathBuf = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|error| EmbedError::Model {
        path: path.clone(),
        message: error.to_string(),
    })?;
    tokenizer.with_padding(None);
    if truncate {
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|error| EmbedError::Model {
                path,
                message: error.to_string(),
            })?;
    }
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fast_erf_stays_within_its_bound() {
        // Reference values of erf.
        for (x, expected) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-1.5, -0.966_105_1),
            (3.0, 0.999_977_9),
        ] {
            assert!(
                (super::erf(x) - expected).abs() < 3e-7,
                "erf({x}) = {}",
                super::erf(x)
            );
        }
    }
}
