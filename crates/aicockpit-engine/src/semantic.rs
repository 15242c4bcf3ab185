//! Semantic and hybrid search for the engine's clients (`aicockpit/search`
//! with a `mode`): the configured embedder and the project's vectors, opened
//! on the first search that wants them. The vectors are the ones
//! `aicockpit index` made; this module reads them and embeds queries, it
//! does not embed the project (background embedding in the language server
//! is not built yet).

use std::path::PathBuf;

use aicockpit_config::SearchMode;
use aicockpit_embed::fusion::Fusion;
use aicockpit_embed::hybrid::{self, RankedHit, Semantic};
use aicockpit_embed::provider::{local_limit_allows, open_embedder};
use aicockpit_embed::store::VectorStore;
use aicockpit_embed::Embedder;
use aicockpit_index::SearchQuery;

use crate::{Engine, EngineError};

/// What the engine knows of semantic search.
#[derive(Default)]
pub(crate) struct SemanticState {
    /// Where models and keys live; set by [`Engine::configure_ai`].
    pub(crate) data_dir: Option<PathBuf>,
    opened: Option<Result<Opened, String>>,
}

struct Opened {
    embedder: Box<dyn Embedder>,
    store: VectorStore,
}

/// A search's hits, the mode it used, and why vectors were not used, if not.
pub struct RankedSearch {
    pub hits: Vec<RankedHit>,
    pub mode: SearchMode,
    pub why: Option<String>,
}

impl SemanticState {
    /// Forget the opened embedder (the config or the service changed).
    pub(crate) fn reset(&mut self) {
        self.opened = None;
    }
}

impl Engine {
    /// Why search is text-only for this project, with the command to run,
    /// or `None` when vectors are (or may be) there. Cheap: it loads no
    /// model (a service's answer is only known after the first search).
    pub fn semantic_unavailable(&self) -> Option<String> {
        let index = self.index.as_ref()?;
        let state = self.semantic.lock().unwrap_or_else(|p| p.into_inner());
        let no_vectors = || {
            format!(
                "no vectors for this project yet: run `aicockpit index {}`",
                index.root().display()
            )
        };
        match &state.opened {
            Some(Ok(opened)) if opened.store.has_vectors() => return None,
            Some(Ok(_)) => return Some(no_vectors()),
            Some(Err(why)) => return Some(why.clone()),
            None => {}
        }
        let config = self.config();
        match config.search.embeddings {
            aicockpit_config::EmbeddingsSource::Off => {
                Some("search.embeddings is \"off\": search is text-only".into())
            }
            aicockpit_config::EmbeddingsSource::Local => {
                let data_dir = state.data_dir.clone().unwrap_or_default();
                let dir = aicockpit_embed::provider::local_model_dir(&config.search, &data_dir);
                if !aicockpit_embed::install::is_installed(&dir) {
                    Some(format!(
                        "no local embedding model in {}: search is text-only; run `aicockpit model install`",
                        dir.display()
                    ))
                } else if !index.dir().join(aicockpit_embed::store::FILE_NAME).exists() {
                    Some(no_vectors())
                } else {
                    None
                }
            }
            aicockpit_config::EmbeddingsSource::Service => None,
        }
    }

    /// Search in `mode`: text, semantic or hybrid (text alone, with the
    /// reason, when the project has no vectors). Blocks: the query is
    /// embedded here.
    pub fn search_ranked(
        &self,
        query: &SearchQuery,
        mode: SearchMode,
    ) -> Result<RankedSearch, EngineError> {
        let index = self.index.as_ref().ok_or(EngineError::NoProject)?;
        self.flush()?;
        let config = self.config();
        let fusion = Fusion {
            depth: config.search.fusion_depth,
            text_weight: config.search.text_weight,
            semantic_weight: config.search.semantic_weight,
            ..Fusion::default()
        };
        let mut state = self.semantic.lock().unwrap_or_else(|p| p.into_inner());
        if mode != SearchMode::Text && state.opened.is_none() {
            let data_dir = state.data_dir.clone().unwrap_or_default();
            let file = self.file_config();
            let opened = open_embedder(&config.search, &config.ai, &file.ai, &data_dir, |name| {
                std::env::var(name).ok()
            })
            .map_err(|why| why.0)
            .and_then(|embedder| {
                local_limit_allows(&config.search, index.stats().chunks).map_err(|why| why.0)?;
                let store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
                Ok(Opened { embedder, store })
            });
            state.opened = Some(opened);
        }
        let (semantic, why) = match &state.opened {
            Some(Ok(opened)) if opened.store.has_vectors() => (
                Some(Semantic {
                    store: &opened.store,
                    embedder: opened.embedder.as_ref(),
                }),
                None,
            ),
            Some(Ok(_)) => (
                None,
                Some(format!(
                    "no vectors for this project yet: run `aicockpit index {}`",
                    index.root().display()
                )),
            ),
            Some(Err(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        let used = match (mode, &semantic) {
            (SearchMode::Hybrid, None) => SearchMode::Text,
            (mode, _) => mode,
        };
        let hits = hybrid::search(
            index,
            semantic,
            why.as_deref().unwrap_or("no vectors"),
            query,
            mode,
            &fusion,
        )
        .map_err(|error| EngineError::Search(error.to_string()))?;
        Ok(RankedSearch {
            hits,
            mode: used,
            why: if mode == SearchMode::Text { None } else { why },
        })
    }
}
