//! End-to-end tests of the `aicockpit` and `aicockpit-lsp` binaries, each in
//! a fresh temp folder with its own cache and config, with a deadline on every wait.

mod ai;
mod cli;
mod llamacpp;
mod llamacpp_server;
mod lsp;
mod lsp_ai;
mod lsp_editor_gaps;
mod nvim;
mod semantic;
mod server;
mod server_attacks;
mod server_lsp;
mod server_tls;
mod support;
mod tidy;
mod vscode;
mod web;
mod workspace;
