//! API keys: read from an environment variable named in the config, or from
//! a file the server stored with mode 0600. A key is never printed.

use std::path::{Path, PathBuf};

use aicockpit_config::ServiceConfig;

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
}

/// Where a service's stored key lives: `<data_dir>/keys/<name>`, with every
/// character but ASCII letters, digits, `-` and `_` replaced by `_`.
pub fn key_file(data_dir: &Path, service: &str) -> PathBuf {
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

/// The key of a service and where it came from: its `api_key_env` variable
/// (looked up with `var`), else a stored key file under `data_dir`.
pub fn resolve_key(
    service: &ServiceConfig,
    data_dir: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> (Option<ApiKey>, KeySource) {
    if let Some(variable) = &service.api_key_env {
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
    let path = key_file(data_dir, &service.name);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            (Some(ApiKey::new(text.trim())), KeySource::Stored { path })
        }
        _ => (None, KeySource::None),
    }
}

/// Store a key for a service in `<data_dir>/keys/<service>` with mode 0600
/// (created with that mode, so it is never readable by others, even briefly).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_show_in_debug_or_display() {
        let key = ApiKey::new("sk-secret-123");
        assert_eq!(format!("{key:?} {key}"), "ApiKey(***) ***");
    }

    #[test]
    fn env_keys_win_and_stored_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut service = ServiceConfig {
            name: "cloud".into(),
            ..ServiceConfig::default()
        };
        assert_eq!(
            resolve_key(&service, dir.path(), |_| None).1,
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
        let (key, source) = resolve_key(&service, dir.path(), |_| None);
        assert_eq!(key.unwrap().expose(), "stored-key");
        assert_eq!(source, KeySource::Stored { path });
        service.api_key_env = Some("MY_KEY".into());
        let (key, source) = resolve_key(&service, dir.path(), |name| {
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
    }
}
