//! `aicockpit`: the command line. Wiring only: every verb calls the library
//! crates, prints text or `--json`, and maps errors to one line on stderr and
//! a non-zero exit code.

#[path = "ai_command.rs"]
mod ai_command;
#[path = "logging.rs"]
mod logging;
#[path = "lsp_command.rs"]
mod lsp_command;
#[path = "semantic_command.rs"]
mod semantic_command;
#[path = "serve_command.rs"]
mod serve_command;
#[path = "terminal_mode.rs"]
mod terminal_mode;
#[path = "terminal_text.rs"]
mod terminal_text;
#[path = "workspace_command.rs"]
mod workspace_command;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use aicockpit_config::{Config, Paths, SearchMode};
use aicockpit_index::{index_dir, IndexOptions, ProjectIndex, RefreshStats, SearchQuery};
use aicockpit_syntax::SymbolKind;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use terminal_text::printable;

/// Indexing allocates many small objects on several threads; mimalloc is
/// markedly faster than the system allocator at that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AiCockpit: a self-hosted, language-server-centred AI coding cockpit.
///
/// Index a project with tree-sitter and tantivy, search it, and serve it to
/// any LSP editor. Config: $XDG_CONFIG_HOME/aicockpit/config.toml (or
/// $AICOCKPIT_CONFIG); indexes live under $XDG_CACHE_HOME/aicockpit (or
/// $AICOCKPIT_CACHE_DIR); any scalar setting can be overridden with
/// AICOCKPIT_<SECTION>_<KEY>, e.g. AICOCKPIT_INDEX_MAX_FILE_BYTES=2000000.
/// Logs go to stderr, filtered by RUST_LOG.
#[derive(Parser)]
#[command(name = "aicockpit", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index a project (incremental: only changed files are parsed again).
    Index {
        /// The project folder.
        path: PathBuf,
        /// Print the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Full-text and symbol search in the project containing --path (default: the current folder).
    ///
    /// Identifiers are matched by their parts too: "http request" finds
    /// parseHttpRequest. The index is brought up to date first.
    Search {
        /// What to look for: words, identifiers or parts of them.
        #[arg(value_parser = non_empty)]
        query: String,
        /// A file or folder to search within; its project is the nearest indexed or git folder above it.
        #[arg(long, short)]
        path: Option<PathBuf>,
        /// Maximum number of hits (at least 1; default: search.max_results).
        #[arg(long, short = 'n', value_parser = at_least_one())]
        limit: Option<usize>,
        /// Only symbols of this kind (function, method, class, struct, …); repeatable.
        #[arg(long = "kind", short)]
        kinds: Vec<String>,
        /// text (BM25), semantic (vectors) or hybrid (both fused; text alone
        /// where no vectors exist). Default: search.mode.
        #[arg(long, value_parser = clap::value_parser!(SearchModeArg))]
        mode: Option<SearchModeArg>,
        /// Print the hits as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Manage the local embedding model for semantic search.
    #[command(subcommand)]
    Model(semantic_command::ModelCommand),
    /// Find symbols by fuzzy name: exact names first, then prefixes, then subsequences.
    Symbols {
        /// A symbol name, or letters of it in order (`dshbrd` finds Dashboard).
        #[arg(value_parser = non_empty)]
        query: String,
        /// A file or folder to look within; its project is the nearest indexed or git folder above it.
        #[arg(long, short)]
        path: Option<PathBuf>,
        /// Maximum number of symbols (at least 1; default: search.max_workspace_symbols).
        #[arg(long, short = 'n', value_parser = at_least_one())]
        limit: Option<usize>,
        /// Print the symbols as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Ask the active AI service a question about the project; the answer
    /// streams to the terminal and ends with the files it drew on.
    Chat {
        /// The question, in your words.
        #[arg(value_parser = non_empty)]
        question: String,
        /// A file or folder of the project to ask about (default: the current folder).
        #[arg(long, short)]
        path: Option<PathBuf>,
    },
    /// Manage AI services: list, add, remove, use, test.
    #[command(subcommand)]
    Ai(ai_command::AiCommand),
    /// Manage containerized workspaces: create, ls, inspect, path, start, stop, restart, rm, exec, shell, stats, backup, restore.
    #[command(subcommand)]
    Workspace(workspace_command::WorkspaceCommand),
    /// Build the default workspace image locally (no registry).
    #[command(subcommand)]
    Image(workspace_command::ImageCommand),
    /// Run the multi-user server: web API, WebSockets for terminals and the language server.
    ///
    /// First start creates the user `admin` and prints a one-time login URL.
    /// State lives in SQLite under the data folder; workspaces use Docker when
    /// it answers, else the local backend (with a warning). Stop with Ctrl-C.
    Serve(serve_command::ServeArgs),
    /// Administer the server's users and tokens (works on the data folder, with or without a running server).
    Admin {
        /// The data folder, as given to `aicockpit serve --data-dir`.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: serve_command::AdminCommand,
    },
    /// Read the server's audit log.
    Audit(serve_command::AuditArgs),
    /// Run the language server on stdin/stdout (the same as `aicockpit-lsp`).
    Lsp {
        /// Serve this folder whatever root the editor sends.
        #[arg(long, conflicts_with = "workspace")]
        root: Option<PathBuf>,
        /// Serve the files of this workspace (see `aicockpit workspace ls`).
        #[arg(long)]
        workspace: Option<String>,
        /// Accepted for editors that pass it; stdio is the only transport.
        #[arg(long, hide = true)]
        stdio: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Lsp {
        root, workspace, ..
    } = cli.command
    {
        logging::init("warn");
        let root = match workspace {
            Some(name) => match Paths::from_env()
                .map_err(anyhow::Error::from)
                .and_then(|paths| workspace_command::workspace_dir(&paths, &name))
            {
                Ok(dir) => Some(dir),
                Err(error) => {
                    eprintln!("error: {}", printable(&format!("{error:#}")));
                    return ExitCode::FAILURE;
                }
            },
            None => root,
        };
        return lsp_command::run(root);
    }
    // The server logs what it does; the other commands only what went wrong.
    logging::init(if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    });
    let paths = match Paths::from_env() {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {}", printable(&format!("{error:#}")));
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::load(&paths) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {}", printable(&format!("{error:#}")));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Workspace(command) => workspace_command::run(&paths, &config, command),
        Command::Image(command) => workspace_command::image(&config, command),
        Command::Serve(args) => serve_command::serve(paths, config, args).map(|()| 0),
        Command::Admin { data_dir, command } => {
            serve_command::admin(paths, data_dir, command).map(|()| 0)
        }
        Command::Audit(args) => serve_command::audit(paths, args).map(|()| 0),
        command => run(command).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // Errors carry services' messages and file names: shown, never obeyed.
        Err(error) => {
            eprintln!("error: {}", printable(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    let paths = Paths::from_env()?;
    let config = Config::load(&paths)?;
    match command {
        Command::Index { path, json } => index(&paths, &config, &path, json),
        Command::Search {
            query,
            path,
            limit,
            kinds,
            mode,
            json,
        } => {
            let options = SearchOptions {
                query: &query,
                scope: path,
                limit,
                kinds: &kinds,
                mode: mode.map_or(config.search.mode, |m| m.0),
                json,
            };
            search(&paths, &config, options)
        }
        Command::Model(command) => semantic_command::model(&paths, &config, command),
        Command::Symbols {
            query,
            path,
            limit,
            json,
        } => symbols(&paths, &config, &query, path, limit, json),
        Command::Ai(command) => ai_command::run(&paths, command),
        Command::Chat { question, path } => chat(&paths, &config, &question, path),
        Command::Lsp { .. }
        | Command::Workspace(_)
        | Command::Image(_)
        | Command::Serve(_)
        | Command::Admin { .. }
        | Command::Audit(_) => {
            unreachable!("handled in main")
        }
    }
}

/// A query or question must have words in it.
fn non_empty(value: &str) -> std::result::Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(value.to_string())
    }
}

/// A count of at least 1 (`--limit 0` would ask for nothing).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// `--mode`, parsed by the config's own rules.
#[derive(Clone, Copy, Debug)]
struct SearchModeArg(SearchMode);

impl std::str::FromStr for SearchModeArg {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<SearchModeArg, String> {
        text.parse().map(SearchModeArg)
    }
}

fn index(paths: &Paths, config: &Config, path: &Path, json: bool) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file or folder", path.display());
    }
    let index = open_index(paths, config, path)?;
    let stats = refresh(&index, !json)?;
    // Embedding follows the text index, which is already usable.
    let semantic = semantic_command::prepare(paths, config, &index, true, !json);
    if json {
        let out = serde_json::json!({
            "root": index.root(),
            "index_dir": index.dir(),
            "files": stats.files,
            "parsed": stats.parsed,
            "unchanged": stats.unchanged,
            "removed": stats.removed,
            "skipped": stats.skipped.len(),
            "skipped_files": stats.skipped.iter().map(|(path, reason)| serde_json::json!({"path": path, "reason": reason.to_string()})).collect::<Vec<_>>(),
            "symbols": stats.symbols,
            "chunks": stats.chunks,
            "bytes_parsed": stats.bytes_parsed,
            "elapsed_ms": stats.elapsed.as_secs_f64() * 1000.0,
            "semantic": semantic.json(),
        });
        println!("{out}");
    } else {
        println!(
            "Indexed {} files ({} parsed, {} unchanged, {} removed, {} skipped): {} symbols, {} chunks in {:.2} s",
            stats.files,
            stats.parsed,
            stats.unchanged,
            stats.removed,
            stats.skipped.len(),
            stats.symbols,
            stats.chunks,
            stats.elapsed.as_secs_f64()
        );
        println!("Index: {}", index.dir().display());
        if let Some(run) = &semantic.stats {
            println!(
                "Embedded {} chunks ({} with vectors) in {:.2} s",
                run.embedded, run.chunks, semantic.seconds
            );
        }
        if let Some(why) = &semantic.why {
            println!("Semantic search: {}", printable(why));
        }
    }
    Ok(())
}

/// What `aicockpit search` was asked.
struct SearchOptions<'a> {
    query: &'a str,
    scope: Option<PathBuf>,
    limit: Option<usize>,
    kinds: &'a [String],
    mode: SearchMode,
    json: bool,
}

fn search(paths: &Paths, config: &Config, options: SearchOptions<'_>) -> Result<()> {
    let SearchOptions {
        query,
        scope,
        limit,
        kinds,
        mode,
        json,
    } = options;
    // Bad input is refused before any indexing.
    let mut search = SearchQuery::new(query);
    for kind in kinds {
        match SymbolKind::from_name(kind) {
            Some(kind) => search.kinds.push(kind),
            None => {
                let known: Vec<&str> = SymbolKind::ALL.iter().map(|k| k.name()).collect();
                bail!("unknown kind {kind:?}; known kinds: {}", known.join(", "));
            }
        }
    }
    let (index, rel) = open_scope(paths, config, scope)?;
    search.limit = limit.unwrap_or(config.search.max_results);
    search.paths = rel.into_iter().collect();
    let semantic = if mode == SearchMode::Text {
        None
    } else {
        Some(semantic_command::prepare(
            paths, config, &index, false, !json,
        ))
    };
    if mode == SearchMode::Semantic {
        if let Some(semantic) = &semantic {
            semantic_command::require_vectors(semantic)?;
        }
    }
    let fusion = aicockpit_embed::fusion::Fusion {
        depth: config.search.fusion_depth,
        text_weight: config.search.text_weight,
        semantic_weight: config.search.semantic_weight,
        ..aicockpit_embed::fusion::Fusion::default()
    };
    let why = semantic.as_ref().and_then(|s| s.why.clone());
    let hits = aicockpit_embed::hybrid::search(
        &index,
        semantic.as_ref().and_then(|s| s.parts()),
        why.as_deref().unwrap_or("no vectors"),
        &search,
        mode,
        &fusion,
    )?;
    let used = if mode == SearchMode::Hybrid
        && !semantic
            .as_ref()
            .and_then(|s| s.parts())
            .is_some_and(|p| p.store.has_vectors())
    {
        SearchMode::Text
    } else {
        mode
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "root": index.root(),
                "mode": used.name(),
                "semantic": why,
                "hits": hits,
            })
        );
        return Ok(());
    }
    if used != mode {
        if let Some(why) = &why {
            eprintln!("text search only: {}", printable(why));
        }
    }
    if hits.is_empty() {
        eprintln!("no matches for {query:?} in {}", index.root().display());
    }
    for ranked in hits {
        let found_by: Vec<&str> = ranked
            .retrievers
            .iter()
            .map(|r| match r {
                aicockpit_embed::fusion::Retriever::Text => "text",
                aicockpit_embed::fusion::Retriever::Semantic => "semantic",
            })
            .collect();
        let hit = ranked.hit;
        let what = hit
            .symbol
            .as_ref()
            .map(|s| format!("  {} {}", s.kind, s.name))
            .unwrap_or_default();
        // Paths, names and snippets are the repository's: a file may hold escape sequences.
        println!(
            "{}:{}:{}{}  ({:.3}, {})",
            printable(&hit.path),
            hit.span.start.line + 1,
            hit.span.start.col + 1,
            printable(&what),
            hit.score,
            found_by.join("+")
        );
        for line in hit.snippet.lines() {
            println!("    {}", printable(line));
        }
    }
    Ok(())
}

