//! BERT-style sentence encoders (all-MiniLM-L6-v2 and its kin) run on the
//! CPU: mean pooling over the tokens, L2-normalised. candle reads the
//! weights; the forward pass is our own f32 arithmetic over the `gemm`
//! crate's matrix products (AVX-512 where the CPU has it).
//!
//! Speed comes from never computing padding: a batch is one ragged matrix of
//! all its texts' tokens (`[tokens, hidden]`), so every dense layer is one
//! large matrix product, and only attention runs per text (and head, in
//! parallel), over that text's own tokens; and from doing everything else
//! (bias, GELU, residual, layer norm, softmax) in place in buffers made once
//! per batch: candle's general tensors spent most of the time allocating,
//! faulting in and copying intermediate tensors. Batches are bounded by
//! their token count, not their text count.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::simd::lanes;
use crate::{model_identity, EmbedError, Embedder};

/// Tokens past this are cut: what the model was trained for (its shipped
/// `tokenizer.json` says 128 and pads to 128; both are overridden).
pub const MAX_TOKENS: usize = 256;
/// Tokens in one ragged batch: large enough for efficient matrix products,
/// small enough that a batch's activations stay in cache-friendly sizes.
const BATCH_TOKENS: usize = 2048;

/// A dense layer: `[in, out]` weights (row-major, so a product reads them
/// as they lie) and the bias.
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

