//! Approximate vector search against the exact scan: the corpus's chunks as
//! the vector store holds them, embedded as a signed hashed bag of words in
//! 384 dimensions, the default model's (a real model over a few hundred
//! thousand chunks would take hours on a CPU; the lists are judged on real
//! text's word distribution),
//! then queries (each the first line of a chunk spread over the corpus)
//! searched exactly and through the inverted lists at several probe counts:
//! recall@10 against exact, and the time per query.
//!
//! ```text
//! cargo bench -p aicockpit-embed --bench ivf_recall -- CORPUS [QUERIES]
//! ```

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use aicockpit_embed::store::{Approximate, VectorStore};
use aicockpit_embed::{EmbedError, Embedder};
use aicockpit_index::{IndexOptions, ProjectIndex};

const DIMENSION: usize = 384;

struct BagOfWords;

/// Each lower-cased word adds ±1 to the dimension its FNV-1a hash picks.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; DIMENSION];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[(hash % DIMENSION as u64) as usize] += sign;
    }
    aicockpit_embed::normalized(vector)
}

impl Embedder for BagOfWords {
    fn id(&self) -> &str {
        "bench:bag-of-words"
    }
    fn dimension(&self) -> usize {
        DIMENSION
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| bag_of_words(t)).collect())
    }
    fn batch_size(&self) -> usize {
        4096
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(corpus) = args.first() else {
        eprintln!("usage: ivf_recall CORPUS [QUERIES]");
        std::process::exit(2);
    };
    let queries: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let (index, _) = ProjectIndex::open(IndexOptions::new(corpus, scratch.path().join("cache")))
        .expect("open the index");
    index.refresh(&|_| {}).expect("index the corpus");
    let embedder = BagOfWords;
    let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
    let started = Instant::now();
    store
        .sync(&index, &embedder, &|_| {}, &AtomicBool::new(false))
        .expect("embed");
    let (chunks, vectors) = store.counts();
    println!(
        "corpus: {} files, {chunks} chunks, {vectors} vectors (embedded in {:.1} s)",
        index.files().len(),
        started.elapsed().as_secs_f64()
    );
    // Queries: the first line of chunks spread over the corpus.
    let mut texts = Vec::new();
    for (path, _) in index.files() {
        for chunk in store.chunks_of(&path) {
            let Ok(text) = index.read(&path) else {
                continue;
            };
            let line = text
                .lines()
                .nth(chunk.span.start.line as usize)
                .unwrap_or("")
                .trim()
                .to_string();
            if line.len() > 8 {
                texts.push(line);
            }
            break;
        }
    }
    let step = (texts.len() / queries.max(1)).max(1);
    let picked: Vec<Vec<f32>> = texts
        .iter()
        .step_by(step)
        .take(queries)
        .map(|t| embedder.embed(&[t]).expect("embed")[0].clone())
        .collect();
    store.set_approximate(Approximate {
        above: usize::MAX,
        probe: 1,
    });
    let started = Instant::now();
    let exact: Vec<Vec<(String, u32)>> = picked
        .iter()
        .map(|q| {
            store
                .search(q, 10, &[])
                .into_iter()
                .map(|h| (h.path, h.span.start.line))
                .collect()
        })
        .collect();
    let exact_ms = started.elapsed().as_secs_f64() * 1000.0 / picked.len() as f64;
    println!(
        "exact: {exact_ms:.2} ms per query ({} queries)",
        picked.len()
    );
    // Built here, timed (a server builds them in the background, searching
    // exactly until they are ready).
    let built = Instant::now();
    let lists = store.build_lists();
    println!(
        "building the lists: {:.1} s ({lists} lists)",
        built.elapsed().as_secs_f64()
    );
    for probe in [8, 16, 32, 64] {
        store.set_approximate(Approximate { above: 0, probe });
        let started = Instant::now();
        let mut found = 0;
        let mut wanted = 0;
        for (query, truth) in picked.iter().zip(&exact) {
            let hits: Vec<(String, u32)> = store
                .search(query, 10, &[])
                .into_iter()
                .map(|h| (h.path, h.span.start.line))
                .collect();
            wanted += truth.len();
            found += truth.iter().filter(|t| hits.contains(t)).count();
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / picked.len() as f64;
        println!(
            "approximate, probe {probe}: recall@10 {:.3}, {ms:.2} ms per query ({:.1}x faster)",
            found as f64 / wanted.max(1) as f64,
            exact_ms / ms
        );
    }
}