fn symbols(
    paths: &Paths,
    config: &Config,
    query: &str,
    scope: Option<PathBuf>,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let (index, rel) = open_scope(paths, config, scope)?;
    let limit = limit.unwrap_or(config.search.max_workspace_symbols);
    // Over-fetch when scoped, then keep the hits inside the scope.
    let fetch = if rel.is_some() {
        limit.saturating_mul(8)
    } else {
        limit
    };
    let hits: Vec<_> = index
        .workspace_symbols(query, fetch)
        .into_iter()
        .filter(|hit| {
            rel.as_ref().is_none_or(|scope| {
                hit.path == *scope || hit.path.starts_with(&format!("{scope}/"))
            })
        })
        .take(limit)
        .collect();
    if json {
        println!(
            "{}",
            serde_json::json!({ "root": index.root(), "symbols": hits })
        );
        return Ok(());
    }
    if hits.is_empty() {
        eprintln!("no symbols match {query:?} in {}", index.root().display());
    }
    for hit in hits {
        let s = &hit.symbol;
        let container = s
            .container
            .as_deref()
            .map(|c| format!(" in {c}"))
            .unwrap_or_default();
        println!(
            "{:<11} {}{}  {}:{}:{}",
            s.kind.name(),
            printable(&s.name),
            printable(&container),
            printable(&hit.path),
            s.selection_range.start.line + 1,
            s.selection_range.start.col + 1
        );
    }
    Ok(())
}

