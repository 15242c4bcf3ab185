//! Tidy checks that keep the code base honest: module docs, no debugging
//! leftovers, external crates only in the crate that owns them, and config
//! docs that match the config struct.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with("node_modules") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_and_has_no_leftovers() {
    let mut files = Vec::new();
    rust_files(&repo().join("crates"), &mut files);
    rust_files(&repo().join("tests"), &mut files);
    assert!(files.len() > 20);
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` module doc",
                file.display()
            ));
        }
        for marker in ["dbg!(", "todo!(", "unimplemented!("] {
            if file.ends_with("tidy.rs") {
                continue;
            }
            if text.contains(marker) {
                problems.push(format!("{}: contains {marker}", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn external_crates_appear_only_in_their_owners_manifest() {
    // (dependency name prefix, the manifest that owns it)
    let owners = [
        ("tree-sitter", "crates/aicockpit-syntax/Cargo.toml"),
        ("tantivy", "crates/aicockpit-index/Cargo.toml"),
        ("candle", "crates/aicockpit-embed/Cargo.toml"),
        ("tokenizers", "crates/aicockpit-embed/Cargo.toml"),
        ("zip", "crates/aicockpit-embed/Cargo.toml"),
        ("ignore", "crates/aicockpit-index/Cargo.toml"),
        ("tower-lsp", "crates/aicockpit-lsp/Cargo.toml"),
        ("lsp-types", "crates/aicockpit-lsp/Cargo.toml"),
        ("clap", "Cargo.toml"),
        ("tracing-subscriber", "Cargo.toml"),
        ("indicatif", "Cargo.toml"),
        ("anyhow", "Cargo.toml"),
        ("mimalloc", "Cargo.toml"),
        ("toml", "crates/aicockpit-config/Cargo.toml"),
        ("reqwest", "crates/aicockpit-ai/Cargo.toml"),
        ("cap-std", "crates/aicockpit-workspace/Cargo.toml"),
        ("bollard", "crates/aicockpit-workspace/Cargo.toml"),
        ("tar", "crates/aicockpit-workspace/Cargo.toml"),
        ("fantoccini", "Cargo.toml"),
        ("hyper", "Cargo.toml"),
        ("tungstenite", "Cargo.toml"),
        ("axum", "crates/aicockpit-server/Cargo.toml"),
        ("rusqlite", "crates/aicockpit-server/Cargo.toml"),
        ("argon2", "crates/aicockpit-server/Cargo.toml"),
        ("utoipa", "crates/aicockpit-server/Cargo.toml"),
        ("rustls", "crates/aicockpit-server/Cargo.toml"),
    ];
    let mut manifests = vec![repo().join("Cargo.toml")];
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if manifest.exists() {
            manifests.push(manifest);
        }
    }
    let mut problems = Vec::new();
    for manifest in manifests {
        let rel = manifest
            .strip_prefix(repo())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let text = std::fs::read_to_string(&manifest).unwrap();
        for line in text.lines() {
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            let name = name.trim();
            for (prefix, owner) in owners {
                if (name == prefix || name.starts_with(&format!("{prefix}-"))) && rel != owner {
                    problems.push(format!(
                        "{rel}: depends on {name}, which belongs to {owner}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_configuration_docs_cover_every_key() {
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    let defaults = serde_json::to_value(aicockpit_config::Config::default()).unwrap();
    let mut missing = Vec::new();
    for (section, keys) in defaults.as_object().unwrap() {
        if !docs.contains(&format!("[{section}]")) {
            missing.push(format!("[{section}]"));
        }
        for key in keys.as_object().unwrap().keys() {
            if key != "services" && !docs.contains(&format!("`{key}`")) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    for key in [
        "name",
        "kind",
        "base_url",
        "chat_model",
        "completion_model",
        "api_key_env",
        "deployment",
        "api_version",
    ] {
        if !docs.contains(&format!("`{key}`")) {
            missing.push(format!("ai.services[].{key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document: {}",
        missing.join(", ")
    );
}
