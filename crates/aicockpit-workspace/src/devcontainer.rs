//! (placeholder: devcontainer)
