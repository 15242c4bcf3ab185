//! One shared language-server engine per workspace: opened when the first
//! LSP session, search or chat of that workspace needs it, shared by all of
//! them (one index, one watcher), reconfigured when the services API changes
//! the config, and shut down with the server or the workspace.

use std::collections::HashMap;
use std::sync::Mutex;

use aicockpit_config::{Config, Paths};
use aicockpit_lsp::SharedEngine;

use crate::error::ApiError;
use crate::state::AppState;

/// The engines of the server's workspaces, by workspace name, each with the
/// workspace record's id it was opened for: a workspace made again under an
/// old name (say after `aicockpit workspace rm` outside the API) never gets
/// its predecessor's engine, with its unsaved text and sessions.
pub struct Engines {
    map: tokio::sync::Mutex<HashMap<String, (String, SharedEngine)>>,
    config: Mutex<Config>,
    paths: Paths,
}

impl Engines {
    pub fn new(config: Config, paths: Paths) -> Engines {
        Engines {
            map: tokio::sync::Mutex::new(HashMap::new()),
            config: Mutex::new(config),
            paths,
        }
    }

    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The workspace's engine, opened (and its first index started) on first use.
    pub async fn get(&self, state: &AppState, name: &str) -> Result<SharedEngine, ApiError> {
        // Opens the folder with no symlink in its path and checks it is the
        // workspace's own (device and inode), as the files API does.
        state.manager.files(name)?;
        let record = state.manager.get(name)?;
        let dir = record.dir;
        let mut map = self.map.lock().await;
        match map.get(name) {
            Some((id, engine)) if *id == record.id => return Ok(engine.clone()),
            Some(_) => {
                // Another workspace had this name: its sessions end, its engine goes.
                if let Some((_, old)) = map.remove(name) {
                    let _ = old.shutdown().await;
                }
            }
            None => {}
        }
        let (config, paths) = (self.config(), self.paths.clone());
        // The record's id owns the index: a folder that held a removed
        // workspace of the same name is indexed afresh, not answered from
        // the old index while the first refresh runs.
        let owner = record.id.clone();
        let engine = tokio::task::spawn_blocking(move || {
            SharedEngine::open(&dir, config, paths, Some(&owner))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|error| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "index_unavailable",
                format!("the workspace's index cannot be opened: {error}"),
            )
        })?;
        engine.start();
        map.insert(name.to_string(), (record.id, engine.clone()));
        Ok(engine)
    }

    /// Apply a changed configuration (AI services) to every engine.
    pub async fn set_config(&self, config: &Config) {
        // Under the map's lock, so an engine being opened gets the new config too.
        let map = self.map.lock().await;
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config.clone();
        for (name, (_, engine)) in map.iter() {
            if let Err(error) = engine.reconfigure(config.clone()) {
                tracing::warn!(workspace = %name, %error, "AI service not usable after the change");
            }
        }
    }

    /// A workspace is deleted: its sessions are told and its engine dropped.
    pub async fn forget(&self, name: &str) {
        let engine = self.map.lock().await.remove(name);
        if let Some((_, engine)) = engine {
            let _ = engine.shutdown().await;
        }
    }

    /// A removed workspace's index (and its vectors) is deleted: nothing of
    /// its files stays in the cache. `root` is the workspace's folder as it
    /// was before the removal (canonical, as the index names it).
    pub async fn discard_index(&self, root: std::path::PathBuf) {
        let dir = aicockpit_index::index_dir(&self.paths.cache_dir, &root);
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err((dir, error)),
            _ => Ok(()),
        })
        .await;
        if let Ok(Err((dir, error))) = removed {
            tracing::warn!(index = %dir.display(), %error, "cannot delete a removed workspace's index");
        }
    }

    /// The server stops: every session is told, every engine flushes its edits.
    pub async fn shutdown_all(&self) {
        let engines: Vec<(String, (String, SharedEngine))> =
            self.map.lock().await.drain().collect();
        for (name, (_, engine)) in engines {
            if let Err(error) = engine.shutdown().await {
                tracing::warn!(workspace = %name, %error, "cannot flush the workspace's edits");
            }
        }
    }
}
