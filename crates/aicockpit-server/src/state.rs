//! The server's shared state: the database, the workspace manager, the
//! configuration, the login limiter, the origins cookies are accepted
//! from and the host names requests are accepted under, metrics, and the shutdown signal every long-lived connection
//! watches.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use aicockpit_config::{Config, Paths};
use aicockpit_workspace::WorkspaceManager;
use tokio_util::sync::CancellationToken;

use crate::auth::LoginLimiter;
use crate::db::Db;
use crate::metrics::Metrics;

/// Cheap to clone; every handler gets one.
#[derive(Clone)]
pub struct AppState(pub Arc<StateInner>);

pub struct StateInner {
    pub db: Db,
    pub manager: Arc<WorkspaceManager>,
    pub paths: Paths,
    /// The config file plus environment overrides, reloaded when the services API changes it.
    pub config: RwLock<Config>,
    pub limiter: LoginLimiter,
    /// Origins (`scheme://host:port`) whose requests may use the session cookie.
    pub allowed_origins: Vec<String>,
    /// The `Host` names the server answers to (from the same source as the origins).
    pub allowed_hosts: crate::auth::AllowedHosts,
    /// The URL people open (for messages and the login link).
    pub public_url: String,
    /// Cookies get `Secure` (the server speaks TLS, or sits behind a TLS proxy).
    pub secure_cookies: bool,
    /// How long a request body may stall between two of its pieces.
    pub body_idle_timeout: std::time::Duration,
    /// How long a proved password lets a session call `recent_password` routes.
    pub reauth_after: std::time::Duration,
    /// How long a WebSocket may be silent (pongs count) before it is closed.
    pub socket_idle_timeout: std::time::Duration,
    /// Why the server is not at full strength (the local backend in use, …), for `/status`.
    pub warnings: Vec<String>,
    pub metrics: Metrics,
    /// Cancelled at shutdown: terminals and LSP sessions tell their clients and end.
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub sessions: crate::engines::Engines,
    /// Long-lived connections per user (`workspaces.max_connections_per_user`).
    pub connections: crate::quota::Connections,
    /// Live terminal shells per user who opened them (`workspaces.max_terminals_per_user`).
    pub terminal_shells: crate::quota::Connections,
    /// Work that outlived its request (the audit record of a call whose
    /// client hung up), waited for before the server exits.
    pub detached: aicockpit_workspace::Detached,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    pub fn config(&self) -> Config {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reload the config after the services API wrote the file.
    pub async fn reload_config(&self) -> Result<Config, aicockpit_config::ConfigError> {
        let config = Config::load(&self.paths)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config.clone();
        self.sessions.set_config(&config).await;
        Ok(config)
    }
}