fn chat(paths: &Paths, config: &Config, question: &str, scope: Option<PathBuf>) -> Result<()> {
    use std::io::Write;
    let scope = scope.map(|scope| resolve_scope(&scope)).transpose()?;
    let file = scope
        .as_ref()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .cloned();
    let (index, _) = open_scope(paths, config, scope)?;
    let engine = aicockpit_engine::Engine::new(config.clone(), Some(std::sync::Arc::new(index)));
    if engine.configure_ai(&paths.data_dir)?.is_none() {
        bail!("no AI service is active: add one with `aicockpit ai add` and choose it with `aicockpit ai use NAME`");
    }
    // The project's vectors, if it has any, so the question finds code by
    // meaning as well as by words.
    if let Some(why) = engine.open_semantic() {
        tracing::debug!(%why, "chat context from the text index alone");
    }
    let params = aicockpit_engine::ChatParams {
        messages: vec![aicockpit_ai::ChatMessage::new(
            aicockpit_ai::Role::User,
            question,
        )],
        // A small file goes in whole; a large one as its outline and the
        // chunks most relevant to the question, first among the sources.
        selection: None,
        whole_file: file.is_some(),
        path: file,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut stdout = std::io::stdout();
    // The answer is the service's text: its control characters are shown, not obeyed.
    runtime.block_on(engine.chat(params, |delta| {
        let _ = stdout.write_all(printable(delta).as_bytes());
        let _ = stdout.flush();
    }))?;
    println!();
    Ok(())
}

/// Open the index of the project containing `scope` (default: the current
/// folder), bring it up to date, and return the scope relative to the root.
fn open_scope(
    paths: &Paths,
    config: &Config,
    scope: Option<PathBuf>,
) -> Result<(ProjectIndex, Option<String>)> {
    let scope = match scope {
        Some(scope) => scope,
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let scope = resolve_scope(&scope)?;
    let root = project_root(&paths.cache_dir, &scope);
    let index = open_index(paths, config, &root)?;
    if !index.is_read_only() {
        refresh(&index, true)?;
    }
    let rel = aicockpit_index::relative(index.root(), &scope);
    Ok((index, rel))
}

/// A `--path` as an absolute path: its folder resolved, but the last part
/// never followed. A symlink planted in a project (`notes.md ->
/// ~/.aws/credentials`, `sub -> /`) must not turn `--path` into a host file
/// sent to an AI service, or the whole disk indexed.
fn resolve_scope(scope: &Path) -> Result<PathBuf> {
    let metadata = std::fs::symlink_metadata(scope)
        .with_context(|| format!("{}: no such file or folder", scope.display()))?;
    if metadata.file_type().is_symlink() {
        bail!(
            "{} is a symlink, which --path does not follow: give the file or folder itself",
            scope.display()
        );
    }
    if !metadata.is_file() && !metadata.is_dir() {
        bail!("{} is not a regular file or folder", scope.display());
    }
    let absolute = if scope.is_absolute() {
        scope.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current folder")?
            .join(scope)
    };
    let resolved = match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .with_context(|| format!("{}: no such folder", parent.display()))?
            .join(name),
        // `/` or a path ending in `..`: nothing of it is a planted name.
        _ => absolute
            .canonicalize()
            .with_context(|| format!("{}: no such file or folder", scope.display()))?,
    };
    // Checked again without a trailing `/`, which makes lstat follow a link.
    if std::fs::symlink_metadata(&resolved).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{} is a symlink, which --path does not follow: give the file or folder itself",
            scope.display()
        );
    }
    Ok(resolved)
}

