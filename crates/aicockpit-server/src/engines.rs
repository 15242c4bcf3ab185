//! One shared language-server engine per workspace, made when the first
//! LSP session, search or chat of that workspace needs it, and kept while
//! the server runs.

use std::collections::HashMap;
use std::sync::Mutex;

use aicockpit_config::{Config, Paths};

/// The engines of the server's workspaces, by workspace name.
pub struct Engines {
    map: Mutex<HashMap<String, ()>>,
    #[allow(dead_code)]
    config: Mutex<Config>,
    #[allow(dead_code)]
    paths: Paths,
}

impl Engines {
    pub fn new(config: Config, paths: Paths) -> Engines {
        Engines {
            map: Mutex::new(HashMap::new()),
            config: Mutex::new(config),
            paths,
        }
    }

    /// Apply a changed configuration (AI services) to every engine.
    pub fn set_config(&self, config: &Config) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config.clone();
    }

    /// Drop a deleted workspace's engine.
    pub fn forget(&self, name: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Flush every engine's pending edits (at shutdown).
    pub fn flush_all(&self) {}
}
