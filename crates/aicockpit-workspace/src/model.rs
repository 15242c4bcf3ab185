//! The workspace model: what a workspace is, its limits and its state.
//!
//! Plain data, serialisable, shared by every backend and by the store. A
//! record says what was asked for; the state is what a backend last saw.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::WorkspaceError;

/// Which backend runs a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A hardened container on a Docker engine.
    Docker,
    /// A host folder and host processes: no isolation at all.
    Local,
}

impl BackendKind {
    /// Parse `workspaces.backend`.
    pub fn parse(text: &str) -> Result<BackendKind, WorkspaceError> {
        match text {
            "docker" => Ok(BackendKind::Docker),
            "local" => Ok(BackendKind::Local),
            other => Err(WorkspaceError::InvalidRequest(format!(
                "unknown workspace backend {other:?}: use \"docker\" or \"local\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Docker => "docker",
            BackendKind::Local => "local",
        }
    }
}

/// What a backend last saw of a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceState {
    /// Created, never started.
    Created,
    Running,
    Stopped,
    /// The record exists but its container does not (removed by hand).
    Missing,
}

impl WorkspaceState {
    pub fn name(self) -> &'static str {
        match self {
            WorkspaceState::Created => "created",
            WorkspaceState::Running => "running",
            WorkspaceState::Stopped => "stopped",
            WorkspaceState::Missing => "missing",
        }
    }
}

/// Resource limits of one workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory in bytes; swap is set equal, so the container never swaps.
    pub memory_bytes: u64,
    pub cpus: f64,
    /// Maximum number of processes and threads in the container.
    pub pids: u32,
    /// `nofile` ulimit (open files).
    pub nofile: u32,
    /// `nproc` ulimit (counted per user by the kernel).
    pub nproc: u32,
}

/// A workspace as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Stable identifier, also written to the container's labels.
    pub id: String,
    /// Unique, user-chosen name.
    pub name: String,
    pub backend: BackendKind,
    pub image: String,
    /// The host folder mounted at `/workspace`.
    pub dir: PathBuf,
    /// True when `dir` was made by AiCockpit (so `rm --purge` may delete it).
    pub managed_dir: bool,
    pub limits: Limits,
    pub network: String,
    pub env: BTreeMap<String, String>,
    /// `uid:gid` the workspace's processes run as.
    pub user: String,
    /// The container's id, once created.
    pub container_id: Option<String>,
    pub state: WorkspaceState,
    /// Unix seconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    /// Last time anybody used the workspace (exec, terminal, files); unix seconds.
    pub last_used_at: u64,
    /// Published ports, as `container_port/proto -> host:port`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// A command run once after the first start (from devcontainer.json).
    #[serde(default)]
    pub post_create_command: Option<Vec<String>>,
    #[serde(default)]
    pub post_create_done: bool,
    /// For a pooled container: the settings it was made with, so a claim
    /// never hands out one made under other settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_key: Option<String>,
    /// Device and inode of `dir` when it was made or first checked: before
    /// every start the folder must still be this one, reached with no
    /// symlink in its path (Docker resolves a mount's source at each start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir_identity: Option<DirIdentity>,
}

/// Which folder a workspace's `dir` was, regardless of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirIdentity {
    pub device: u64,
    pub inode: u64,
}

impl Workspace {
    /// The container's name on the engine.
    pub fn container_name(&self) -> String {
        format!("aicockpit-{}", self.name)
    }

    /// The record without the values of `env` (they may be secrets): the
    /// names stay, each value is empty. This is what goes into container
    /// labels, which anyone who may list containers can read.
    pub fn without_env_values(&self) -> Workspace {
        let mut copy = self.clone();
        for value in copy.env.values_mut() {
            value.clear();
        }
        copy
    }

    /// The record as shown to people and scripts (`inspect --json`, `ls
    /// --json`, the API): `env` lists the variables' names, never values.
    pub fn public_view(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self.without_env_values()).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "env".to_string(),
                serde_json::Value::from(self.env.keys().cloned().collect::<Vec<_>>()),
            );
        }
        value
    }
}

/// The output of a command run to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command was killed (timeout) or its code is unknown.
    pub exit_code: Option<i64>,
    pub timed_out: bool,
}

/// A command to run in a workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Allocate a terminal (interactive use); implies `stdin`.
    pub tty: bool,
    /// Connect the command's stdin to [`crate::ExecIo::input`]; without it the
    /// command reads end-of-file at once.
    pub stdin: bool,
    pub env: Vec<(String, String)>,
    /// Working directory; default `/workspace`.
    pub working_dir: Option<String>,
    /// Initial terminal size (cols, rows).
    pub size: Option<(u16, u16)>,
}

/// Resource use sampled from the engine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Percent of one CPU (200.0 = two CPUs busy).
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

/// Parse a size such as `512m`, `2g`, `1048576`, `1.5GiB`.
pub fn parse_size(text: &str) -> Result<u64, WorkspaceError> {
    let trimmed = text.trim().to_ascii_lowercase();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        WorkspaceError::InvalidRequest(format!("{text:?} is not a size like 512m or 2g"))
    })?;
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{text:?} has an unknown unit: use k, m or g"
            )))
        }
    };
    Ok((value * multiplier as f64) as u64)
}

/// Check a workspace name: it becomes part of a container name and a folder name.
pub fn validate_name(name: &str) -> Result<(), WorkspaceError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(WorkspaceError::InvalidRequest(format!(
            "invalid workspace name {name:?}: use up to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("512m", 512 << 20),
            ("2g", 2 << 30),
            ("2G", 2 << 30),
            ("1.5GiB", 3 << 29),
            ("4096", 4096),
            ("64k", 64 << 10),
        ] {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text}");
        }
        for bad in ["", "lots", "2x", "g"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        for good in ["a", "demo", "my-app_2.0", "X9"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".hidden", "a/b", "../x", "a b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
