//! One error type for workspace operations, each variant naming what failed
//! and, where the user can act, how to fix it.

use std::path::PathBuf;

use crate::backup::BackupError;
use crate::devcontainer::DevContainerError;
use crate::files::FileError;

/// Why a workspace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(
        "cannot reach the Docker engine at {host}: {reason}. Is Docker installed and running? \
         (Debian/Ubuntu: `apt-get install docker.io`, then `systemctl start docker` or run `dockerd`; \
         set DOCKER_HOST for another engine, or use workspaces.backend = \"local\")"
    )]
    DockerUnavailable { host: String, reason: String },
    #[error(
        "permission denied on the Docker socket {host}: add your user to the `docker` group \
         (`usermod -aG docker $USER`, then log in again) or run as a user who may use Docker"
    )]
    DockerPermission { host: String },
    #[error("Docker engine error while trying to {action}: {message}")]
    Docker { action: String, message: String },
    #[error(
        "the image {image:?} is not on this Docker engine and AiCockpit never pulls: build the default \
         image with `aicockpit image build`, or load one with `docker load -i FILE` (or `docker build`)"
    )]
    ImageMissing { image: String },
    #[error("a workspace named {name:?} already exists")]
    NameTaken { name: String },
    #[error("a container named {container:?} already exists on the engine but is not this workspace's: remove or rename it (`docker rm {container}`)")]
    ContainerNameTaken { container: String },
    #[error("no workspace named {name:?} (see `aicockpit workspace ls`)")]
    NotFound { name: String },
    #[error("workspace {name:?} is {state}, not running: start it with `aicockpit workspace start {name}`")]
    NotRunning { name: String, state: String },
    #[error("workspace {name:?}: its container was removed outside AiCockpit; `aicockpit workspace start {name}` creates it again from the record (files are kept)")]
    Missing { name: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the {backend} backend cannot {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error(transparent)]
    DevContainer(#[from] DevContainerError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("workspace record {path} is damaged: {message}")]
    Store { path: PathBuf, message: String },
    #[error(
        "a command in workspace {name:?} ran past its {seconds} s timeout and could not be killed: {reason}; \
         it may still be running: `aicockpit workspace restart {name}` ends every process in it"
    )]
    KillFailed {
        name: String,
        seconds: u64,
        reason: String,
    },
    #[error("command timed out after {seconds} s while trying to {action}")]
    Timeout { action: String, seconds: u64 },
}

impl WorkspaceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> WorkspaceError {
        WorkspaceError::Io {
            path: path.into(),
            source,
        }
    }
}
