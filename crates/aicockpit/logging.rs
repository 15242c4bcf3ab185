//! Logging set-up shared by both binaries: `tracing` to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

/// Log to stderr (never stdout: the LSP speaks there). `RUST_LOG` overrides `default`.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
