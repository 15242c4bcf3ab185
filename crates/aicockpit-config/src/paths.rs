//! Where AiCockpit keeps its files: XDG base directories with overrides.
//!
//! The home folder is `$HOME`, else (unset, empty or relative) the one the
//! password database gives the current user. With neither, a path that needs
//! it is an error: never a shared temporary folder, where another user of the
//! machine could plant a config file that sends keys to their server.

use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The config file and the cache and data folders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    /// Indexes live under `<cache_dir>/index/`.
    pub cache_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The XDG base folders themselves (`$XDG_CONFIG_HOME` or `~/.config`,
    /// and the cache and data ones), which hold other programs' settings.
    /// Those that cannot be known (no home folder) are left out.
    pub xdg_roots: Vec<PathBuf>,
}

impl Paths {
    /// Paths from the process environment, with the home folder from the
    /// password database when `HOME` is unset, empty or relative.
    pub fn from_env() -> Result<Paths, ConfigError> {
        Paths::from_vars(with_home_fallback(
            |name| {
                std::env::var_os(name)
                    .filter(|value| !value.is_empty())
                    .map(PathBuf::from)
            },
            home_from_passwd,
        ))
    }

    /// Paths from a variable lookup: `AICOCKPIT_CONFIG`, `AICOCKPIT_CACHE_DIR`,
    /// `AICOCKPIT_DATA_DIR`, then `XDG_*_HOME`, then `$HOME/.config` and friends.
    /// Relative `XDG_*_HOME` and `HOME` values are ignored (the XDG
    /// specification calls relative ones invalid). A path that needs the
    /// home folder when `var` gives none is [`ConfigError::NoHome`].
    pub fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> Result<Paths, ConfigError> {
        let absolute = |name: &str| var(name).filter(|path| path.is_absolute());
        let home = absolute("HOME");
        let root = |xdg: &str, fallback: &str| {
            absolute(xdg).or_else(|| home.as_ref().map(|home| home.join(fallback)))
        };
        let base = |xdg: &str, fallback: &str, what: &'static str| {
            root(xdg, fallback)
                .map(|root| root.join("aicockpit"))
                .ok_or(ConfigError::NoHome { what })
        };
        let config_file = match var("AICOCKPIT_CONFIG") {
            Some(file) => file,
            None => base("XDG_CONFIG_HOME", ".config", "the config file")?.join("config.toml"),
        };
        let cache_dir = match var("AICOCKPIT_CACHE_DIR") {
            Some(dir) => dir,
            None => base("XDG_CACHE_HOME", ".cache", "the cache folder")?,
        };
        let data_dir = match var("AICOCKPIT_DATA_DIR") {
            Some(dir) => dir,
            None => base("XDG_DATA_HOME", ".local/share", "the data folder")?,
        };
        Ok(Paths {
            xdg_roots: [
                root("XDG_CONFIG_HOME", ".config"),
                root("XDG_CACHE_HOME", ".cache"),
                root("XDG_DATA_HOME", ".local/share"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            config_file,
            cache_dir,
            data_dir,
        })
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

/// `var`, except that `HOME` comes from `passwd_home` when `var` has no
/// absolute one.
fn with_home_fallback(
    var: impl Fn(&str) -> Option<PathBuf>,
    passwd_home: impl Fn() -> Option<PathBuf>,
) -> impl Fn(&str) -> Option<PathBuf> {
    move |name| match name {
        "HOME" => var(name)
            .filter(|home| home.is_absolute())
            .or_else(&passwd_home),
        _ => var(name),
    }
}

/// The current user's home folder in the password database (`getpwuid_r`),
/// if it names an absolute one.
#[cfg(unix)]
fn home_from_passwd() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: getuid has no preconditions and always succeeds.
    let uid = unsafe { libc::getuid() };
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: `passwd` is plain C data (integers and pointers), for
        // which all zeroes is a valid value.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` and `found`
        // are live locals, and `buffer` is writable for the length given.
        let code = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if code == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if code != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success `pw_dir` points at a NUL-terminated string in
        // `buffer`, which outlives this borrow.
        let dir = unsafe { std::ffi::CStr::from_ptr(entry.pw_dir) };
        let dir = Path::new(std::ffi::OsStr::from_bytes(dir.to_bytes()));
        return dir.is_absolute().then(|| dir.to_path_buf());
    }
}

#[cfg(not(unix))]
fn home_from_passwd() -> Option<PathBuf> {
    None
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
        })
        .unwrap();
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

    #[test]
    fn without_a_home_paths_that_need_one_are_an_error_not_the_temp_folder() {
        let error = Paths::from_vars(|_| None).unwrap_err().to_string();
        assert!(
            error.contains("HOME") && error.contains("AICOCKPIT_CONFIG"),
            "{error}"
        );
        // A relative HOME is no home either.
        let error = Paths::from_vars(|name| (name == "HOME").then(|| "home/u".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("the config file"), "{error}");
        // The config file set, the cache folder still needs a home.
        let error = Paths::from_vars(|name| {
            (name == "AICOCKPIT_CONFIG").then(|| "/etc/aicockpit.toml".into())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("the cache folder"), "{error}");
        // With every path given, no home is needed, and no root is guessed.
        let paths = Paths::from_vars(|name| match name {
            "AICOCKPIT_CONFIG" => Some("/c/config.toml".into()),
            "AICOCKPIT_CACHE_DIR" => Some("/cache".into()),
            "AICOCKPIT_DATA_DIR" => Some("/data".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(paths.cache_dir, PathBuf::from("/cache"));
        assert!(paths.xdg_roots.is_empty(), "{:?}", paths.xdg_roots);
        let temp = std::env::temp_dir();
        assert!(
            !paths
                .protected_dirs()
                .iter()
                .any(|dir| dir.starts_with(&temp)),
            "{paths:?}"
        );
        // So are absolute XDG folders.
        let paths = Paths::from_vars(|name| match name {
            "XDG_CONFIG_HOME" => Some("/x/config".into()),
            "XDG_CACHE_HOME" => Some("/x/cache".into()),
            "XDG_DATA_HOME" => Some("/x/data".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            paths.config_file,
            PathBuf::from("/x/config/aicockpit/config.toml")
        );
        assert_eq!(paths.xdg_roots.len(), 3);
    }

    #[test]
    fn relative_xdg_folders_are_ignored() {
        let paths = Paths::from_vars(|name| match name {
            "HOME" => Some("/home/u".into()),
            "XDG_CONFIG_HOME" => Some("config".into()),
            "XDG_CACHE_HOME" => Some("./cache".into()),
            "XDG_DATA_HOME" => Some("/xdg/data".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            paths.config_file,
            PathBuf::from("/home/u/.config/aicockpit/config.toml")
        );
        assert_eq!(paths.cache_dir, PathBuf::from("/home/u/.cache/aicockpit"));
        assert_eq!(paths.data_dir, PathBuf::from("/xdg/data/aicockpit"));
        assert_eq!(
            paths.xdg_roots,
            ["/home/u/.config", "/home/u/.cache", "/xdg/data"].map(PathBuf::from)
        );
    }

    #[test]
    fn an_unset_empty_or_relative_home_falls_back_to_the_password_database() {
        let lookup = |home: Option<&'static str>, passwd: Option<&'static str>| {
            let var = with_home_fallback(
                move |name| match name {
                    "HOME" => home.map(PathBuf::from),
                    _ => None,
                },
                move || passwd.map(PathBuf::from),
            );
            Paths::from_vars(var).map(|paths| paths.config_file)
        };
        let from_passwd = PathBuf::from("/home/pw/.config/aicockpit/config.toml");
        // Unset (from_env drops empty values before this) or relative.
        assert_eq!(lookup(None, Some("/home/pw")).unwrap(), from_passwd);
        assert_eq!(lookup(Some("rel"), Some("/home/pw")).unwrap(), from_passwd);
        // A usable HOME wins.
        assert_eq!(
            lookup(Some("/home/env"), Some("/home/pw")).unwrap(),
            PathBuf::from("/home/env/.config/aicockpit/config.toml")
        );
        // Neither: an error, never the temp folder.
        assert!(matches!(
            lookup(None, None),
            Err(ConfigError::NoHome { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn the_password_database_gives_this_users_home() {
        // SAFETY: getuid has no preconditions and always succeeds.
        let uid = unsafe { libc::getuid() };
        let listed = std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() == 7 && fields[2] == uid.to_string())
            .map(|fields| PathBuf::from(fields[5]));
        match listed {
            // Listed in the file: the lookup finds the same folder.
            Some(home) if home.is_absolute() => {
                assert_eq!(home_from_passwd(), Some(home));
            }
            // Elsewhere (NSS, LDAP) or not at all: whatever it finds is absolute.
            _ => assert!(home_from_passwd().is_none_or(|home| home.is_absolute())),
        }
    }
}
