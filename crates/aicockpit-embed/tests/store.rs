//! The vector store follows the index incrementally: an edited function
//! re-embeds only its chunk, a deleted file's vectors go, a restart
//! recomputes nothing, and a service failing midway leaves the store usable
//! and resumes where it stopped.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use aicockpit_ai::mock::MockServer;
use aicockpit_ai::{Client, ClientOptions};
use aicockpit_config::{ServiceConfig, ServiceKind};
use aicockpit_embed::store::{Approximate, VectorStore};
use aicockpit_embed::{EmbedError, Embedder, ServiceEmbedder};
use aicockpit_index::{IndexOptions, ProjectIndex};

/// A hashed bag of words that records what it was asked to embed.
#[derive(Default)]
struct Counting {
    texts: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

impl Embedder for Counting {
    fn id(&self) -> &str {
        "counting:64"
    }
    fn dimension(&self) -> usize {
        64
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.texts
            .lock()
            .unwrap()
            .extend(texts.iter().map(|t| t.to_string()));
        Ok(texts
            .iter()
            .map(|t| aicockpit_embed::normalized(aicockpit_ai::mock::embedding_of(t)))
            .collect())
    }
}

impl Counting {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.texts.lock().unwrap())
    }
}

const THREE_FUNCTIONS: &str = "def upload(data):\n    return send(data)\n\n\ndef retry(call):\n    return call()\n\n\ndef parse(line):\n    return line.split()\n";

fn open(root: &Path, cache: &Path) -> ProjectIndex {
    let (index, _) = ProjectIndex::open(IndexOptions::new(root, cache)).unwrap();
    index.refresh(&|_| {}).unwrap();
    index
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn edits_deletions_and_restarts_embed_only_what_changed() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("net.py"), THREE_FUNCTIONS).unwrap();
    std::fs::write(root.path().join("other.py"), "def other():\n    return 1\n").unwrap();
    let embedder = Counting::default();

    let index = open(root.path(), cache.path());
    let mut store = VectorStore::open(index.dir(), embedder.id(), 64);
    let first = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    let embedded_first = embedder.take();
    assert!(first.embedded >= 4, "{first:?}");
    assert_eq!(first.pending, 0);
    assert!(embedded_first.iter().any(|t| t.contains("def retry")));

    // Edit one function: only its chunk is embedded again.
    std::fs::write(
        root.path().join("net.py"),
        THREE_FUNCTIONS.replace("return call()", "return call(times=3)"),
    )
    .unwrap();
    index.refresh(&|_| {}).unwrap();
    let edit = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    let embedded = embedder.take();
    assert_eq!(edit.files_chunked, 1, "{edit:?}");
    assert_eq!(embedded.len(), 1, "{embedded:?}");
    assert!(embedded[0].contains("times=3"), "{embedded:?}");

    // Delete a file: its vectors go.
    std::fs::remove_file(root.path().join("other.py")).unwrap();
    index.refresh(&|_| {}).unwrap();
    let delete = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    assert_eq!(delete.files_removed, 1);
    assert!(embedder.take().is_empty());
    assert!(store.chunks_of("other.py").is_empty());
    let query = aicockpit_embed::normalized(aicockpit_ai::mock::embedding_of("other"));
    assert!(store
        .search(&query, 50, &[])
        .iter()
        .all(|hit| hit.path != "other.py"));

    // Restart: the store is read back and nothing is recomputed.
    let counts = store.counts();
    drop(store);
    drop(index);
    let index = open(root.path(), cache.path());
    let mut store = VectorStore::open(index.dir(), embedder.id(), 64);
    assert_eq!(store.counts(), counts);
    let restart = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    assert_eq!(
        (restart.embedded, restart.files_chunked),
        (0, 0),
        "{restart:?}"
    );
    // The first run and the edit called the model; the deletion and the restart did not.
    assert_eq!(embedder.calls.load(Ordering::Relaxed), 2);

    // The nearest chunk to a question about retrying is `retry`.
    let query = aicockpit_embed::normalized(aicockpit_ai::mock::embedding_of("retry call times"));
    let hits = store.search(&query, 3, &[]);
    assert_eq!(hits[0].symbol.as_deref(), Some("retry"), "{hits:?}");

    // Another model's store is not reused.
    let other = VectorStore::open(index.dir(), "another:64", 64);
    assert_eq!(other.counts(), (0, 0));
}

