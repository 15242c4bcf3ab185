//! The one configuration model of AiCockpit.
//!
//! Sources, later ones winning: built-in defaults, the TOML file
//! (`$AICOCKPIT_CONFIG`, else `$XDG_CONFIG_HOME/aicockpit/config.toml`),
//! `AICOCKPIT_<SECTION>_<KEY>` environment variables, and client overlays
//! (LSP `initializationOptions` and `workspace/didChangeConfiguration`
//! settings, at the top level or under an `aicockpit` key).
//!
//! Architecture invariant: bad configuration is an error that names the key,
//! never a panic; a missing file is not an error.
//!
//! ```
//! use aicockpit_config::Config;
//!
//! let mut config = Config::from_toml_str("[index]\nmax_file_bytes = 2048\n").unwrap();
//! assert_eq!(config.index.max_file_bytes, 2048);
//! config.apply_overlay(&serde_json::json!({"aicockpit": {"search": {"max_results": 7}}})).unwrap();
//! assert_eq!(config.search.max_results, 7);
//! ```

mod paths;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use paths::Paths;

/// A configuration problem, naming the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config key `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// No home folder to put a path under: `HOME` is unset, empty or
    /// relative, and the password database has none for this user.
    #[error("cannot tell where {what} goes: HOME is not set (or not an absolute path) and the password database gives no home folder for this user; set HOME, or AICOCKPIT_CONFIG, AICOCKPIT_CACHE_DIR and AICOCKPIT_DATA_DIR")]
    NoHome { what: &'static str },
}

/// All settings. Every section has defaults, so an empty file is valid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub ai: AiConfig,
    pub completion: CompletionConfig,
    pub index: IndexConfig,
    pub search: SearchConfig,
    pub workspaces: WorkspacesConfig,
}

/// AI services and which one is active.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// The name of the active service; when unset, the first service is active.
    #[serde(default)]
    pub active: Option<String>,
    pub services: Vec<ServiceConfig>,
}

impl AiConfig {
    /// The active service: the one `active` names, else the first.
    pub fn active_service(&self) -> Option<&ServiceConfig> {
        match &self.active {
            Some(name) => self.services.iter().find(|s| &s.name == name),
            None => self.services.first(),
        }
    }
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            active: Some("lmstudio".to_string()),
            services: vec![
                ServiceConfig {
                    name: "lmstudio".to_string(),
                    kind: ServiceKind::Lmstudio,
                    base_url: "http://127.0.0.1:1234/v1".to_string(),
                    ..ServiceConfig::default()
                },
                ServiceConfig {
                    name: "ollama".to_string(),
                    kind: ServiceKind::Ollama,
                    base_url: "http://127.0.0.1:11434".to_string(),
                    ..ServiceConfig::default()
                },
            ],
        }
    }
}

/// The wire dialect of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Openai,
    Azure,
    #[default]
    Lmstudio,
    Ollama,
    /// Any OpenAI-compatible base URL.
    Custom,
    /// llama.cpp's `llama-server`: OpenAI-compatible, plus `/props` (the
    /// served context size) and `/infill` (fill-in-the-middle) at its root.
    Llamacpp,
}

/// One AI service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    pub kind: ServiceKind,
    pub base_url: String,
    pub chat_model: Option<String>,
    /// Defaults to `chat_model`.
    pub completion_model: Option<String>,
    /// The environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// Azure only.
    pub deployment: Option<String>,
    /// Azure only.
    pub api_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompletionConfig {
    pub debounce_ms: u64,
    pub max_context_tokens: usize,
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig {
            debounce_ms: 75,
            max_context_tokens: 2048,
        }
    }
}

/// What the project index reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Files larger than this are skipped.
    pub max_file_bytes: u64,
    /// Parser threads; 0 means one per core.
    pub threads: usize,
    /// Milliseconds of quiet after an edit before the index is updated.
    pub update_debounce_ms: u64,
    /// Folders skipped wherever they are, unless an ignore file re-includes
    /// them (`!vendor/`): dependencies, virtual environments, build output.
    pub skip_folders: Vec<String>,
}

/// The folders every tool skips: dependencies, virtual environments and build output.
pub const DEFAULT_SKIP_FOLDERS: &[&str] = &[
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    "target",
    "vendor",
    "build",
    "dist",
    ".tox",
    ".mypy_cache",
    ".gradle",
    ".next",
];

