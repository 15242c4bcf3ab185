//! `aicockpit-lsp`: the AiCockpit language server on stdio (the same as `aicockpit lsp`).

#[path = "logging.rs"]
mod logging;
#[path = "lsp_command.rs"]
mod lsp_command;

use aicockpit_config::Paths;

use std::process::ExitCode;

/// Indexing allocates many small objects on several threads; mimalloc is
/// markedly faster than the system allocator at that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP: &str = "\
aicockpit-lsp: the AiCockpit language server, speaking LSP on stdin/stdout.

Start it from your editor. It indexes the workspace root the editor sends
(symbols, definitions, references, hover, search) and reports progress with
$/progress. Logs go to stderr; set RUST_LOG=debug for more.

Usage: aicockpit-lsp [--root DIR | --workspace NAME]

Options:
  --root DIR          serve DIR whatever root the editor sends
  --workspace NAME    serve the files of workspace NAME (see `aicockpit workspace ls`),
                      the same files its container sees at /workspace
  -h, --help     print this help
  -V, --version  print the version

Environment: AICOCKPIT_CONFIG, AICOCKPIT_CACHE_DIR, AICOCKPIT_DATA_DIR, AICOCKPIT_<SECTION>_<KEY>, RUST_LOG";

fn main() -> ExitCode {
    logging::init("warn");
    let mut args = std::env::args().skip(1);
    // `--root DIR` or `--workspace NAME`: which folder to serve (at most one).
    let mut folder: Option<(String, String)> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("aicockpit-lsp {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--stdio" => {}
            "--root" | "--workspace" => {
                let Some(value) = args.next() else {
                    eprintln!("error: {arg} needs a value");
                    return ExitCode::from(2);
                };
                if folder.is_some() {
                    eprintln!("error: give one of --root and --workspace, once");
                    return ExitCode::from(2);
                }
                folder = Some((arg, value));
            }
            other => {
                eprintln!("error: unexpected argument {other:?}\n\n{HELP}");
                return ExitCode::from(2);
            }
        }
    }
    let root = match folder {
        None => None,
        Some((flag, dir)) if flag == "--root" => Some(dir.into()),
        Some((_, name)) => {
            let paths = match Paths::from_env() {
                Ok(paths) => paths,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let store = aicockpit_workspace::WorkspaceManager::store_for(&paths.data_dir);
            match store.get(&name) {
                Ok(Some(workspace)) => Some(workspace.dir),
                Ok(None) | Err(aicockpit_workspace::WorkspaceError::NotFound { .. }) => {
                    eprintln!("error: no workspace named {name:?} (see `aicockpit workspace ls`)");
                    return ExitCode::FAILURE;
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    lsp_command::run(root)
}
