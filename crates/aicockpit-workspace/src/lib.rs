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

pub mod backend;
pub mod backup;
pub mod confined;
pub mod devcontainer;
pub mod docker;
mod error;
mod files;
pub mod image;
pub mod local;
mod manager;
mod model;
mod store;
pub mod terminal;

pub use backend::{Backend, Detached, ExecIo, Observed, OutputKind};
pub use docker::{DockerBackend, DockerOptions};
pub use error::WorkspaceError;
pub use files::{normalized_path, EntryKind, FileEntry, FileError, WorkspaceFiles};
pub use local::LocalBackend;
pub use manager::{
    CreateRequest, ManagerOptions, ReconcileReport, RemoveReport, WorkspaceManager, DEFAULT_UID,
};
pub use model::{
    parse_size, validate_name, BackendKind, DirIdentity, ExecRequest, Limits, RunOutput, Stats,
    Workspace, WorkspaceState,
};
pub use store::Store;