impl IndexConfig {
    /// The parser threads an index opened with this config starts:
    /// `threads`, or one per core when it is 0.
    pub fn parser_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            threads => threads,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            max_file_bytes: 1024 * 1024,
            threads: 0,
            update_debounce_ms: 200,
            skip_folders: DEFAULT_SKIP_FOLDERS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Result limits for search and symbol queries, and semantic search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Default number of hits for `aicockpit/search` and `aicockpit search`.
    pub max_results: usize,
    /// Cap on `workspace/symbol` results, which keeps one-letter queries fast.
    pub max_workspace_symbols: usize,
    /// Where chunk and query vectors come from.
    pub embeddings: EmbeddingsSource,
    /// The local model's folder; unset means the one `aicockpit model
    /// install` puts under the data folder.
    pub local_model: Option<String>,
    /// The service's embedding model; unset means its completion model.
    pub service_model: Option<String>,
    /// Texts per embeddings request to a service.
    pub embedding_batch: usize,
    /// Above this many chunks, local embedding is skipped unless raised.
    pub local_max_chunks: usize,
    /// The default of `--mode` and `aicockpit/search`'s `mode`.
    pub mode: SearchMode,
    /// How many of each ranking's best take part in hybrid fusion.
    pub fusion_depth: usize,
    /// The weight of the text (BM25) ranking in fusion.
    pub text_weight: f32,
    /// The weight of the dense ranking in fusion.
    pub semantic_weight: f32,
    /// Above this many vectors, semantic search scans the nearest lists of
    /// an inverted-file index instead of every vector.
    pub approximate_above: usize,
    /// The lists (of about √n) an approximate search scans.
    pub approximate_probe: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            max_results: 20,
            max_workspace_symbols: 128,
            embeddings: EmbeddingsSource::Local,
            local_model: None,
            service_model: None,
            embedding_batch: 64,
            local_max_chunks: 200_000,
            mode: SearchMode::Hybrid,
            fusion_depth: 20,
            text_weight: 0.5,
            semantic_weight: 1.0,
            approximate_above: 300_000,
            approximate_probe: 32,
        }
    }
}

/// Where embeddings come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingsSource {
    /// No semantic search: BM25 only.
    Off,
    /// The active AI service's embeddings endpoint.
    Service,
    /// A model run in-process on the CPU.
    #[default]
    Local,
}

/// How a search ranks: words, meaning, or both fused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Text,
    Semantic,
    /// Both, fused; text alone where no vectors exist.
    #[default]
    Hybrid,
}

