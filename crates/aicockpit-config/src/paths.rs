//! Where AiCockpit keeps its files: XDG base directories with overrides.

use std::path::PathBuf;

/// The config file and the cache and data folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    /// Indexes live under `<cache_dir>/index/`.
    pub cache_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The XDG base folders themselves (`$XDG_CONFIG_HOME` or `~/.config`,
    /// and the cache and data ones), which hold other programs' settings.
    pub xdg_roots: Vec<PathBuf>,
}

impl Paths {
    /// Paths from the process environment.
    pub fn from_env() -> Paths {
        Paths::from_vars(|name| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Paths from a variable lookup: `AICOCKPIT_CONFIG`, `AICOCKPIT_CACHE_DIR`,
    /// `AICOCKPIT_DATA_DIR`, then `XDG_*_HOME`, then `$HOME/.config` and friends.
    pub fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> Paths {
        let home = var("HOME").unwrap_or_else(std::env::temp_dir);
        let root = |xdg: &str, fallback: &str| var(xdg).unwrap_or_else(|| home.join(fallback));
        let base = |xdg: &str, fallback: &str| root(xdg, fallback).join("aicockpit");
        Paths {
            xdg_roots: vec![
                root("XDG_CONFIG_HOME", ".config"),
                root("XDG_CACHE_HOME", ".cache"),
                root("XDG_DATA_HOME", ".local/share"),
            ],
            config_file: var("AICOCKPIT_CONFIG")
                .unwrap_or_else(|| base("XDG_CONFIG_HOME", ".config").join("config.toml")),
            cache_dir: var("AICOCKPIT_CACHE_DIR")
                .unwrap_or_else(|| base("XDG_CACHE_HOME", ".cache")),
            data_dir: var("AICOCKPIT_DATA_DIR")
                .unwrap_or_else(|| base("XDG_DATA_HOME", ".local/share")),
        }
    }
}

impl Paths {
    /// Folders no workspace may be, hold or lie within, whether they exist
    /// yet or not: AiCockpit's own (config, cache, data) and the XDG roots.
    pub fn protected_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.cache_dir.clone(), self.data_dir.clone()];
        if let Some(config_dir) = self.config_file.parent() {
            dirs.push(config_dir.to_path_buf());
        }
        dirs.extend(self.xdg_roots.iter().cloned());
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_beat_xdg_which_beats_home() {
        let paths = Paths::from_vars(|name| match name {
            "HOME" => Some("/home/u".into()),
            "XDG_CACHE_HOME" => Some("/xdg/cache".into()),
            "AICOCKPIT_DATA_DIR" => Some("/data".into()),
            _ => None,
        });
        assert_eq!(
            paths.config_file,
            PathBuf::from("/home/u/.config/aicockpit/config.toml")
        );
        assert_eq!(paths.cache_dir, PathBuf::from("/xdg/cache/aicockpit"));
        assert_eq!(paths.data_dir, PathBuf::from("/data"));
        let protected = paths.protected_dirs();
        for root in ["/home/u/.config", "/xdg/cache", "/home/u/.local/share"] {
            assert!(
                protected.contains(&PathBuf::from(root)),
                "{root}: {protected:?}"
            );
        }
        assert!(protected.contains(&PathBuf::from("/home/u/.config/aicockpit")));
    }
}
