//! Running the language server on stdio, shared by `aicockpit lsp` and `aicockpit-lsp`.

use std::path::PathBuf;
use std::process::ExitCode;

use aicockpit_config::{Config, Paths};
use aicockpit_lsp::ServerOptions;

/// Serve LSP on stdin/stdout until the client sends `exit` or closes stdin.
pub fn run(root: Option<PathBuf>) -> ExitCode {
    // Without a home folder there is no safe place for the index or the
    // config: refuse to start, saying what to set (on stderr, the editor's log).
    let paths = match Paths::from_env() {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = Config::load(&paths).unwrap_or_else(|error| {
        // An editor cannot show a server that refuses to start; serve with defaults and say why.
        tracing::error!("{error}; using the default settings");
        Config::default()
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = ServerOptions {
        root_override: root,
        ..ServerOptions::new(config, paths)
    };
    let shut_down = runtime.block_on(aicockpit_lsp::serve(
        tokio::io::stdin(),
        tokio::io::stdout(),
        options,
    ));
    // Blocking index work may still run; do not wait for it after `exit`.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    // The specification: exit code 0 after `shutdown`, 1 without it.
    if shut_down {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