impl SearchMode {
    pub fn name(self) -> &'static str {
        match self {
            SearchMode::Text => "text",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for SearchMode {
    type Err = String;

    fn from_str(text: &str) -> Result<SearchMode, String> {
        match text {
            "text" => Ok(SearchMode::Text),
            "semantic" => Ok(SearchMode::Semantic),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(format!(
                "unknown search mode `{other}`: use text, semantic or hybrid"
            )),
        }
    }
}

/// Containerized workspaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspacesConfig {
    /// `docker` (hardened containers) or `local` (a host folder, not isolated).
    pub backend: String,
    pub default_image: String,
    /// Docker network mode; `host` and `container:…` are refused.
    pub network: String,
    /// Memory limit such as `2g`; swap is set to the same, so workspaces never swap.
    pub memory: String,
    pub cpus: f64,
    /// Maximum number of processes and threads in a workspace.
    pub pids_limit: u32,
    /// `nofile` ulimit.
    pub nofile: u32,
    /// `nproc` ulimit.
    pub nproc: u32,
    /// Mount the image read-only, with tmpfs `/tmp` and `/run`.
    pub read_only_root: bool,
    /// Stop workspaces nobody used for this many minutes (0: never).
    pub idle_stop_minutes: u64,
    /// Tear down a terminal no client watched for this many minutes.
    pub terminal_idle_minutes: u64,
    /// Stopped containers kept ready for fast creation with the default settings.
    pub pool_size: u32,
    /// The most memory any one workspace may ask for (`--memory`, a restored backup).
    pub max_memory: String,
    /// The most CPUs any one workspace may ask for.
    pub max_cpus: f64,
    /// The highest process limit any one workspace may ask for.
    pub max_pids: u32,
    /// The most file bytes one backup may hold, and one restore may write.
    pub max_backup_bytes: String,
    /// `aicockpit serve`: the most workspaces one user who is not an admin
    /// may own (create or restore through the API); 0 for no limit.
    pub max_per_user: u32,
    /// `aicockpit serve`: the most long-lived connections (language-server
    /// sessions, terminal connections, chat streams, exec runs) one user
    /// may hold open at once.
    pub max_connections_per_user: u32,
    /// `aicockpit serve`: the most terminal shells one user may have open
    /// (each lives on for `terminal_idle_minutes` after its last client).
    pub max_terminals_per_user: u32,
}

impl Default for WorkspacesConfig {
    fn default() -> Self {
        WorkspacesConfig {
            backend: "docker".to_string(),
            default_image: "aicockpit/workspace:latest".to_string(),
            network: "none".to_string(),
            memory: "2g".to_string(),
            cpus: 2.0,
            pids_limit: 512,
            nofile: 4096,
            nproc: 4096,
            read_only_root: true,
            idle_stop_minutes: 120,
            terminal_idle_minutes: 10,
            pool_size: 0,
            max_memory: "16g".to_string(),
            max_cpus: 8.0,
            max_pids: 4096,
            max_backup_bytes: "32g".to_string(),
            max_per_user: 10,
            max_connections_per_user: 32,
            max_terminals_per_user: 16,
        }
    }
}

/// The most `index.max_file_bytes` may be: every project file read is
/// bounded by it, and source files larger than this are not code anyone edits.
pub const MAX_FILE_BYTES_CAP: u64 = 64 << 20;

/// The most parser threads `index.threads` may ask for. Every thread of
/// the pool starts when an index opens, so a huge count (an editor setting
/// of 65535) would stall or exhaust the machine; no parse speeds up past a
/// few dozen threads anyway.
pub const MAX_INDEX_THREADS: usize = 256;

/// The longest `index.update_debounce_ms`: a minute. Beyond it edits reach
/// the index on disk so late (`u64::MAX`: never) that other processes and a
/// crash lose them.
pub const MAX_UPDATE_DEBOUNCE_MS: u64 = 60_000;

/// The most `search.max_workspace_symbols` may be: every `workspace/symbol`
/// request (one per keystroke in a symbol picker) builds and sends that many
/// results, and far fewer are ever looked at.
pub const MAX_WORKSPACE_SYMBOLS_CAP: usize = 10_000;

/// Environment variables that name paths rather than settings.
const PATH_VARIABLES: &[&str] = &[
    "AICOCKPIT_CONFIG",
    "AICOCKPIT_CACHE_DIR",
    "AICOCKPIT_DATA_DIR",
];

impl Config {
    /// Defaults, then the config file if it exists, then `AICOCKPIT_*` variables.
    pub fn load(paths: &Paths) -> Result<Config, ConfigError> {
        let mut config = Config::load_file(&paths.config_file)?;
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Defaults and the file (if it exists), without the environment.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse_toml(&text, &path.display().to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::parse_toml(text, "config text")
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Write the config as TOML, creating the folder.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|error| ConfigError::Parse {
            origin: path.display().to_string(),
            message: error.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ConfigError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, text).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Apply `AICOCKPIT_<SECTION>_<KEY>=value` overrides for scalar keys,
    /// e.g. `AICOCKPIT_INDEX_MAX_FILE_BYTES=2000000` or `AICOCKPIT_AI_ACTIVE=openai`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut tree = self.to_json();
        let mut changed = false;
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("AICOCKPIT_") else {
                continue;
            };
            if PATH_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let Some((section, key)) = rest.split_once('_') else {
                continue;
            };
            let Some(slot) = tree
                .get_mut(section)
                .and_then(|section| section.get_mut(key))
            else {
                continue;
            };
            *slot = match slot {
                serde_json::Value::Number(_) => {
                    serde_json::from_str(&value).map_err(|_| ConfigError::Invalid {
                        key: format!("{section}.{key} (from {name})"),
                        message: format!("expected a number, got {value:?}"),
                    })?
                }
                serde_json::Value::Bool(_) => {
                    serde_json::Value::Bool(parse_bool(&value).ok_or_else(|| {
                        ConfigError::Invalid {
                            key: format!("{section}.{key} (from {name})"),
                            message: format!(
                                "expected a boolean (1, true, yes, on or 0, false, no, off), got {value:?}"
                            ),
                        }
                    })?)
                }
                serde_json::Value::String(_) | serde_json::Value::Null => {
                    serde_json::Value::String(value)
                }
                _ => continue,
            };
            changed = true;
        }
        if changed {
            *self = Config::from_json(tree, "environment")?;
        }
        Ok(())
    }