#[test]
fn a_service_failing_midway_leaves_the_store_usable_and_resumes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime.block_on(MockServer::start());
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Enough chunks for several batches of 64.
    for n in 0..3 {
        let text: String = (0..70)
            .map(|i| format!("def f{n}_{i}(x):\n    return x + {i}\n\n\n"))
            .collect();
        std::fs::write(root.path().join(format!("m{n}.py")), text).unwrap();
    }
    let index = open(root.path(), cache.path());
    let service = ServiceConfig {
        name: "mock".into(),
        kind: ServiceKind::Custom,
        base_url: mock.url(),
        chat_model: Some("mock-embed".into()),
        ..ServiceConfig::default()
    };
    let options = ClientOptions {
        max_retries: 0,
        ..ClientOptions::default()
    };
    let client = Client::new(service, None, options).unwrap();
    // Called from a thread outside any runtime, as the CLI does: the
    // embedder runs its requests on a runtime of its own.
    let embedder = ServiceEmbedder::connect(client, None, 64).unwrap();
    assert_eq!(
        embedder.dimension(),
        aicockpit_ai::mock::EMBEDDING_DIMENSION
    );
    // The probe was one request; two batches more, then the service refuses.
    mock.set_embeddings_left(Some(2));
    let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
    let failed = store.sync(&index, &embedder, &|_| {}, &never());
    let error = failed.unwrap_err().to_string();
    assert!(error.contains("switched off"), "{error}");
    let (chunks, embedded) = store.counts();
    assert_eq!(embedded, 128, "two batches kept");
    assert!(chunks > embedded);
    // Usable: what has vectors is found.
    let query = aicockpit_embed::normalized(aicockpit_ai::mock::embedding_of("def return x"));
    assert!(!store.search(&query, 5, &[]).is_empty());

    // The service is back: a new run (after a restart) embeds only the rest.
    mock.set_embeddings_left(None);
    drop(store);
    let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
    assert_eq!(store.counts().1, 128, "the partial run was saved");
    let before = mock.requests().len();
    let resumed = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    assert_eq!(resumed.embedded, chunks - 128, "{resumed:?}");
    assert_eq!(resumed.pending, 0);
    let sent: usize = mock.requests()[before..]
        .iter()
        .map(|r| r.body["input"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(sent, chunks - 128);
}

#[test]
fn a_cancelled_run_stops_between_batches_and_keeps_its_work() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let text: String = (0..150)
        .map(|i| format!("def g{i}(x):\n    return x * {i}\n\n\n"))
        .collect();
    std::fs::write(root.path().join("g.py"), text).unwrap();
    let index = open(root.path(), cache.path());
    let embedder = Counting::default();
    let cancel = AtomicBool::new(false);
    let mut store = VectorStore::open(index.dir(), embedder.id(), 64);
    let result = store.sync(
        &index,
        &embedder,
        &|progress| {
            if progress.done > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    );
    assert!(matches!(result, Err(EmbedError::Cancelled)), "{result:?}");
    let batch = embedder.batch_size();
    assert_eq!(store.counts().1, batch, "one batch done before the cancel");
    let resumed = store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    assert_eq!(resumed.pending, 0);
    assert_eq!(resumed.embedded, store.counts().0 - batch);
}

#[test]
fn above_its_threshold_search_reads_the_nearest_lists_and_still_finds_the_best() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let text: String = (0..200)
        .map(|i| {
            format!(
                "def handler_{i}(request, word_{}):\n    return request.reply_{i}()\n\n\n",
                i % 17
            )
        })
        .collect();
    std::fs::write(root.path().join("h.py"), text).unwrap();
    let index = open(root.path(), cache.path());
    let embedder = Counting::default();
    let mut store = VectorStore::open(index.dir(), embedder.id(), 64);
    store.sync(&index, &embedder, &|_| {}, &never()).unwrap();
    let texts = embedder.take();
    assert!(texts.len() >= 200, "{} chunks", texts.len());
    let exact: Vec<_> = texts
        .iter()
        .step_by(20)
        .map(|t| store.search(&embedder.embed(&[t]).unwrap()[0], 5, &[])[0].clone())
        .collect();
    // Approximate from 10 vectors on, one list of about 14 probed. The
    // first search starts building the lists and answers exactly meanwhile.
    store.set_approximate(Approximate {
        above: 10,
        probe: 1,
    });
    let query = &embedder.embed(&[&texts[0]]).unwrap()[0];
    assert_eq!(store.search(query, 5, &[])[0], exact[0]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !store.lists_ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lists were never built"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for (text, exact) in texts.iter().step_by(20).zip(&exact) {
        let query = &embedder.embed(&[text]).unwrap()[0];
        let approximate = store.search(query, 5, &[]);
        // The chunk the query is the text of is in its own nearest list.
        // The best score is the exact scan's, and the chunk the query is
        // the text of (in its own nearest list) is among the hits.
        assert!((approximate[0].score - exact.score).abs() < 1e-6, "{text}");
        assert!((approximate[0].score - 1.0).abs() < 0.02);
        let own = text
            .split("def ")
            .nth(1)
            .unwrap()
            .split('(')
            .next()
            .unwrap();
        assert!(
            approximate.iter().any(|h| h.symbol.as_deref() == Some(own)),
            "{own}: {approximate:?}"
        );
        assert!(approximate.len() <= 5);
    }
    // Scoped searches stay exact.
    let scoped = store.search(
        &embedder.embed(&[&texts[0]]).unwrap()[0],
        5,
        &["h.py".into()],
    );
    assert_eq!(scoped[0], exact[0]);
}

#[test]
fn a_corrupt_store_claiming_billions_of_vectors_is_replaced_not_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let id = "counting:64";
    let mut bytes = b"ACVEC01\n".to_vec();
    bytes.extend((id.len() as u32).to_le_bytes());
    bytes.extend(id.as_bytes());
    bytes.extend(64u32.to_le_bytes());
    bytes.extend(0u32.to_le_bytes()); // no files
    bytes.extend(u32::MAX.to_le_bytes()); // 4 billion vectors, then nothing
    std::fs::write(dir.path().join(aicockpit_embed::store::FILE_NAME), &bytes).unwrap();
    let store = VectorStore::open(dir.path(), id, 64);
    assert_eq!(store.counts(), (0, 0));
    assert!(!store.has_vectors());
    // A width no model has is refused from the header alone as well.
    let mut wide = b"ACVEC01\n".to_vec();
    wide.extend((id.len() as u32).to_le_bytes());
    wide.extend(id.as_bytes());
    wide.extend(u32::MAX.to_le_bytes());
    std::fs::write(dir.path().join(aicockpit_embed::store::FILE_NAME), &wide).unwrap();
    assert!(!VectorStore::open(dir.path(), id, u32::MAX as usize).has_vectors());
}
