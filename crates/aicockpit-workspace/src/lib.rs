//! Workspaces: development environments as hardened containers.
//!
//! Architecture invariant: every path from a user is resolved beneath the
//! root by `cap-std` (no string checks): `..`, absolute paths and symlinks
//! that lead out of the root are refused, whoever created them, including a
//! process inside the container.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let files = aicockpit_workspace::WorkspaceFiles::open(dir.path(), 1024).unwrap();
//! files.write("notes/todo.txt", b"ship it").unwrap();
//! assert_eq!(files.read("notes/todo.txt").unwrap(), b"ship it");
//! assert!(files.read("../../etc/passwd").is_err());
//! ```

pub mod backup;
pub mod devcontainer;
mod files;
pub mod terminal;

pub use files::{EntryKind, FileEntry, FileError, WorkspaceFiles};