    /// Merge client settings (same shape as the file, at the top level or under
    /// `aicockpit`). On error the config is left unchanged.
    pub fn apply_overlay(&mut self, overlay: &serde_json::Value) -> Result<(), ConfigError> {
        let overlay = overlay.get("aicockpit").unwrap_or(overlay);
        if overlay.is_null() {
            return Ok(());
        }
        if !overlay.is_object() {
            return Err(ConfigError::Parse {
                origin: "client settings".into(),
                message: "expected an object".into(),
            });
        }
        let mut tree = self.to_json();
        merge(&mut tree, overlay);
        *self = Config::from_json(tree, "client settings")?;
        Ok(())
    }

    /// Client settings (from an editor, possibly from a repository's
    /// workspace settings) may not change where a service's key goes: no new
    /// `kind`, `base_url`, Azure `deployment` or `api_key_env` for a service
    /// of the file, and no `api_key_env` on a service the client adds. Call
    /// it on the file's config (never on one earlier settings changed), so
    /// dropping a service and adding it back elsewhere is a move too.
    pub fn check_client_overlay(&self, next: &Config) -> Result<(), ConfigError> {
        let raised = |key: &str, file: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message: format!(
                    "editor settings may lower this limit but not raise it above {file} (the config file's); edit the config file"
                ),
            })
        };
        // The size bound protects the server from huge and sparse files a
        // project (or a workspace container) plants: an editor may lower it,
        // never raise it.
        if next.index.max_file_bytes > self.index.max_file_bytes {
            return raised(
                "index.max_file_bytes",
                self.index.max_file_bytes.to_string(),
            );
        }
        // Parser threads all start when the index opens: a repository's
        // editor settings may ask for fewer than the file, never more. `0`
        // (one per core) is compared as the count it stands for.
        if next.index.parser_threads() > self.index.parser_threads() {
            let file = match self.index.threads {
                0 => format!("{} (one per core)", self.index.parser_threads()),
                threads => threads.to_string(),
            };
            return raised("index.threads", file);
        }
        // The guard that keeps a huge project from being embedded on this
        // CPU for hours is the user's: the project's settings may not lift it.
        if next.search.local_max_chunks > self.search.local_max_chunks {
            return raised(
                "search.local_max_chunks",
                self.search.local_max_chunks.to_string(),
            );
        }
        // A model folder is code the server loads: only the config file names it.
        if next.search.local_model != self.search.local_model {
            return Err(ConfigError::Invalid {
                key: "search.local_model".into(),
                message: "editor settings may not choose the model folder; edit the config file"
                    .into(),
            });
        }
        for service in &next.ai.services {
            let key = format!("ai.services[{}]", service.name);
            match self.ai.services.iter().find(|s| s.name == service.name) {
                Some(before) if before.base_url != service.base_url => {
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.base_url"),
                        message: "editor settings may not move a configured service; edit the config file".into(),
                    });
                }
                Some(before)
                    if before.kind != service.kind
                        || (before.kind == ServiceKind::Azure
                            && before.deployment != service.deployment) =>
                {
                    let field = if before.kind != service.kind {
                        "kind"
                    } else {
                        "deployment"
                    };
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.{field}"),
                        message: "editor settings may not change where a configured service's requests go; edit the config file".into(),
                    });
                }
                Some(before) if before.api_key_env != service.api_key_env => {
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.api_key_env"),
                        message: "editor settings may not change where a key is read from; edit the config file".into(),
                    });
                }
                None if service.api_key_env.is_some() => {
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.api_key_env"),
                        message: "services added by editor settings may not read keys; add it with `aicockpit ai add`".into(),
                    });
                }
                // The project's code goes to the active service: settings a
                // repository can write send it nowhere off this machine.
                None if !is_loopback_url(&service.base_url) => {
                    return Err(ConfigError::Invalid {
                        key: format!("{key}.base_url"),
                        message: "services added by editor settings must run on this machine (a localhost or 127.0.0.1 URL); add others with `aicockpit ai add`".into(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn from_json(tree: serde_json::Value, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_json::from_value(tree).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message,
            })
        };
        if self.index.max_file_bytes == 0 || self.index.max_file_bytes > MAX_FILE_BYTES_CAP {
            return invalid(
                "index.max_file_bytes",
                format!("must be greater than 0 and at most {MAX_FILE_BYTES_CAP} (64 MiB)"),
            );
        }
        if self.index.threads > MAX_INDEX_THREADS {
            return invalid(
                "index.threads",
                format!("must be at most {MAX_INDEX_THREADS} (0 means one per core)"),
            );
        }
        if self.index.update_debounce_ms > MAX_UPDATE_DEBOUNCE_MS {
            return invalid(
                "index.update_debounce_ms",
                format!("must be at most {MAX_UPDATE_DEBOUNCE_MS} (a minute)"),
            );
        }
        if !(1..=1_000_000).contains(&self.completion.max_context_tokens) {
            return invalid(
                "completion.max_context_tokens",
                "must be between 1 and 1000000".into(),
            );
        }
        if self.completion.debounce_ms > 10_000 {
            return invalid("completion.debounce_ms", "must be at most 10000".into());
        }
        if self.search.max_results == 0 {
            return invalid("search.max_results", "must be greater than 0".into());
        }
        if self.search.fusion_depth == 0 {
            return invalid("search.fusion_depth", "must be greater than 0".into());
        }
        for (key, weight) in [
            ("search.text_weight", self.search.text_weight),
            ("search.semantic_weight", self.search.semantic_weight),
        ] {
            if !(weight.is_finite() && weight >= 0.0) {
                return invalid(key, "must be a number of 0 or more".into());
            }
        }
        if self.search.approximate_probe == 0 {
            return invalid("search.approximate_probe", "must be greater than 0".into());
        }
        if self.search.embedding_batch == 0 {
            return invalid("search.embedding_batch", "must be greater than 0".into());
        }
        if !(1..=MAX_WORKSPACE_SYMBOLS_CAP).contains(&self.search.max_workspace_symbols) {
            return invalid(
                "search.max_workspace_symbols",
                format!("must be between 1 and {MAX_WORKSPACE_SYMBOLS_CAP}"),
            );
        }
        if !matches!(self.workspaces.backend.as_str(), "docker" | "local") {
            return invalid(
                "workspaces.backend",
                format!(
                    "{:?} is not \"docker\" or \"local\"",
                    self.workspaces.backend
                ),
            );
        }
        if self.workspaces.cpus.is_nan() || self.workspaces.cpus <= 0.0 {
            return invalid("workspaces.cpus", "must be greater than 0".into());
        }
        if self.workspaces.pids_limit < 8 {
            return invalid("workspaces.pids_limit", "must be at least 8".into());
        }
        if self.workspaces.max_connections_per_user == 0 {
            return invalid(
                "workspaces.max_connections_per_user",
                "must be at least 1 (the web IDE holds two: its language server and a terminal)"
                    .into(),
            );
        }
        if self.workspaces.max_terminals_per_user == 0 {
            return invalid(
                "workspaces.max_terminals_per_user",
                "must be at least 1".into(),
            );
        }
        if self.workspaces.max_pids < self.workspaces.pids_limit {
            return invalid(
                "workspaces.max_pids",
                "must be at least workspaces.pids_limit".into(),
            );
        }
        if !(self.workspaces.max_cpus.is_finite()
            && self.workspaces.max_cpus >= self.workspaces.cpus)
        {
            return invalid(
                "workspaces.max_cpus",
                "must be a number at least workspaces.cpus".into(),
            );
        }
        for (position, service) in self.ai.services.iter().enumerate() {
            let key = format!("ai.services[{position}]");
            if service.name.trim().is_empty() {
                return invalid(&format!("{key}.name"), "must not be empty".into());
            }
            if self.ai.services[..position]
                .iter()
                .any(|other| other.name == service.name)
            {
                return invalid(
                    &format!("{key}.name"),
                    format!("{:?} is used by another service", service.name),
                );
            }
            if !(service.base_url.starts_with("http://")
                || service.base_url.starts_with("https://"))
            {
                return invalid(
                    &format!("{key}.base_url"),
                    format!("{:?} is not an http(s) URL", service.base_url),
                );
            }
            if service.kind == ServiceKind::Azure && service.deployment.is_none() {
                return invalid(
                    &format!("{key}.deployment"),
                    "is required for kind = \"azure\"".into(),
                );
            }
        }
        if let Some(active) = &self.ai.active {
            if !self
                .ai
                .services
                .iter()
                .any(|service| &service.name == active)
            {
                return invalid("ai.active", format!("no service is named {active:?}"));
            }
        }
        Ok(())
    }
}

