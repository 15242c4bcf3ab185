//! The active AI service's embeddings endpoint as an [`Embedder`]: batched,
//! with the client's own retries, timeouts and key rules (OpenAI
//! `/embeddings`, Azure deployments, Ollama and LM Studio under `/v1`).

use aicockpit_ai::Client;

use crate::{EmbedError, Embedder};

/// Embeddings from a service. Blocking: each call runs the request on the
/// caller's tokio runtime (from a blocking thread) or on its own.
pub struct ServiceEmbedder {
    client: Client,
    model: Option<String>,
    batch: usize,
    dimension: usize,
    id: String,
    runtime: Runtime,
}

enum Runtime {
    Shared(tokio::runtime::Handle),
    Owned(tokio::runtime::Runtime),
}

impl ServiceEmbedder {
    /// Connect: one probe request learns the vectors' dimension, so a service
    /// that cannot embed is reported now, not halfway through an index.
    pub fn connect(
        client: Client,
        model: Option<String>,
        batch: usize,
    ) -> Result<ServiceEmbedder, EmbedError> {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(handle) => Runtime::Shared(handle),
            Err(_) => Runtime::Owned(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| EmbedError::Compute(format!("a runtime: {error}")))?,
            ),
        };
        let mut embedder = ServiceEmbedder {
            id: String::new(),
            client,
            model,
            batch: batch.max(1),
            dimension: 0,
            runtime,
        };
        let probe = embedder.request(&["dimension probe".to_string()])?;
        embedder.dimension = probe.first().map_or(0, Vec::len);
        if embedder.dimension == 0 {
            return Err(EmbedError::Compute(format!(
                "{}: the embeddings endpoint answered an empty vector",
                embedder.client.service().name
            )));
        }
        embedder.id = format!(
            "service:{}:{}:{}",
            embedder.client.service().name,
            embedder.model.as_deref().unwrap_or("default"),
            embedder.dimension
        );
        Ok(embedder)
    }

    fn request(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let future = self.client.embed(self.model.as_deref(), inputs);
        let vectors = match &self.runtime {
            Runtime::Shared(handle) => handle.block_on(future)?,
            Runtime::Owned(runtime) => runtime.block_on(future)?,
        };
        let service = self.client.service().name.clone();
        if vectors.len() != inputs.len() || vectors.iter().any(Vec::is_empty) {
            return Err(EmbedError::Count {
                service,
                expected: inputs.len(),
                got: vectors.iter().filter(|v| !v.is_empty()).count(),
            });
        }
        if self.dimension > 0 {
            if let Some(bad) = vectors.iter().find(|v| v.len() != self.dimension) {
                return Err(EmbedError::Dimension {
                    service,
                    expected: self.dimension,
                    got: bad.len(),
                });
            }
        }
        Ok(vectors.into_iter().map(crate::normalized).collect())
    }
}

impl Embedder for ServiceEmbedder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch) {
            let inputs: Vec<String> = batch.iter().map(|t| t.to_string()).collect();
            vectors.extend(self.request(&inputs)?);
        }
        Ok(vectors)
    }
}
