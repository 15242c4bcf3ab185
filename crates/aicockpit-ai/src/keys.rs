//! API keys: read from an environment variable named in the config, or from
//! a file the server stored with mode 0600. A key is never printed.
//!
//! This module is the one place that decides whether a service gets a key
//! ([`resolve_key`], [`require_key`], [`client_for`]); the CLI and the engine
//! both go through it. The rule: a stored or environment key belongs to the
//! service of that name in the user's config file, and goes only where that
//! file sends the service (kind, `base_url`, Azure deployment). Settings from
//! an editor may rename, drop, add or move services, but a service they
//! added or moved never gets a key.

use std::io::Read;
use std::path::{Path, PathBuf};

use aicockpit_config::{AiConfig, ServiceConfig, ServiceKind};

use crate::{AiError, Client, ClientOptions};

/// The most bytes a key file may hold.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// An API key. `Debug` and `Display` show `***`, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that puts it in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where a service's key comes from, for listings (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum KeySource {
    /// No key configured (local services need none).
    None,
    /// The environment variable, and whether it is set.
    Env { variable: String, set: bool },
    /// A key file stored with mode 0600.
    Stored { path: PathBuf },
    /// The service is not the one the config file describes under this name
    /// (added or moved by editor settings): no key is sent to it.
    Withheld { reason: String },
    /// A key file of the old layout that two services of the config file
    /// would both read: used by neither until the key is stored again.
    Ambiguous {
        path: PathBuf,
        services: Vec<String>,
    },
}

/// Where a service's stored key lives: `<data_dir>/keys/<name>.key` with the
/// name percent-encoded (every byte but ASCII letters, digits, `-` and `_`
/// becomes `%XX`), so two names never share a file (`cloud.ai` is
/// `cloud%2Eai.key`, `cloud_ai` is `cloud_ai.key`). The `.key` suffix, which
/// the old layout could not produce, tells new files from old ones.
pub fn key_file(data_dir: &Path, service: &str) -> PathBuf {
    let mut encoded = String::with_capacity(service.len());
    for byte in service.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded.push_str(".key");
    data_dir.join("keys").join(encoded)
}

/// The file name of the old layout, which replaced those bytes by `_` and so
/// let `cloud.ai` and `cloud_ai` share a key.
fn legacy_key_file(data_dir: &Path, service: &str) -> PathBuf {
    let safe: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("keys").join(safe)
}

/// The key of `service` and where it came from. `file` is the `[ai]` section
/// of the user's config file (with environment overrides, never editor
/// settings): only a service named there, still pointing where the file
/// says, gets a key, read from the file's `api_key_env` variable (looked up
/// with `var`) or else its stored key file under `data_dir`.
pub fn resolve_key(
    service: &ServiceConfig,
    file: &AiConfig,
    data_dir: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> (Option<ApiKey>, KeySource) {
    let Some(trusted) = file.services.iter().find(|s| s.name == service.name) else {
        return (
            None,
            KeySource::Withheld {
                reason: "the config file has no service of this name".into(),
            },
        );
    };
    if let Some(difference) = destination_difference(trusted, service) {
        return (
            None,
            KeySource::Withheld {
                reason: format!("its {difference} is not the config file's"),
            },
        );
    }
    if let Some(variable) = &trusted.api_key_env {
        let value = var(variable).filter(|value| !value.trim().is_empty());
        let set = value.is_some();
        return (
            value.map(|v| ApiKey::new(v.trim())),
            KeySource::Env {
                variable: variable.clone(),
                set,
            },
        );
    }
    let path = key_file(data_dir, &trusted.name);
    if let Some(key) = read_key_file(&path) {
        return (Some(key), KeySource::Stored { path });
    }
    // The old layout: used (and moved to the new name) only when no other
    // service of the file maps to the same old name.
    let legacy = legacy_key_file(data_dir, &trusted.name);
    if std::fs::symlink_metadata(&legacy).is_err() {
        return (None, KeySource::None);
    }
    let sharing: Vec<String> = file
        .services
        .iter()
        .filter(|s| legacy_key_file(data_dir, &s.name) == legacy)
        .map(|s| s.name.clone())
        .collect();
    if sharing.len() > 1 {
        return (
            None,
            KeySource::Ambiguous {
                path: legacy,
                services: sharing,
            },
        );
    }
    match read_key_file(&legacy) {
        Some(key) => {
            let path = match std::fs::rename(&legacy, &path) {
                Ok(()) => path,
                Err(_) => legacy,
            };
            (Some(key), KeySource::Stored { path })
        }
        None => (None, KeySource::None),
    }
}

/// [`resolve_key`], with a named variable that is not set as the error that
/// says which variable to set, before any request is made.
pub fn require_key(
    service: &ServiceConfig,
    file: &AiConfig,
    data_dir: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<ApiKey>, AiError> {
    match resolve_key(service, file, data_dir, var) {
        (
            _,
            KeySource::Env {
                variable,
                set: false,
            },
        ) => Err(AiError::MissingKey {
            service: service.name.clone(),
            variable,
        }),
        (_, KeySource::Ambiguous { path, services }) => Err(AiError::Config {
            service: service.name.clone(),
            message: format!(
                "the key file {} of an older AiCockpit is shared by the services {}; store the key again with `aicockpit ai add … --api-key-stdin` and delete that file",
                path.display(),
                services.join(", ")
            ),
        }),
        (key, _) => Ok(key),
    }
}

/// A client for `service` with the key [`require_key`] allows it.
pub fn client_for(
    service: ServiceConfig,
    file: &AiConfig,
    data_dir: &Path,
    var: impl Fn(&str) -> Option<String>,
    options: ClientOptions,
) -> Result<Client, AiError> {
    let key = require_key(&service, file, data_dir, var)?;
    Client::new(service, key, options)
}

/// Which part of where a request goes differs from the file's service.
fn destination_difference(file: &ServiceConfig, given: &ServiceConfig) -> Option<&'static str> {
    if file.kind != given.kind {
        return Some("kind");
    }
    if file.base_url != given.base_url {
        return Some("base_url");
    }
    if file.kind == ServiceKind::Azure && file.deployment != given.deployment {
        return Some("deployment");
    }
    if file.api_key_env != given.api_key_env {
        return Some("api_key_env");
    }
    None
}

/// A stored key: a regular file (never through a symlink), at most
/// [`MAX_KEY_FILE_BYTES`], not empty.
fn read_key_file(path: &Path) -> Option<ApiKey> {
    let metadata = std::fs::symlink_metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A symlink swapped in after the check above is refused, not followed.
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| ApiKey::new(key))
}