/// A boolean from an environment variable: `1`/`true`/`yes`/`on` or
/// `0`/`false`/`no`/`off`, in any case; anything else is `None`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Deep-merge `overlay` into `base`: objects merge key by key, anything else replaces.
/// Whether a service URL names this machine: `http(s)` to `localhost`, a
/// 127.0.0.0/8 address or `[::1]`, as the HTTP client will parse it.
fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

fn merge(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(
                    base.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_local_services() {
        let config = Config::default();
        assert_eq!(config.ai.services.len(), 2);
        assert_eq!(config.ai.services[0].base_url, "http://127.0.0.1:1234/v1");
        config.validate().unwrap();
    }

    #[test]
    fn a_llamacpp_service_parses_and_round_trips() {
        let text = "[ai]\nactive = \"local\"\n\n[[ai.services]]\nname = \"local\"\nkind = \"llamacpp\"\nbase_url = \"http://127.0.0.1:8080\"\n";
        let config = Config::from_toml_str(text).unwrap();
        assert_eq!(config.ai.services[0].kind, ServiceKind::Llamacpp);
        let saved = toml::to_string_pretty(&config).unwrap();
        assert!(saved.contains("kind = \"llamacpp\""), "{saved}");
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let error = Config::from_toml_str("[index]\nmax_file_byte = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("max_file_byte"), "{error}");
        let error = Config::from_toml_str("[index]\nmax_file_bytes = 0\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("index.max_file_bytes"), "{error}");
        let error = Config::from_toml_str("[ai]\nactive = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("ai.active"), "{error}");
    }

    #[test]
    fn environment_overrides_scalars_and_rejects_bad_numbers() {
        let mut config = Config::default();
        config
            .apply_env([
                (
                    "AICOCKPIT_INDEX_MAX_FILE_BYTES".to_string(),
                    "4096".to_string(),
                ),
                ("AICOCKPIT_AI_ACTIVE".to_string(), "ollama".to_string()),
                ("AICOCKPIT_CACHE_DIR".to_string(), "/x".to_string()),
                ("OTHER".to_string(), "1".to_string()),
            ])
            .unwrap();
        assert_eq!(config.index.max_file_bytes, 4096);
        assert_eq!(config.ai.active.as_deref(), Some("ollama"));
        let error = config
            .apply_env([(
                "AICOCKPIT_SEARCH_MAX_RESULTS".to_string(),
                "many".to_string(),
            )])
            .unwrap_err()
            .to_string();
        assert!(error.contains("search.max_results"), "{error}");
    }

    #[test]
    fn environment_booleans_accept_common_spellings_and_reject_the_rest() {
        for (value, expected) in [
            ("1", true),
            ("TRUE", true),
            ("Yes", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("NO", false),
            ("Off", false),
        ] {
            let mut config = Config::default();
            config.workspaces.read_only_root = !expected;
            config
                .apply_env([(
                    "AICOCKPIT_WORKSPACES_READ_ONLY_ROOT".to_string(),
                    value.to_string(),
                )])
                .unwrap();
            assert_eq!(config.workspaces.read_only_root, expected, "{value}");
        }
        let mut config = Config::default();
        let error = config
            .apply_env([(
                "AICOCKPIT_WORKSPACES_READ_ONLY_ROOT".to_string(),
                "ture".to_string(),
            )])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("AICOCKPIT_WORKSPACES_READ_ONLY_ROOT")
                && error.contains("1, true, yes, on"),
            "{error}"
        );
        assert!(config.workspaces.read_only_root, "left unchanged on error");
    }

    #[test]
    fn editor_settings_may_lower_the_file_size_bound_but_never_raise_it() {
        let file = Config::default();
        let mut raised = file.clone();
        // Beyond the absolute cap the overlay itself is refused…
        assert!(raised
            .apply_overlay(
                &serde_json::json!({"aicockpit": {"index": {"max_file_bytes": 1u64 << 36}}})
            )
            .is_err());
        // …and below it, raising the file's bound is refused by the check.
        raised
            .apply_overlay(
                &serde_json::json!({"aicockpit": {"index": {"max_file_bytes": 32u64 << 20}}}),
            )
            .unwrap();
        let error = file
            .check_client_overlay(&raised)
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("index.max_file_bytes")),
            "{error:?}"
        );
        let mut lowered = file.clone();
        lowered
            .apply_overlay(&serde_json::json!({"index": {"max_file_bytes": 1000}}))
            .unwrap();
        assert!(file.check_client_overlay(&lowered).is_ok());
        let error = Config::from_toml_str("[index]\nmax_file_bytes = 100_000_000_000\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most"), "{error}");
    }

    #[test]
    fn thread_counts_and_debounces_past_their_bounds_are_refused_naming_the_key() {
        for (text, key) in [
            ("[index]\nthreads = 257\n", "index.threads"),
            ("[index]\nthreads = 65535\n", "index.threads"),
            (
                "[index]\nupdate_debounce_ms = 60001\n",
                "index.update_debounce_ms",
            ),
            (
                "[index]\nupdate_debounce_ms = 9223372036854775807\n",
                "index.update_debounce_ms",
            ),
            (
                "[search]\nmax_workspace_symbols = 10001\n",
                "search.max_workspace_symbols",
            ),
        ] {
            let error = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(
                error.contains(key) && (error.contains("at most") || error.contains("between")),
                "{text}: {error}"
            );
        }
        for text in [
            "[index]\nthreads = 256\nupdate_debounce_ms = 60000\n",
            "[index]\nthreads = 0\nupdate_debounce_ms = 0\n",
            "[search]\nmax_workspace_symbols = 10000\n",
        ] {
            Config::from_toml_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        // The same bounds hold for the environment and for editor settings.
        let mut config = Config::default();
        let error = config
            .apply_env([("AICOCKPIT_INDEX_THREADS".to_string(), "65535".to_string())])
            .unwrap_err()
            .to_string();
        assert!(error.contains("index.threads"), "{error}");
        let error = config
            .apply_overlay(&serde_json::json!({"index": {"threads": 65535}}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("index.threads"), "{error}");
        let error = config
            .apply_overlay(&serde_json::json!({"index": {"update_debounce_ms": u64::MAX}}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("index.update_debounce_ms"), "{error}");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn editor_settings_may_lower_the_parser_threads_but_never_raise_them() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let with_threads = |threads: usize| {
            let mut config = Config::default();
            config.index.threads = threads;
            config
        };
        let check = |file: usize, editor: usize| {
            let file = with_threads(file);
            let mut next = file.clone();
            next.apply_overlay(&serde_json::json!({"aicockpit": {"index": {"threads": editor}}}))
                .unwrap();
            file.check_client_overlay(&next).map_err(|e| e.to_string())
        };
        // An explicit count may be lowered, never raised.
        assert!(check(4, 2).is_ok());
        assert!(check(4, 4).is_ok());
        let error = check(4, 5).unwrap_err();
        assert!(
            error.contains("index.threads") && error.contains("above 4"),
            "{error}"
        );
        // 0 (one per core) in the file allows up to one per core…
        assert!(check(0, 1).is_ok());
        assert!(check(0, cores).is_ok());
        assert!(check(0, 0).is_ok());
        let error = check(0, cores + 1).unwrap_err();
        assert!(
            error.contains("index.threads") && error.contains("one per core"),
            "{error}"
        );
        // …and 0 from the editor is one per core, a raise over a smaller count.
        assert_eq!(check(1, 0).is_ok(), cores == 1);
        assert!(check(cores, 0).is_ok());
    }

    #[test]
    fn editor_settings_may_lower_the_local_embedding_guard_but_never_raise_it() {
        let file = Config::default();
        let mut raised = file.clone();
        raised
            .apply_overlay(&serde_json::json!({"search": {"local_max_chunks": usize::MAX}}))
            .unwrap();
        let error = file.check_client_overlay(&raised).unwrap_err().to_string();
        assert!(error.contains("search.local_max_chunks"), "{error}");
        let mut lowered = file.clone();
        lowered
            .apply_overlay(&serde_json::json!({"search": {"local_max_chunks": 10}}))
            .unwrap();
        file.check_client_overlay(&lowered).unwrap();
    }

    #[test]
    fn overlays_merge_at_top_level_or_under_aicockpit_and_keep_config_on_error() {
        let mut config = Config::default();
        config
            .apply_overlay(&serde_json::json!({"index": {"max_file_bytes": 10}}))
            .unwrap();
        assert_eq!(config.index.max_file_bytes, 10);
        assert_eq!(config.search, SearchConfig::default());
        let before = config.clone();
        assert!(config
            .apply_overlay(&serde_json::json!({"aicockpit": {"index": {"max_file_bytes": -1}}}))
            .is_err());
        assert_eq!(config, before);
    }

    #[test]
    fn client_settings_cannot_redirect_keys() {
        let file = Config::from_toml_str(
            "[[ai.services]]\nname = \"cloud\"\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n",
        )
        .unwrap();
        let moved = serde_json::json!({"ai": {"services": [{"name": "cloud", "kind": "openai", "base_url": "https://evil.example/v1", "api_key_env": "OPENAI_API_KEY"}]}});
        let mut next = file.clone();
        next.apply_overlay(&moved).unwrap();
        assert!(file
            .check_client_overlay(&next)
            .unwrap_err()
            .to_string()
            .contains("ai.services[cloud].base_url"));
        let added = serde_json::json!({"ai": {"services": [{"name": "x", "kind": "custom", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "AWS_SECRET_ACCESS_KEY"}]}});
        let mut next = file.clone();
        next.apply_overlay(&added).unwrap();
        assert!(file.check_client_overlay(&next).is_err());
        let rekinded = serde_json::json!({"ai": {"services": [{"name": "cloud", "kind": "custom", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY"}]}});
        let mut next = file.clone();
        next.apply_overlay(&rekinded).unwrap();
        assert!(file
            .check_client_overlay(&next)
            .unwrap_err()
            .to_string()
            .contains("ai.services[cloud].kind"));
        let models = serde_json::json!({"ai": {"services": [{"name": "cloud", "kind": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY", "chat_model": "gpt-4o"}]}});
        let mut next = file.clone();
        next.apply_overlay(&models).unwrap();
        file.check_client_overlay(&next).unwrap();
    }

    /// A service that only editor settings name would receive the project's
    /// code: it must be on this machine, however its URL is spelled.
    #[test]
    fn services_added_by_editor_settings_stay_on_this_machine() {
        let file = Config::default();
        let add = |url: &str| {
            let mut next = file.clone();
            next.apply_overlay(&serde_json::json!({"ai": {"active": "x", "services": [{"name": "x", "kind": "custom", "base_url": url}]}}))
                .unwrap();
            file.check_client_overlay(&next)
        };
        for url in [
            "http://127.0.0.1:1234/v1",
            "http://localhost:11434",
            "https://LOCALHOST/v1",
            "http://127.1.2.3:8080/v1",
            "http://[::1]:8080/v1",
        ] {
            add(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        for url in [
            "https://evil.example/v1",
            "http://127.0.0.1.evil.example/v1",
            "http://127.0.0.1@evil.example/v1",
            "http://evil.example\\@127.0.0.1/v1",
            "http://localhost.evil.example/v1",
            "http://10.0.0.5/v1",
        ] {
            let error = add(url).expect_err(url).to_string();
            assert!(error.contains("ai.services[x].base_url"), "{url}: {error}");
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.toml");
        let mut config = Config::default();
        config.search.max_results = 3;
        config.save(&path).unwrap();
        assert_eq!(Config::load_file(&path).unwrap(), config);
        assert_eq!(
            Config::load_file(&dir.path().join("missing.toml")).unwrap(),
            Config::default()
        );
    }
}