/// The nearest folder at or above `scope` that has an index, else that holds `.git`, else `scope`'s folder.
fn project_root(cache_dir: &Path, scope: &Path) -> PathBuf {
    let start = if scope.is_dir() {
        scope
    } else {
        scope.parent().unwrap_or(scope)
    };
    let ancestors: Vec<&Path> = start.ancestors().collect();
    ancestors
        .iter()
        .find(|dir| index_dir(cache_dir, dir).join("meta.json").exists())
        .or_else(|| ancestors.iter().find(|dir| dir.join(".git").exists()))
        .map_or_else(|| start.to_path_buf(), |dir| dir.to_path_buf())
}

fn open_index(paths: &Paths, config: &Config, root: &Path) -> Result<ProjectIndex> {
    let options = IndexOptions {
        root: root.to_path_buf(),
        cache_dir: paths.cache_dir.clone(),
        max_file_bytes: config.index.max_file_bytes,
        threads: config.index.threads,
        read_only: false,
        skip_folders: config.index.skip_folders.clone(),
        owner: None,
    };
    let (index, report) = ProjectIndex::open(options)
        .with_context(|| format!("cannot open the index of {}", root.display()))?;
    if let Some(reason) = report.rebuilt {
        eprintln!(
            "warning: the index of {} was unusable ({reason}); rebuilding it",
            index.root().display()
        );
    }
    if report.read_only_because_locked {
        eprintln!(
            "warning: another AiCockpit process is updating this index; results may be out of date"
        );
    }
    Ok(index)
}