/// Store a key for a service in [`key_file`] with mode 0600 (created with
/// that mode, so it is never readable by others, even briefly). An old-layout
/// file of the same service is removed when no other service could share it.
pub fn store_key(data_dir: &Path, service: &str, key: &ApiKey) -> std::io::Result<PathBuf> {
    let path = key_file(data_dir, service);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(&path)?;
    file.write_all(key.expose().as_bytes())?;
    Ok(path)
}

/// Delete the stored key of a removed service, and its old-layout file when
/// none of the `remaining` services maps to that file (otherwise a service
/// added later under the old file's name would read it as its own).
pub fn remove_keys(data_dir: &Path, service: &str, remaining: &AiConfig) {
    let _ = std::fs::remove_file(key_file(data_dir, service));
    let legacy = legacy_key_file(data_dir, service);
    if !remaining
        .services
        .iter()
        .any(|s| legacy_key_file(data_dir, &s.name) == legacy)
    {
        let _ = std::fs::remove_file(legacy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(services: &[ServiceConfig]) -> AiConfig {
        AiConfig {
            active: None,
            services: services.to_vec(),
        }
    }

    fn service(name: &str, url: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            kind: ServiceKind::Custom,
            base_url: url.into(),
            ..ServiceConfig::default()
        }
    }

    #[test]
    fn keys_never_show_in_debug_or_display() {
        let key = ApiKey::new("sk-secret-123");
        assert_eq!(format!("{key:?} {key}"), "ApiKey(***) ***");
    }

    #[test]
    fn env_keys_win_and_stored_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut cloud = service("cloud", "https://api.example/v1");
        let file = file_with(std::slice::from_ref(&cloud));
        assert_eq!(
            resolve_key(&cloud, &file, dir.path(), |_| None).1,
            KeySource::None
        );
        let path = store_key(dir.path(), "cloud", &ApiKey::new("stored-key")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (key, source) = resolve_key(&cloud, &file, dir.path(), |_| None);
        assert_eq!(key.unwrap().expose(), "stored-key");
        assert_eq!(source, KeySource::Stored { path });
        cloud.api_key_env = Some("MY_KEY".into());
        let file = file_with(std::slice::from_ref(&cloud));
        let (key, source) = resolve_key(&cloud, &file, dir.path(), |name| {
            (name == "MY_KEY").then(|| "env-key".into())
        });
        assert_eq!(key.unwrap().expose(), "env-key");
        assert_eq!(
            source,
            KeySource::Env {
                variable: "MY_KEY".into(),
                set: true
            }
        );
        let error = require_key(&cloud, &file, dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            matches!(
                require_key(&cloud, &file, dir.path(), |_| None),
                Err(AiError::MissingKey { .. })
            ) && error.contains("$MY_KEY is not set"),
            "{error}"
        );
    }

    #[test]
    fn names_that_used_to_share_a_key_file_no_longer_do() {
        let dir = tempfile::tempdir().unwrap();
        assert_ne!(
            key_file(dir.path(), "cloud.ai"),
            key_file(dir.path(), "cloud_ai")
        );
        assert_ne!(key_file(dir.path(), "a/b"), key_file(dir.path(), "a%2Fb"));
        assert_eq!(
            key_file(dir.path(), "cloud.ai"),
            dir.path().join("keys/cloud%2Eai.key")
        );
        assert_eq!(
            key_file(dir.path(), "cloud_ai"),
            dir.path().join("keys/cloud_ai.key")
        );
        assert_eq!(
            key_file(dir.path(), ".."),
            dir.path().join("keys/%2E%2E.key")
        );
        let dotted = service("cloud.ai", "https://a.example/v1");
        let underscored = service("cloud_ai", "https://b.example/v1");
        let file = file_with(&[dotted.clone(), underscored.clone()]);
        store_key(dir.path(), "cloud.ai", &ApiKey::new("dotted-key")).unwrap();
        let (key, _) = resolve_key(&underscored, &file, dir.path(), |_| None);
        assert!(key.is_none(), "cloud_ai does not read cloud.ai's key");
        let (key, _) = resolve_key(&dotted, &file, dir.path(), |_| None);
        assert_eq!(key.unwrap().expose(), "dotted-key");
    }

    #[test]
    fn old_key_files_are_read_only_where_one_service_maps_to_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let legacy = dir.path().join("keys/cloud_ai");
        std::fs::write(&legacy, "old-key").unwrap();
        let dotted = service("cloud.ai", "https://a.example/v1");
        let underscored = service("cloud_ai", "https://b.example/v1");
        // Both names map to the old file: neither may use it.
        let both = file_with(&[dotted.clone(), underscored.clone()]);
        for service in [&dotted, &underscored] {
            let (key, source) = resolve_key(service, &both, dir.path(), |_| None);
            assert!(key.is_none(), "{}", service.name);
            assert!(matches!(source, KeySource::Ambiguous { .. }), "{source:?}");
        }
        assert!(require_key(&dotted, &both, dir.path(), |_| None)
            .unwrap_err()
            .to_string()
            .contains("store the key again"));
        // One name only: the key is used and moved to its new name.
        let one = file_with(std::slice::from_ref(&dotted));
        let (key, source) = resolve_key(&dotted, &one, dir.path(), |_| None);
        assert_eq!(key.unwrap().expose(), "old-key");
        assert_eq!(
            source,
            KeySource::Stored {
                path: key_file(dir.path(), "cloud.ai")
            }
        );
        assert!(!legacy.exists());
        // The common case: a plain name's old file becomes `<name>.key`.
        std::fs::write(dir.path().join("keys/cloud"), "plain-key").unwrap();
        let plain = service("cloud", "https://c.example/v1");
        let (key, _) = resolve_key(
            &plain,
            &file_with(std::slice::from_ref(&plain)),
            dir.path(),
            |_| None,
        );
        assert_eq!(key.unwrap().expose(), "plain-key");
        assert!(dir.path().join("keys/cloud.key").is_file());
        assert!(!dir.path().join("keys/cloud").exists());
    }

    #[test]
    fn keys_go_only_where_the_config_file_sends_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = service("cloud", "https://api.example/v1");
        let file = file_with(std::slice::from_ref(&cloud));
        store_key(dir.path(), "cloud", &ApiKey::new("stored-key")).unwrap();
        let moved = service("cloud", "https://evil.example/v1");
        let (key, source) = resolve_key(&moved, &file, dir.path(), |_| None);
        assert!(key.is_none());
        assert!(matches!(source, KeySource::Withheld { .. }), "{source:?}");
        let rekinded = ServiceConfig {
            kind: ServiceKind::Openai,
            ..cloud.clone()
        };
        assert!(resolve_key(&rekinded, &file, dir.path(), |_| None)
            .0
            .is_none());
        // A service only the editor knows gets no key, even with a key file of its name.
        store_key(dir.path(), "editor-only", &ApiKey::new("other-key")).unwrap();
        let editor_only = service("editor-only", "https://api.example/v1");
        assert!(resolve_key(&editor_only, &file, dir.path(), |_| None)
            .0
            .is_none());
        // An editor naming a variable is not enough: the file's variable is read.
        let with_env = ServiceConfig {
            api_key_env: Some("AWS_SECRET_ACCESS_KEY".into()),
            ..cloud.clone()
        };
        assert!(
            resolve_key(&with_env, &file, dir.path(), |_| Some("x".into()))
                .0
                .is_none()
        );
        // Models may change.
        let models = ServiceConfig {
            chat_model: Some("other-model".into()),
            ..cloud.clone()
        };
        assert_eq!(
            resolve_key(&models, &file, dir.path(), |_| None)
                .0
                .unwrap()
                .expose(),
            "stored-key"
        );
    }
}