/// A layer norm's scale and shift.
struct Norm {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

struct Layer {
    /// Query, key and value fused: `[hidden, 3 × hidden]`.
    qkv: Dense,
    output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    ffn: Dense,
    output_norm: Norm,
}

/// A BERT encoder loaded from a folder with `config.json`, `tokenizer.json`
/// and `model.safetensors`.
pub struct BertEmbedder {
    id: String,
    tokenizer: Tokenizer,
    /// `[vocabulary, hidden]`, `[positions, hidden]`, `[hidden]`.
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
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
        if config.hidden_size == 0 || config.num_hidden_layers > 256 {
            return Err(EmbedError::Model {
                path: config_path,
                message: "hidden_size is 0 or num_hidden_layers above 256".into(),
            });
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
        // Room for the special tokens and some text: a smaller table is no
        // real model (BERT's is 512), and the tokenizer's truncation would
        // subtract its special tokens from it.
        if config.max_position_embeddings < 16 {
            return Err(EmbedError::Model {
                path: config_path,
                message: "max_position_embeddings is under 16".into(),
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
        let flat = |tensor: Tensor| -> Result<Vec<f32>, EmbedError> {
            tensor
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(at)
        };
        // Dense weights are stored `[out, in]`; products want `[in, out]`.
        let dense = |weights: Vec<Tensor>, biases: Vec<Tensor>| -> Result<Dense, EmbedError> {
            let weight = Tensor::cat(&weights, 0)
                .and_then(|w| w.t())
                .and_then(|w| w.contiguous())
                .map_err(at)?;
            let (inputs, outputs) = weight.dims2().map_err(at)?;
            let bias = flat(Tensor::cat(&biases, 0).map_err(at)?)?;
            if bias.len() != outputs {
                return Err(EmbedError::Model {
                    path: weights_path.clone(),
                    message: format!("a bias of {} for {outputs} outputs", bias.len()),
                });
            }
            Ok(Dense {
                weight: flat(weight)?,
                bias,
                inputs,
                outputs,
            })
        };
        let norm = |scale: Tensor, shift: Tensor| -> Result<Norm, EmbedError> {
            Ok(Norm {
                scale: flat(scale)?,
                shift: flat(shift)?,
            })
        };
        let word = flat(take("embeddings.word_embeddings.weight")?)?;
        let position = flat(take("embeddings.position_embeddings.weight")?)?;
        let token_type = flat(
            take("embeddings.token_type_embeddings.weight")?
                .get(0)
                .map_err(at)?,
        )?;
        let embedding_norm = norm(
            take("embeddings.LayerNorm.weight")?,
            take("embeddings.LayerNorm.bias")?,
        )?;
        let hidden = config.hidden_size;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{n}.");
            let mut t = |name: &str| take(&format!("{p}{name}"));
            let qkv = dense(
                vec![
                    t("attention.self.query.weight")?,
                    t("attention.self.key.weight")?,
                    t("attention.self.value.weight")?,
                ],
                vec![
                    t("attention.self.query.bias")?,
                    t("attention.self.key.bias")?,
                    t("attention.self.value.bias")?,
                ],
            )?;
            let output = dense(
                vec![t("attention.output.dense.weight")?],
                vec![t("attention.output.dense.bias")?],
            )?;
            let attention_norm = norm(
                t("attention.output.LayerNorm.weight")?,
                t("attention.output.LayerNorm.bias")?,
            )?;
            let intermediate = dense(
                vec![t("intermediate.dense.weight")?],
                vec![t("intermediate.dense.bias")?],
            )?;
            let ffn = dense(
                vec![t("output.dense.weight")?],
                vec![t("output.dense.bias")?],
            )?;
            let output_norm = norm(t("output.LayerNorm.weight")?, t("output.LayerNorm.bias")?)?;
            let norms_fit = [&attention_norm, &output_norm]
                .iter()
                .all(|n| n.scale.len() == hidden && n.shift.len() == hidden);
            let inner_fits = layers
                .first()
                .is_none_or(|first: &Layer| first.intermediate.outputs == intermediate.outputs);
            let shapes_fit = norms_fit
                && inner_fits
                && qkv.inputs == hidden
                && qkv.outputs == 3 * hidden
                && output.inputs == hidden
                && output.outputs == hidden
                && intermediate.inputs == hidden
                && ffn.inputs == intermediate.outputs
                && ffn.outputs == hidden;
            if !shapes_fit {
                return Err(EmbedError::Model {
                    path: weights_path.clone(),
                    message: format!("layer {n}: weight shapes do not fit hidden_size {hidden}"),
                });
            }
            layers.push(Layer {
                qkv,
                output,
                attention_norm,
                intermediate,
                ffn,
                output_norm,
            });
        }
        let embedding_norm_fits =
            embedding_norm.scale.len() == hidden && embedding_norm.shift.len() == hidden;
        if word.len() % hidden != 0
            || position.len() < max_tokens * hidden
            || token_type.len() != hidden
            || !embedding_norm_fits
        {
            return Err(EmbedError::Model {
                path: weights_path,
                message: format!("embedding tables do not fit hidden_size {hidden}"),
            });
        }
        Ok(BertEmbedder {
            id: model_identity("bert", dir, hidden),
            tokenizer,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            heads: config.num_attention_heads,
            hidden,
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
    ///
    /// Plain f32 arithmetic over buffers made once per batch: every dense
    /// layer is one matrix product over all the batch's tokens (with its
    /// bias as the product's starting value), attention runs per text and
    /// head in parallel, and bias, GELU, residual and layer norm are done in
    /// place.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let hidden = self.hidden;
        let total: usize = batch.iter().map(|ids| ids.len()).sum();
        let vocabulary = self.word.len() / hidden;
        let mut x = vec![0f32; total * hidden];
        {
            let mut row = 0;
            for ids in batch {
                for (position, &id) in ids.iter().enumerate() {
                    let id = id as usize;
                    if id >= vocabulary || position >= self.max_tokens {
                        return Err(EmbedError::Compute(format!(
                            "token {id} at {position} is outside the model's tables"
                        )));
                    }
                    let out = &mut x[row * hidden..(row + 1) * hidden];
                    let word = &self.word[id * hidden..(id + 1) * hidden];
                    let place = &self.position[position * hidden..(position + 1) * hidden];
                    for (((o, w), p), t) in
                        out.iter_mut().zip(word).zip(place).zip(&self.token_type)
                    {
                        *o = w + p + t;
                    }
                    row += 1;
                }
            }
        }
        layer_norm_rows(&mut x, None, None, &self.embedding_norm, hidden, self.eps);
        let spans: Vec<(usize, usize)> = batch
            .iter()
            .scan(0, |offset, ids| {
                let span = (*offset, ids.len());
                *offset += ids.len();
                Some(span)
            })
            .collect();
        let inner_size = self.layers.first().map_or(0, |l| l.intermediate.outputs);
        let mut qkv = vec![0f32; total * 3 * hidden];
        let mut context = vec![0f32; total * hidden];
        let mut projected = vec![0f32; total * hidden];
        let mut inner = vec![0f32; total * inner_size];
        for layer in &self.layers {
            // Each product's bias is added by the step that reads it next.
            dense(&mut qkv, &x, total, &layer.qkv, true);
            self.attention(&qkv, &mut context, &spans);
            dense(&mut projected, &context, total, &layer.output, false);
            let (norm, bias) = (&layer.attention_norm, &layer.output.bias);
            layer_norm_rows(&mut x, Some(&projected), Some(bias), norm, hidden, self.eps);
            dense(&mut inner, &x, total, &layer.intermediate, false);
            gelu(&mut inner, &layer.intermediate.bias);
            dense(&mut projected, &inner, total, &layer.ffn, false);
            let (norm, bias) = (&layer.output_norm, &layer.ffn.bias);
            layer_norm_rows(&mut x, Some(&projected), Some(bias), norm, hidden, self.eps);
        }
        Ok(spans
            .iter()
            .map(|&(start, n)| {
                let mut pooled = vec![0f32; hidden];
                for row in x[start * hidden..(start + n) * hidden].chunks_exact(hidden) {
                    for (sum, value) in pooled.iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                crate::normalized(pooled)
            })
            .collect())
    }

    /// Scaled dot-product attention of every text and head: `qkv` holds
    /// each token's query, key and value rows side by side; `context` gets
    /// each head's output in its columns.
    fn attention(&self, qkv: &[f32], context: &mut [f32], spans: &[(usize, usize)]) {
        use rayon::prelude::*;
        let hidden = self.hidden;
        let heads = self.heads;
        let head_size = hidden / heads;
        let scale = 1.0 / (head_size as f32).sqrt();
        let stride = 3 * hidden;
        let out = SharedMut(context.as_mut_ptr());
        let out = &out;
        (0..spans.len() * heads).into_par_iter().for_each_init(
            Vec::new,
            |scores: &mut Vec<f32>, task| {
                let (start, n) = spans[task / heads];
                let head = task % heads;
                scores.clear();
                scores.resize(n * n, 0.0);
                let q = qkv[start * stride + head * head_size..].as_ptr();
                let k = qkv[start * stride + hidden + head * head_size..].as_ptr();
                let v = qkv[start * stride + 2 * hidden + head * head_size..].as_ptr();
                // SAFETY: the products read `n` rows of `head_size` columns at
                // row stride `stride` from q, k and v, which lie inside `qkv` (its
                // rows `start..start + n`, columns of this head's block); they
                // write the `n × n` scores (owned by this task), and `n` rows of
                // this head's `head_size` columns of `context` from row `start`:
                // no other task writes that block (tasks differ in text, hence
                // rows, or in head, hence columns), and `context` outlives the
                // parallel loop.
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        head_size,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        q,
                        1,
                        stride as isize,
                        k,
                        stride as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                // Unnormalized: each context row is divided by its sum after the product.
                let sums: Vec<f32> = scores.chunks_exact_mut(n).map(softmax_unscaled).collect();
                // SAFETY: as above.
                unsafe {
                    gemm::gemm(
                        n,
                        head_size,
                        n,
                        out.0.add(start * hidden + head * head_size),
                        1,
                        hidden as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        n as isize,
                        v,
                        1,
                        stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for (i, sum) in sums.iter().enumerate() {
                    let inverse = 1.0 / sum;
                    // SAFETY: row `start + i`, this head's columns: this
                    // task's own block of `context` (see above).
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.0.add((start + i) * hidden + head * head_size),
                            head_size,
                        )
                    };
                    for value in row {
                        *value *= inverse;
                    }
                }
            },
        );
    }
}

/// A pointer the attention tasks share to write disjoint blocks.
struct SharedMut(*mut f32);
// SAFETY: only used for writes to blocks that no two tasks share (see
// `BertEmbedder::attention`).
unsafe impl Sync for SharedMut {}

/// `out[rows, outputs] = input[rows, inputs] × weight`, plus the bias when
/// `with_bias` (otherwise the caller adds it), on all cores.
fn dense(out: &mut [f32], input: &[f32], rows: usize, layer: &Dense, with_bias: bool) {
    let (inputs, outputs) = (layer.inputs, layer.outputs);
    let out = &mut out[..rows * outputs];
    if with_bias {
        for row in out.chunks_exact_mut(outputs) {
            row.copy_from_slice(&layer.bias);
        }
    }
    assert!(input.len() >= rows * inputs && layer.weight.len() == inputs * outputs);
    // SAFETY: `out` is `rows × outputs`, `input` at least `rows × inputs`
    // and `weight` `inputs × outputs`, all row-major with the strides given
    // (checked just above); with `with_bias` the product adds to the bias
    // already in `out`, otherwise it overwrites `out`.
    unsafe {
        gemm::gemm(
            rows,
            outputs,
            inputs,
            out.as_mut_ptr(),
            1,
            outputs as isize,
            with_bias,
            input.as_ptr(),
            1,
            inputs as isize,
            layer.weight.as_ptr(),
            1,
            outputs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Layer norm of each row of `x`, in place, after adding `residual` (and
/// `bias` to each row of it) when given; on all cores.
fn layer_norm_rows(
    x: &mut [f32],
    residual: Option<&[f32]>,
    bias: Option<&[f32]>,
    norm: &Norm,
    width: usize,
    eps: f32,
) {
    use rayon::prelude::*;
    const ROWS: usize = 64;
    let zeros = vec![0f32; width];
    let bias = bias.unwrap_or(&zeros);
    let each = |rows: &mut [f32], adds: Option<&[f32]>| {
        for (i, row) in rows.chunks_exact_mut(width).enumerate() {
            let add = adds.map(|adds| &adds[i * width..(i + 1) * width]);
            layer_norm_row(row, add, bias, &norm.scale, &norm.shift, eps);
        }
    };
    match residual {
        Some(residual) => x
            .par_chunks_mut(width * ROWS)
            .zip(residual.par_chunks(width * ROWS))
            .for_each(|(rows, adds)| each(rows, Some(adds))),
        None => x
            .par_chunks_mut(width * ROWS)
            .for_each(|rows| each(rows, None)),
    }
}

#[inline(always)]
fn layer_norm_row_body(
    row: &mut [f32],
    add: Option<&[f32]>,
    bias: &[f32],
    scale: &[f32],
    shift: &[f32],
    eps: f32,
) {
    if let Some(add) = add {
        for ((value, extra), b) in row.iter_mut().zip(add).zip(bias) {
            *value += extra + b;
        }
    }
    let width = row.len() as f32;
    let mean = lanes(row, 0.0, add_f32) / width;
    let mut acc = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in acc.iter_mut().zip(chunk) {
            *lane += (v - mean) * (v - mean);
        }
    }
    let spread: f32 = rest.iter().map(|v| (v - mean) * (v - mean)).sum();
    let variance = (acc.iter().sum::<f32>() + spread) / width;
    let inverse = 1.0 / (variance + eps).sqrt();
    for ((value, s), t) in row.iter_mut().zip(scale).zip(shift) {
        *value = (*value - mean) * inverse * s + t;
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
        // A text with no tokens at all (a tokenizer without [CLS] and
        // [SEP], an empty text) gets a zero vector, which matches nothing.
        let (empty, ids): (Vec<usize>, Vec<&[u32]>) = {
            let mut empty = Vec::new();
            let mut kept = Vec::new();
            for (i, text_ids) in ids.iter().enumerate() {
                if text_ids.is_empty() {
                    empty.push(i);
                } else {
                    kept.push(text_ids.as_slice());
                }
            }
            (empty, kept)
        };
        let mut vectors = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < ids.len() && (end == start || tokens + ids[end].len() <= BATCH_TOKENS) {
                tokens += ids[end].len();
                end += 1;
            }
            vectors.extend(self.forward(&ids[start..end])?);
            start = end;
        }
        for i in empty {
            vectors.insert(i, vec![0.0; self.hidden]);
        }
        Ok(vectors)
    }
}

/// Exact (erf) GELU in place, on all cores (candle's `gelu_erf` ran a
/// scalar f64 `erf` on one thread).
fn gelu(values: &mut [f32], bias: &[f32]) {
    use rayon::prelude::*;
    let width = bias.len();
    values.par_chunks_mut(width * 8).for_each(|rows| {
        for row in rows.chunks_exact_mut(width) {
            gelu_row(row, bias);
        }
    });
}

#[inline(always)]
fn gelu_row_body(row: &mut [f32], bias: &[f32]) {
    for (v, b) in row.iter_mut().zip(bias) {
        let x = *v + b;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// e^(v − max) of each value of a row, in place, and their sum: the row's
/// softmax once divided by it. Reductions run in 16 lanes so that they
/// vectorize too (a plain running sum or maximum cannot be reordered).
fn softmax_unscaled(row: &mut [f32]) -> f32 {
    softmax_row(row)
}

#[inline(always)]
fn softmax_row_body(row: &mut [f32]) -> f32 {
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for chunk in chunks.by_ref() {
        for (lane, value) in acc.iter_mut().zip(chunk) {
            *value = exp(*value - max);
            *lane += *value;
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for value in chunks.into_remainder() {
        *value = exp(*value - max);
        sum += *value;
    }
    sum
}

#[inline(always)]
fn add_f32(a: f32, b: f32) -> f32 {
    a + b
}

vectorized!(fn gelu_row(row: &mut [f32], bias: &[f32]) -> () = gelu_row_body);
vectorized!(fn softmax_row(row: &mut [f32]) -> f32 = softmax_row_body);
vectorized!(fn layer_norm_row(
    row: &mut [f32],
    add: Option<&[f32]>,
    bias: &[f32],
    scale: &[f32],
    shift: &[f32],
    eps: f32
) -> () = layer_norm_row_body);

/// erf after Abramowitz and Stegun 7.1.26: within 1.5e-7 of the true one.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// e^x within about 2e-7 relative for x ≤ 88 (0 below −87), in plain
/// arithmetic the compiler vectorizes: e^x = 2^k · e^r with k the nearest
/// integer to x / ln 2 and |r| ≤ ln 2 / 2, e^r by its Taylor series to r⁶.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5 × 2^23: adding it rounds to an integer, which then sits in the
    // low bits of the sum (no float-to-int conversion, which does not vectorize).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let k = t - ROUND;
    // ln 2 in two parts (Cody and Waite), so r keeps its precision.
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let two_to_k = (t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23;
    p * f32::from_bits(two_to_k)
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
        // Truncation keeps room for the special tokens the post-processor
        // adds, and subtracts them from the length unchecked.
        let special = tokenizer.get_post_processor().map_or(0, |post| {
            tokenizers::PostProcessor::added_tokens(post, true)
        });
        if special >= max_tokens / 2 {
            return Err(EmbedError::Model {
                path,
                message: format!(
                    "the post-processor adds {special} special tokens, too many for texts of {max_tokens} tokens"
                ),
            });
        }
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
    /// A config whose position table leaves no room for text is refused with
    /// a clear error (the tokenizer's truncation would otherwise underflow).
    #[test]
    fn a_position_table_too_small_for_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type":"bert","hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,
               "intermediate_size":16,"vocab_size":10,"max_position_embeddings":1,"type_vocab_size":2}"#,
        )
        .unwrap();
        let error = super::BertEmbedder::load(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("max_position_embeddings is under 16"),
            "{error}"
        );
    }

    #[test]
    fn the_fast_exp_stays_within_its_bound() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (fast, exact) = (super::exp(x), x.exp());
            assert!(
                ((fast - exact) / exact).abs() < 4e-7,
                "exp({x}) = {fast}, not {exact}"
            );
            x += 0.0137;
        }
        assert_eq!(super::exp(-1000.0), super::exp(-87.0));
    }

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