/// Refresh with a progress bar on stderr when it is a terminal.
fn refresh(index: &ProjectIndex, show_progress: bool) -> Result<RefreshStats> {
    // A first index of a big project takes a while: say so even when stderr
    // is no terminal (a script, an editor's task runner), with the count.
    let first = show_progress && index.stats().files == 0;
    let said = std::sync::atomic::AtomicBool::new(false);
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} indexing [{bar:40}] {pos}/{len} files ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let stats = index.refresh(&|progress| {
        if let Some(bar) = &bar {
            bar.set_length(progress.total as u64);
            bar.set_position(progress.done as u64);
        } else if first
            && progress.total > 0
            && !said.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "indexing {} ({} files) first; later runs update only what changed",
                index.root().display(),
                progress.total
            );
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for (path, reason) in stats
        .as_ref()
        .map(|s| s.skipped.as_slice())
        .unwrap_or_default()
    {
        tracing::info!("skipped {path}: {reason}");
    }
    Ok(stats?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument and flag of every command says what it is for.
    #[test]
    fn every_argument_and_flag_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "aicockpit", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    /// Help text names only commands that exist.
    #[test]
    fn help_names_only_existing_commands() {
        let cli = Cli::command();
        let mut text = String::new();
        fn collect(command: &clap::Command, text: &mut String) {
            for arg in command.get_arguments() {
                if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                    text.push_str(&help.to_string());
                    text.push('\n');
                }
            }
            if let Some(about) = command.get_long_about().or(command.get_about()) {
                text.push_str(&about.to_string());
                text.push('\n');
            }
            for sub in command.get_subcommands() {
                collect(sub, text);
            }
        }
        collect(&cli, &mut text);
        for mention in text.split("`aicockpit ").skip(1) {
            let words: Vec<&str> = mention
                .split(['`', ' '])
                .take_while(|w| {
                    w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.is_empty()
                })
                .collect();
            let mut command = &cli;
            for word in words {
                match command.find_subcommand(word) {
                    Some(sub) => command = sub,
                    None => break,
                }
            }
            assert!(
                !std::ptr::eq(command, &cli),
                "help mentions `aicockpit {}`, which is no command",
                mention.split('`').next().unwrap_or("")
            );
        }
    }
}
