//! The workspace manager: records in the store, containers in a backend,
//! and the rules that keep the two in step.
//!
//! Invariants: a failed `create` leaves nothing behind (no record, no
//! container, no folder it made); the store is the truth about what was
//! asked for and the engine about what exists, reconciled on open through
//! the containers' labels; files are never deleted unless `purge` was asked.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aicockpit_config::WorkspacesConfig;

use crate::backend::{labels, Backend, ExecIo};
use crate::backup::{self, BackupManifest};
use crate::confined::Folder;
use crate::devcontainer::{self, LifecycleCommand};
use crate::docker::{DockerBackend, DockerOptions};
use crate::error::WorkspaceError;
use crate::files::WorkspaceFiles;
use crate::local::LocalBackend;
use crate::model::{
    now, parse_size, validate_name, BackendKind, DirIdentity, ExecRequest, Limits, RunOutput,
    Stats, Workspace, WorkspaceState,
};
use crate::store::Store;
use crate::terminal::{TerminalIo, TerminalOptions, TerminalRegistry, TerminalSession};

/// A devcontainer lifecycle command as one shell line; named (parallel)
/// commands run one after another, stopping at the first failure.
fn shell_line(command: &LifecycleCommand) -> String {
    match command {
        LifecycleCommand::Shell(line) => line.clone(),
        LifecycleCommand::Args(args) => args
            .iter()
            .map(|arg| format!("'{}'", arg.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" "),
        LifecycleCommand::Parallel(commands) => commands
            .values()
            .map(|command| format!("( {} )", shell_line(command)))
            .collect::<Vec<_>>()
            .join(" && "),
    }
}

/// Check a user spec (`uid`, `uid:gid`, `name`, `name:group`) from any
/// source (devcontainer.json, a record, a restored backup) and refuse root
/// whatever its spelling: `0`, `00`, `+0`, `root`, and group 0 or `root`.
/// Numbers are read as Docker reads them (leading zeros and `+` allowed);
/// names are checked again inside the running container (`id -u`).
pub(crate) fn check_user(user: &str) -> Result<(), WorkspaceError> {
    let refuse = |why: &str| {
        Err(WorkspaceError::InvalidRequest(format!(
            "user {user:?} {why}, and workspaces never run as root: use an unprivileged user such as {DEFAULT_UID}:{DEFAULT_UID}"
        )))
    };
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    // Docker reads a user with Go's `strconv.Atoi` (signs and leading zeros
    // allowed) and otherwise looks the name up in the image: accept only
    // plain digits or a conventional name, so nothing else can turn into 0.
    let numeric = |part: &str| {
        !part.is_empty() && part.len() <= 10 && part.bytes().all(|b| b.is_ascii_digit())
    };
    let named = |part: &str| {
        let mut bytes = part.bytes();
        part.len() <= 32
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && bytes.all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            })
    };
    let plain = |part: &str| numeric(part) || named(part);
    if !plain(name) || group.is_some_and(|group| !plain(group)) {
        return refuse(
            "is not a plain user name (lower-case letters, digits, `_`, `-`, `.`) or number",
        );
    }
    let is_root = |part: &str| part == "root" || (numeric(part) && part.bytes().all(|b| b == b'0'));
    if is_root(name) {
        return refuse("names root");
    }
    if group.is_some_and(is_root) {
        return refuse("names the root group");
    }
    Ok(())
}

/// `uid:gid` as numbers, when the user is given that way.
fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// `path` with what exists of it resolved (symlinks, `..`) and the rest
/// appended as written, so a folder that does not exist yet still compares
/// correctly with real folders.
fn resolve_partly(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(resolved) = std::fs::canonicalize(existing) {
            let mut out = resolved;
            for part in missing.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Extract `archive` into a new private folder under `staging_root`, give
/// the files to the workspace's user, then move them to `<parent>/files`
/// (`parent` must not exist yet: it is made here, mode 0700). Leftovers of
/// earlier restores that were killed midway are removed first.
fn restore_staged(
    archive: &Path,
    staging_root: &Path,
    parent: &Path,
    owner: Option<(u32, u32)>,
    is_docker: bool,
    max_total_bytes: u64,
) -> Result<(), WorkspaceError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(staging_root)
        .map_err(|e| WorkspaceError::io(staging_root, e))?;
    let root =
        Folder::open_no_symlinks(staging_root).map_err(|e| WorkspaceError::io(staging_root, e))?;
    sweep_stale_restores(&root);
    let (staging, staging_name) = root
        .create_unique_dir(".restore-")
        .map_err(|e| WorkspaceError::io(staging_root, e))?;
    let staging_path = staging_root.join(&staging_name);
    let result = (|| -> Result<(), WorkspaceError> {
        let files = staging_path.join("files");
        backup::restore_files_limited(archive, &files, max_total_bytes)?;
        // Files restored by root belong to root; hand them to the user the
        // workspace runs as, or it could not write them.
        // SAFETY: geteuid has no preconditions.
        if is_docker && unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = owner.unwrap_or((DEFAULT_UID, DEFAULT_UID));
            chown_tree(&files, uid, gid)?;
        }
        let name = parent
            .file_name()
            .ok_or_else(|| WorkspaceError::InvalidRequest("no workspace folder name".into()))?;
        // `mkdir` claims the name: if it exists, someone else has it.
        let target = root
            .create_dir(name, 0o700)
            .map_err(|e| WorkspaceError::io(parent, e))?;
        // Until the record is written, this marks the folder as a restore in
        // progress: a restore killed now leaves a folder `create` refuses.
        target
            .create_unique(RESTORING_MARKER)
            .map_err(|e| WorkspaceError::io(parent, e))?;
        if let Err(error) =
            staging.rename_no_replace(OsStr::new("files"), &target, OsStr::new("files"))
        {
            let _ = root.remove_tree(name);
            return Err(WorkspaceError::io(parent.join("files"), error));
        }
        Ok(())
    })();
    let _ = root.remove_tree(&staging_name);
    result
}

/// Names of the files that mark a workspace folder as being restored.
const RESTORING_MARKER: &str = ".restoring-";

/// Whether a workspace's folder holds a restore that never finished.
fn restore_unfinished(workspace_dir: &Path) -> bool {
    std::fs::read_dir(workspace_dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            entry
                .file_name()
                .as_bytes()
                .starts_with(RESTORING_MARKER.as_bytes())
        })
    })
}

/// Remove `.restore-*` folders left by restores that were killed, once
/// they are older than a day (a restore still running is younger).
fn sweep_stale_restores(root: &Folder) {
    let Ok(entries) = root.entries() else {
        return;
    };
    let cutoff = now().saturating_sub(24 * 3600);
    for entry in entries {
        let stale = entry.name.as_bytes().starts_with(b".restore-")
            && entry.kind == crate::confined::EntryType::Dir
            && entry.modified < cutoff;
        if stale {
            let _ = root.remove_tree(&entry.name);
        }
    }
}

/// The home folder of a user, from the system's user database.
fn home_of(uid: u32) -> Option<PathBuf> {
    let mut record = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the buffer's length is
    // passed with it, and `found` is only read after the call.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            record.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return None;
    }
    // SAFETY: `found` is non-null, so `record` was filled in, and its
    // `pw_dir` points into `buffer`, which is still alive.
    let directory = unsafe { std::ffi::CStr::from_ptr((*found).pw_dir) };
    let home = PathBuf::from(std::ffi::OsStr::from_bytes(directory.to_bytes()));
    (home.is_absolute() && home != Path::new("/")).then_some(home)
}

/// Give a whole tree to `uid:gid`, never following symlinks.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<(), WorkspaceError> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(|e| WorkspaceError::io(&path, e))?;
        let metadata =
            std::fs::symlink_metadata(&path).map_err(|e| WorkspaceError::io(&path, e))?;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| WorkspaceError::io(&path, e))? {
                pending.push(entry.map_err(|e| WorkspaceError::io(&path, e))?.path());
            }
        }
    }
    Ok(())
}

/// Containers waiting in the pool are named `aicockpit--pool-<id>`; a
/// workspace name cannot start with `-`, so they never clash.
const POOL_CONTAINER_PREFIX: &str = "aicockpit--pool-";

/// The unprivileged user workspaces run as when their folder belongs to root.
pub const DEFAULT_UID: u32 = 1000;

/// Everything the manager needs to know, usually from `[workspaces]`.
#[derive(Clone, Debug)]
pub struct ManagerOptions {
    pub data_dir: PathBuf,
    pub backend: BackendKind,
    pub default_image: String,
    pub network: String,
    pub limits: Limits,
    pub docker: DockerOptions,
    /// Stop workspaces unused for this long (`None`: never).
    pub idle_stop: Option<Duration>,
    pub terminal_idle: Duration,
    /// Largest file the file API reads or writes.
    pub max_file_bytes: u64,
    /// Folders a `--dir` may not be, hold or lie in (besides the data
    /// folder), such as the cache and config folders, whether they exist yet or not.
    pub protected_dirs: Vec<PathBuf>,
    /// The most any one workspace may ask for: requests above are refused,
    /// restored backups are lowered to these.
    pub max_limits: Limits,
    /// The most file bytes one backup may hold (or a restore write).
    pub max_backup_bytes: u64,
}

impl ManagerOptions {
    /// Options from the `[workspaces]` section, with records under `data_dir`.
    pub fn from_config(
        config: &WorkspacesConfig,
        data_dir: &Path,
    ) -> Result<ManagerOptions, WorkspaceError> {
        Ok(ManagerOptions {
            data_dir: data_dir.to_path_buf(),
            backend: BackendKind::parse(&config.backend)?,
            default_image: config.default_image.clone(),
            network: config.network.clone(),
            limits: Limits {
                memory_bytes: parse_size(&config.memory)?,
                cpus: config.cpus,
                pids: config.pids_limit,
                nofile: config.nofile,
                nproc: config.nproc,
            },
            docker: DockerOptions {
                read_only_root: config.read_only_root,
                ..DockerOptions::default()
            },
            idle_stop: (config.idle_stop_minutes > 0)
                .then(|| Duration::from_secs(config.idle_stop_minutes.saturating_mul(60))),
            terminal_idle: Duration::from_secs(
                config.terminal_idle_minutes.max(1).saturating_mul(60),
            ),
            max_file_bytes: 16 << 20,
            protected_dirs: Vec::new(),
            max_limits: Limits {
                memory_bytes: parse_size(&config.max_memory)?,
                cpus: config.max_cpus,
                pids: config.max_pids,
                nofile: config.nofile,
                nproc: config.nproc,
            },
            max_backup_bytes: parse_size(&config.max_backup_bytes)?,
        })
    }
}

/// What a user asks for when creating a workspace; unset fields take the defaults.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub name: String,
    pub image: Option<String>,
    /// Size such as `1g`.
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    pub network: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Use this host folder instead of a new one under the data folder.
    pub dir: Option<PathBuf>,
    /// Start the workspace once created.
    pub start: bool,
}

/// What reconciling the store with the engine found.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ReconcileReport {
    /// Records whose container was removed outside AiCockpit.
    pub missing: Vec<String>,
    /// Containers with our labels and no record, taken back into the store.
    pub adopted: Vec<String>,
    /// Containers with our labels that could not be adopted (their folder is gone).
    pub orphans: Vec<String>,
    /// Records that could not be read.
    pub damaged: Vec<String>,
}

/// What `remove` did with the files.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RemoveReport {
    pub name: String,
    /// The folder still holding the files, unless purged.
    pub files_kept: Option<PathBuf>,
}

/// Workspaces of one data folder on one backend.
pub struct WorkspaceManager {
    store: Store,
    backend: Arc<dyn Backend>,
    options: ManagerOptions,
    /// The data folder, as written to the containers' scope label.
    scope: String,
    /// Serialises create/remove/restore within this process; a file lock
    /// ([`WorkspaceManager::lock`]) does it across processes.
    lifecycle: tokio::sync::Mutex<()>,
    terminals: TerminalRegistry,
}

/// Held while records and containers change: the in-process mutex and an
/// exclusive `flock` on `<data_dir>/.lifecycle.lock`, released on drop.
struct LifecycleGuard<'a> {
    _task: tokio::sync::MutexGuard<'a, ()>,
    _file: std::fs::File,
}

/// System folders a workspace may never mount (the container could rewrite them).
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
];

impl WorkspaceManager {
    /// Connect to the configured backend (the Docker engine must answer).
    pub async fn open(options: ManagerOptions) -> Result<WorkspaceManager, WorkspaceError> {
        let backend: Arc<dyn Backend> = match options.backend {
            BackendKind::Docker => Arc::new(DockerBackend::connect(options.docker.clone()).await?),
            BackendKind::Local => Arc::new(LocalBackend::new()),
        };
        Ok(WorkspaceManager::with_backend(options, backend))
    }

    /// A manager over a given backend.
    pub fn with_backend(
        mut options: ManagerOptions,
        backend: Arc<dyn Backend>,
    ) -> WorkspaceManager {
        // One spelling of the data folder for the records, the bind mounts and
        // the scope label, whatever symlinks or relative paths led to it.
        let _ = std::fs::create_dir_all(&options.data_dir);
        if let Ok(canonical) = std::fs::canonicalize(&options.data_dir) {
            options.data_dir = canonical;
        }
        let scope = options.data_dir.display().to_string();
        let terminals = TerminalRegistry::new(TerminalOptions {
            idle_timeout: options.terminal_idle,
            ..TerminalOptions::default()
        });
        WorkspaceManager {
            scope,
            store: Store::new(&options.data_dir),
            backend,
            options,
            lifecycle: tokio::sync::Mutex::new(()),
            terminals,
        }
    }

    /// Take the lifecycle lock (waits up to a minute for another process).
    async fn lock(&self) -> Result<LifecycleGuard<'_>, WorkspaceError> {
        use std::os::fd::AsRawFd;
        let task = self.lifecycle.lock().await;
        let path = self.options.data_dir.join(".lifecycle.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| WorkspaceError::io(&path, e))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(LifecycleGuard {
                    _task: task,
                    _file: file,
                });
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(WorkspaceError::io(&path, error));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(WorkspaceError::Timeout {
                    action: format!("wait for another process to release {}", path.display()),
                    seconds: 60,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Refuse a user-supplied folder that would expose the host or our own
    /// state to the container: system folders, and any folder that is, holds
    /// or lies within the data folder or another protected folder.
    fn check_user_dir(&self, dir: &Path) -> Result<PathBuf, WorkspaceError> {
        let dir = std::fs::canonicalize(dir).map_err(|e| WorkspaceError::io(dir, e))?;
        if !dir.is_dir() {
            return Err(WorkspaceError::InvalidRequest(format!(
                "--dir {}: not a folder",
                dir.display()
            )));
        }
        if SYSTEM_DIRS.iter().any(|system| dir == Path::new(system)) {
            return Err(WorkspaceError::InvalidRequest(format!(
                "--dir {}: a system folder cannot be a workspace; use a project folder",
                dir.display()
            )));
        }
        let mut protected = vec![self.options.data_dir.clone()];
        // A protected folder that does not exist yet is protected all the
        // same: resolve what exists of it and keep the rest of its path.
        protected.extend(
            self.options
                .protected_dirs
                .iter()
                .map(|p| resolve_partly(p)),
        );
        // The folder's owner may not be who runs AiCockpit (`sudo`): their
        // own settings folders are protected too.
        if let Some(home) = std::fs::metadata(&dir).ok().and_then(|m| home_of(m.uid())) {
            for below in [".config", ".cache", ".local/share", ".ssh", ".gnupg"] {
                protected.push(resolve_partly(&home.join(below)));
            }
        }
        for guarded in protected {
            if guarded.starts_with(&dir) || dir.starts_with(&guarded) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "--dir {}: it overlaps AiCockpit's own folder {}; use a project folder",
                    dir.display(),
                    guarded.display()
                )));
            }
        }
        self.check_overlap(&dir, None)?;
        Ok(dir)
    }

    /// Refuse a folder that is, holds or lies within another workspace's
    /// folder: the outer container could swap the inner folder for a symlink
    /// to `/`, which Docker would mount at the inner workspace's next start.
    fn check_overlap(&self, dir: &Path, except: Option<&str>) -> Result<(), WorkspaceError> {
        let records = self
            .store
            .list()?
            .0
            .into_iter()
            .chain(self.pool_store().list()?.0);
        for other in records {
            if Some(other.id.as_str()) == except {
                continue;
            }
            let theirs = resolve_partly(&other.dir);
            if theirs.starts_with(dir) || dir.starts_with(&theirs) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "{} overlaps the folder of workspace {:?} ({}): one workspace's container could \
                     change the other's files and mount; give each workspace a folder of its own",
                    dir.display(),
                    other.name,
                    theirs.display()
                )));
            }
        }
        Ok(())
    }

    /// Before a container is created or started: the workspace's user is not
    /// root, its folder overlaps no other workspace's, and it is still the
    /// folder that was recorded, reached with no symlink in any component
    /// (Docker resolves a bind mount's source again at every start).
    fn check_before_start(&self, workspace: &mut Workspace) -> Result<(), WorkspaceError> {
        if self.backend.isolated() {
            // The local backend runs as whoever runs AiCockpit, root or not.
            check_user(&workspace.user)?;
        }
        self.check_overlap(&workspace.dir, Some(&workspace.id))?;
        let folder = Folder::open_no_symlinks(&workspace.dir).map_err(|error| {
            WorkspaceError::InvalidRequest(format!(
                "the folder of workspace {:?} cannot be used: {error}; it may have been replaced \
                 (by a container that can write its parent folder?), so the workspace was not started",
                workspace.name
            ))
        })?;
        let identity = folder
            .identity()
            .map_err(|e| WorkspaceError::io(&workspace.dir, e))?;
        let seen = DirIdentity {
            device: identity.device,
            inode: identity.inode,
        };
        match workspace.dir_identity {
            Some(recorded) if recorded != seen => Err(WorkspaceError::InvalidRequest(format!(
                "the folder of workspace {:?} ({}) is not the folder it was created with (another folder \
                 was put in its place), so the workspace was not started",
                workspace.name,
                workspace.dir.display()
            ))),
            Some(_) => Ok(()),
            None => {
                // A record from before identities were kept: remember this one.
                workspace.dir_identity = Some(seen);
                Ok(())
            }
        }
    }

    /// Check, once a container runs, that none of its processes is root or
    /// in the root group, whatever the image or the user spec says. The
    /// engine's host reports who the processes are (`docker top`), so no
    /// program inside the container can fake the answer. A root workspace is
    /// stopped again.
    async fn verify_not_root(&self, workspace: &Workspace) -> Result<(), WorkspaceError> {
        if !self.backend.isolated() {
            return Ok(());
        }
        let Some(owners) = self.backend.process_owners(workspace).await? else {
            return Ok(());
        };
        let rooted = owners
            .iter()
            .find(|o| o.uid == 0 || o.gid == 0 || o.groups.contains(&0));
        if owners.is_empty() || rooted.is_some() {
            let _ = self.backend.stop(workspace).await;
            let seen = rooted
                .map(|o| {
                    format!(
                        "process {} runs as uid {}, gid {}, groups {:?}",
                        o.pid, o.uid, o.gid, o.groups
                    )
                })
                .unwrap_or_else(|| "no process could be seen".to_string());
            return Err(WorkspaceError::InvalidRequest(format!(
                "workspace {:?} (user {:?}, image {}): {seen}; workspaces never run as root or in the root \
                 group, so it was stopped",
                workspace.name, workspace.user, workspace.image
            )));
        }
        Ok(())
    }

    /// Refuse a folder that overlaps a folder any other container on the
    /// engine mounts writable (another data folder's workspace, a container
    /// made outside AiCockpit): its processes could swap this one's parts.
    async fn check_engine_mounts(
        &self,
        dir: &Path,
        own_container: Option<&str>,
    ) -> Result<(), WorkspaceError> {
        for (container, source) in self.backend.writable_mount_sources().await? {
            if own_container
                .is_some_and(|own| container.starts_with(own) || own.starts_with(&container))
            {
                continue;
            }
            let theirs = resolve_partly(&source);
            if theirs.starts_with(dir) || dir.starts_with(&theirs) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "{} overlaps {}, which container {} mounts writable: its processes could change this \
                     workspace's folder and mount; give the workspace a folder no other container mounts",
                    dir.display(),
                    theirs.display(),
                    container.chars().take(12).collect::<String>()
                )));
            }
        }
        Ok(())
    }

    /// Where an archive may be written: not inside any workspace's folder,
    /// which a container can change while the archive is written.
    fn check_archive_destination(&self, archive: &Path) -> Result<(), WorkspaceError> {
        let (folder, _) =
            crate::confined::open_parent(archive).map_err(|e| WorkspaceError::io(archive, e))?;
        let here = folder
            .current_path()
            .map_err(|e| WorkspaceError::io(archive, e))?;
        // By identity too: a bind mount or another path can reach a
        // workspace folder under a name that no prefix comparison catches.
        let records: Vec<Workspace> = self
            .store
            .list()?
            .0
            .into_iter()
            .chain(self.pool_store().list()?.0)
            .collect();
        let mut ancestor = Some(folder);
        while let Some(current) = ancestor {
            let identity = current
                .identity()
                .map_err(|e| WorkspaceError::io(archive, e))?;
            if let Some(other) = records.iter().find(|record| {
                record.dir_identity.is_some_and(|recorded| {
                    recorded.device == identity.device && recorded.inode == identity.inode
                })
            }) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "{} is inside the folder of workspace {:?}, which its container can change while the \
                     archive is written: write the backup to a folder outside every workspace",
                    archive.display(),
                    other.name
                )));
            }
            ancestor = current.parent().ok().flatten();
        }
        for other in records {
            let theirs = resolve_partly(&other.dir);
            if here.starts_with(&theirs) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "{} is inside the folder of workspace {:?}, which its container can change while the \
                     archive is written: write the backup to a folder outside every workspace",
                    archive.display(),
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// Refuse limits above the configured maximums.
    fn check_max_limits(&self, limits: &Limits) -> Result<(), WorkspaceError> {
        let max = &self.options.max_limits;
        if limits.memory_bytes > max.memory_bytes {
            return Err(WorkspaceError::InvalidRequest(format!(
                "a memory limit of {} bytes is over workspaces.max_memory ({} bytes)",
                limits.memory_bytes, max.memory_bytes
            )));
        }
        if limits.cpus > max.cpus {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{} CPUs is over workspaces.max_cpus ({})",
                limits.cpus, max.cpus
            )));
        }
        if limits.pids > max.pids {
            return Err(WorkspaceError::InvalidRequest(format!(
                "a process limit of {} is over workspaces.max_pids ({})",
                limits.pids, max.pids
            )));
        }
        Ok(())
    }

    /// Records only, without a backend: enough to find a workspace's folder.
    pub fn store_for(data_dir: &Path) -> Store {
        Store::new(data_dir)
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Whether a removed workspace of this name left its files behind
    /// (`remove` without purge): a `create` of the name would take them.
    pub fn has_kept_files(&self, name: &str) -> Result<bool, WorkspaceError> {
        Ok(self.store.get(name)?.is_none() && self.store.workspace_dir(name).exists())
    }

    pub fn options(&self) -> &ManagerOptions {
        &self.options
    }

    /// Bring the store in line with the engine: mark records whose container
    /// is gone as missing and adopt labelled containers that have no record.
    pub async fn reconcile(&self) -> Result<ReconcileReport, WorkspaceError> {
        let _guard = self.lock().await?;
        let observed = self.backend.list(&self.scope).await?;
        let (records, damaged) = self.store.list()?;
        let mut report = ReconcileReport {
            damaged: damaged.iter().map(|e| e.to_string()).collect(),
            ..ReconcileReport::default()
        };
        let mut known = std::collections::HashSet::new();
        for mut record in records {
            if record.backend != self.backend.kind() {
                continue;
            }
            known.insert(record.id.clone());
            let before = record.clone();
            match observed.get(&record.id) {
                Some(seen) => {
                    record.container_id = Some(seen.container_id.clone());
                    record.state = seen.state;
                }
                None if self.backend.kind() == BackendKind::Docker => {
                    if record.state != WorkspaceState::Missing {
                        report.missing.push(record.name.clone());
                    }
                    record.state = WorkspaceState::Missing;
                    record.container_id = None;
                }
                None => {}
            }
            if record != before {
                self.store.put(&record)?;
            }
        }
        for (id, seen) in observed {
            if known.contains(&id) || seen.container_name.starts_with(POOL_CONTAINER_PREFIX) {
                continue;
            }
            let adopted = seen
                .labels
                .get(labels::RECORD)
                .and_then(|json| serde_json::from_str::<Workspace>(json).ok())
                .filter(|record| record.dir.is_dir())
                // A label is whatever the engine holds: its user is checked like any other.
                .filter(|record| check_user(&record.user).is_ok());
            match adopted {
                Some(mut record) => {
                    record.id = id;
                    // A claimed pool container carries the pool's name in its labels.
                    if let Some(name) = seen.container_name.strip_prefix("aicockpit-") {
                        record.name = name.to_string();
                    }
                    record.container_id = Some(seen.container_id.clone());
                    record.state = seen.state;
                    if self.store.get(&record.name)?.is_some() {
                        report.orphans.push(seen.container_id);
                        continue;
                    }
                    if !record.env.is_empty() {
                        tracing::warn!(
                            "workspace {}: adopted from its container's labels, which keep the names of its \
                             environment variables but not their values; set them again before it is re-created",
                            record.name
                        );
                    }
                    self.store.put(&record)?;
                    report.adopted.push(record.name);
                }
                None => report.orphans.push(seen.container_id),
            }
        }
        Ok(report)
    }

    /// A workspace's record.
    pub fn get(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        self.store
            .get(name)?
            .ok_or_else(|| WorkspaceError::NotFound {
                name: name.to_string(),
            })
    }

    /// A workspace's record, refreshed with what the engine sees now.
    pub async fn inspect(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let mut record = self.get(name)?;
        let before = record.clone();
        match self.backend.inspect(&record).await? {
            Some(seen) => {
                record.state = seen.state;
                record.container_id = Some(seen.container_id);
                record.ports = seen.ports;
                if seen.started_at.is_some() {
                    record.started_at = seen.started_at;
                }
            }
            None => {
                record.state = WorkspaceState::Missing;
                record.container_id = None;
            }
        }
        if record != before {
            self.store.update(&record)?;
        }
        Ok(record)
    }

    /// Every workspace of this backend, sorted by name, as last reconciled.
    pub fn list(&self) -> Result<Vec<Workspace>, WorkspaceError> {
        let (records, _) = self.store.list()?;
        Ok(records
            .into_iter()
            .filter(|r| r.backend == self.backend.kind())
            .collect())
    }

    /// Create a workspace (and start it when asked). On any failure,
    /// nothing is left: no record, no container, no folder this call made.
    pub async fn create(&self, request: CreateRequest) -> Result<Workspace, WorkspaceError> {
        validate_name(&request.name)?;
        let _guard = self.lock().await?;
        self.create_locked(request).await
    }

    /// [`WorkspaceManager::create`] with the lifecycle lock already held.
    async fn create_locked(&self, request: CreateRequest) -> Result<Workspace, WorkspaceError> {
        self.create_locked_with(request, false).await
    }

    async fn create_locked_with(
        &self,
        request: CreateRequest,
        restoring: bool,
    ) -> Result<Workspace, WorkspaceError> {
        validate_name(&request.name)?;
        let workspace_dir = self.store.workspace_dir(&request.name);
        if !restoring && request.dir.is_none() && restore_unfinished(&workspace_dir) {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{} holds the files of a restore that never finished: restore the backup again, \
                 or delete that folder to start {:?} empty",
                workspace_dir.display(),
                request.name
            )));
        }
        if self.store.get(&request.name)?.is_some() {
            return Err(WorkspaceError::NameTaken { name: request.name });
        }
        let (dir, managed) = match &request.dir {
            Some(dir) => (self.check_user_dir(dir)?, false),
            None => (self.store.files_dir(&request.name), true),
        };
        if let Some(workspace) = self.claim_pooled(&request).await? {
            return Ok(workspace);
        }
        // Creating the folder is the claim on it: one we did not make
        // (kept files of a removed workspace) is never deleted here.
        let made_dir = managed && {
            let parent = self.store.workspace_dir(&request.name);
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&parent)
                .map_err(|e| WorkspaceError::io(&parent, e))?;
            match std::fs::create_dir(&dir) {
                Ok(()) => true,
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(error) => return Err(WorkspaceError::io(&dir, error)),
            }
        };
        let result = match self
            .create_inner(&request, &dir, managed, &self.store)
            .await
        {
            Ok(workspace) if request.start => match self.start(&workspace.name).await {
                Ok(started) => Ok(started),
                Err(error) => {
                    let _ = self.backend.remove(&workspace).await;
                    let _ = self.store.delete(&workspace.name, false);
                    Err(error)
                }
            },
            other => other,
        };
        if result.is_err() && made_dir {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir(self.store.workspace_dir(&request.name));
        }
        result
    }

    async fn create_inner(
        &self,
        request: &CreateRequest,
        dir: &Path,
        managed: bool,
        store: &Store,
    ) -> Result<Workspace, WorkspaceError> {
        std::fs::create_dir_all(dir).map_err(|e| WorkspaceError::io(dir, e))?;
        let devcontainer = devcontainer::load(dir)?;
        let mut image = request.image.clone();
        let mut env = BTreeMap::new();
        let mut user = None;
        let mut post_create_command = None;
        if let Some(dev) = &devcontainer {
            if image.is_none() {
                image = dev.image.clone();
                if image.is_none() && dev.build.is_some() {
                    return Err(WorkspaceError::InvalidRequest(
                        "devcontainer.json asks AiCockpit to build an image (`build`), which it does not do yet: \
                         build it with `docker build -t NAME .devcontainer` and pass `--image NAME`"
                            .into(),
                    ));
                }
            }
            env.extend(dev.container_env.clone());
            for asked in [&dev.container_user, &dev.remote_user]
                .into_iter()
                .flatten()
            {
                check_user(asked).map_err(|error| {
                    WorkspaceError::InvalidRequest(format!(
                        "devcontainer.json (`containerUser`/`remoteUser`): {error}"
                    ))
                })?;
            }
            user = dev.container_user.clone().or(dev.remote_user.clone());
            post_create_command = dev
                .post_create_command
                .as_ref()
                .map(|command| vec!["/bin/sh".to_string(), "-c".to_string(), shell_line(command)]);
        }
        env.extend(request.env.clone());
        let user = match user {
            Some(user) => user,
            None => self.workspace_user(dir, managed)?,
        };
        if self.backend.kind() == BackendKind::Local && post_create_command.is_some() {
            // The local backend has no isolation: a repository's command is
            // not run on the host without the user asking for it.
            tracing::warn!(
                "postCreateCommand of devcontainer.json is not run by the local backend (no isolation)"
            );
            post_create_command = None;
        }
        let mut limits = self.options.limits.clone();
        if let Some(memory) = &request.memory {
            limits.memory_bytes = parse_size(memory)?;
        }
        if let Some(cpus) = request.cpus {
            if cpus.is_nan() || cpus <= 0.0 {
                return Err(WorkspaceError::InvalidRequest(
                    "--cpus must be greater than 0".into(),
                ));
            }
            limits.cpus = cpus;
        }
        if let Some(pids) = request.pids {
            limits.pids = pids;
        }
        if limits.pids < 8 {
            // Docker reads 0 (and negative) as "no limit".
            return Err(WorkspaceError::InvalidRequest(
                "the process limit must be at least 8".into(),
            ));
        }
        if limits.memory_bytes < (6 << 20) {
            return Err(WorkspaceError::InvalidRequest(
                "the memory limit must be at least 6m (Docker's minimum)".into(),
            ));
        }
        self.check_max_limits(&limits)?;
        if self.backend.isolated() {
            check_user(&user)?;
        }
        let identity = Folder::open_no_symlinks(dir)
            .and_then(|folder| folder.identity())
            .map_err(|e| WorkspaceError::io(dir, e))?;
        self.check_engine_mounts(dir, None).await?;
        let created_at = now();
        let mut workspace = Workspace {
            id: crate::docker::new_id(),
            name: request.name.clone(),
            backend: self.backend.kind(),
            image: image.unwrap_or_else(|| self.options.default_image.clone()),
            dir: dir.to_path_buf(),
            managed_dir: managed,
            limits,
            network: request
                .network
                .clone()
                .unwrap_or_else(|| self.options.network.clone()),
            env,
            user,
            container_id: None,
            state: WorkspaceState::Created,
            created_at,
            started_at: None,
            last_used_at: created_at,
            ports: Vec::new(),
            post_create_done: post_create_command.is_none(),
            post_create_command,
            pool_key: None,
            dir_identity: Some(DirIdentity {
                device: identity.device,
                inode: identity.inode,
            }),
        };
        let container_id = self.backend.create(&workspace, &self.scope).await?;
        workspace.container_id = Some(container_id);
        if let Err(error) = store.put(&workspace) {
            let _ = self.backend.remove(&workspace).await;
            return Err(error);
        }
        Ok(workspace)
    }

    /// The user a workspace runs as: the folder's owner unless that is root,
    /// else [`DEFAULT_UID`], with a folder AiCockpit made handed to it. A
    /// user's own folder that belongs to root is refused, not taken over.
    fn workspace_user(&self, dir: &Path, managed: bool) -> Result<String, WorkspaceError> {
        let metadata = std::fs::metadata(dir).map_err(|e| WorkspaceError::io(dir, e))?;
        if metadata.uid() != 0 {
            return Ok(format!("{}:{}", metadata.uid(), metadata.gid()));
        }
        if self.backend.kind() == BackendKind::Local {
            return Ok("0:0".to_string());
        }
        if !managed {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{} belongs to root, and workspaces never run as root: give it to the user who should \
                 own the files (e.g. `chown -R {DEFAULT_UID}:{DEFAULT_UID} {}`)",
                dir.display(),
                dir.display()
            )));
        }
        std::os::unix::fs::chown(dir, Some(DEFAULT_UID), Some(DEFAULT_UID))
            .map_err(|e| WorkspaceError::io(dir, e))?;
        Ok(format!("{DEFAULT_UID}:{DEFAULT_UID}"))
    }

    /// Start a workspace; a container removed by hand is made again from the
    /// record first (the files are on the host and survive).
    pub async fn start(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let mut workspace = self.inspect(name).await?;
        if workspace.state != WorkspaceState::Running {
            self.check_before_start(&mut workspace)?;
            self.check_engine_mounts(&workspace.dir, workspace.container_id.as_deref())
                .await?;
        }
        if workspace.state == WorkspaceState::Missing {
            workspace.container_id = Some(self.backend.create(&workspace, &self.scope).await?);
            workspace.state = WorkspaceState::Created;
            self.store.update(&workspace)?;
        }
        if workspace.state != WorkspaceState::Running {
            self.backend.start(&workspace).await?;
        }
        workspace.state = WorkspaceState::Running;
        workspace.started_at = Some(now());
        workspace.last_used_at = now();
        self.store.update(&workspace)?;
        self.verify_not_root(&workspace).await?;
        if let (false, Some(command)) = (
            workspace.post_create_done,
            workspace.post_create_command.clone(),
        ) {
            let output = self
                .backend
                .run(&workspace, command, Duration::from_secs(600))
                .await?;
            if output.exit_code != Some(0) {
                return Err(WorkspaceError::InvalidRequest(format!(
                    "postCreateCommand of workspace {name:?} failed (exit code {:?}): {}",
                    output.exit_code,
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            workspace.post_create_done = true;
            self.store.update(&workspace)?;
        }
        Ok(workspace)
    }

    pub async fn stop(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let mut workspace = self.get(name)?;
        self.backend.stop(&workspace).await?;
        workspace.state = WorkspaceState::Stopped;
        self.store.update(&workspace)?;
        Ok(workspace)
    }

    pub async fn restart(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let mut workspace = self.get(name)?;
        self.check_before_start(&mut workspace)?;
        self.check_engine_mounts(&workspace.dir, workspace.container_id.as_deref())
            .await?;
        self.backend.restart(&workspace).await?;
        workspace.state = WorkspaceState::Running;
        workspace.started_at = Some(now());
        workspace.last_used_at = now();
        self.store.update(&workspace)?;
        self.verify_not_root(&workspace).await?;
        Ok(workspace)
    }

    /// Delete a workspace's container and record; with `purge`, its files
    /// too (only a folder AiCockpit made; a folder given with `--dir` stays).
    pub async fn remove(&self, name: &str, purge: bool) -> Result<RemoveReport, WorkspaceError> {
        let _guard = self.lock().await?;
        let workspace = self.get(name)?;
        self.backend.remove(&workspace).await?;
        self.store.delete(name, purge && workspace.managed_dir)?;
        let ours = workspace.dir.starts_with(self.store.workspace_dir(name))
            || workspace
                .dir
                .starts_with(self.options.data_dir.join("pool"));
        if purge && workspace.managed_dir && ours {
            // A workspace claimed from the pool keeps its files in the pool's folder.
            match std::fs::remove_dir_all(&workspace.dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(WorkspaceError::io(&workspace.dir, error)),
            }
            if let Some(parent) = workspace.dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        let files_kept = (!purge || !workspace.managed_dir || !ours).then(|| workspace.dir.clone());
        Ok(RemoveReport {
            name: name.to_string(),
            files_kept,
        })
    }

    /// Note that somebody used a workspace (for the idle stop).
    pub fn touch(&self, name: &str) -> Result<(), WorkspaceError> {
        let mut workspace = self.get(name)?;
        workspace.last_used_at = now();
        self.store.update(&workspace)
    }

    fn running(&self, name: &str) -> Result<Workspace, WorkspaceError> {
        let workspace = self.get(name)?;
        match workspace.state {
            WorkspaceState::Running => Ok(workspace),
            WorkspaceState::Missing => Err(WorkspaceError::Missing {
                name: name.to_string(),
            }),
            other => Err(WorkspaceError::NotRunning {
                name: name.to_string(),
                state: other.name().to_string(),
            }),
        }
    }

    /// Start a command in a running workspace.
    pub async fn exec(&self, name: &str, request: ExecRequest) -> Result<ExecIo, WorkspaceError> {
        let workspace = self.running(name)?;
        self.touch(name)?;
        self.backend.exec(&workspace, request).await
    }

    /// Run a command to completion in a running workspace; killed after `timeout`.
    pub async fn run(
        &self,
        name: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<RunOutput, WorkspaceError> {
        let workspace = self.running(name)?;
        self.touch(name)?;
        self.backend.run(&workspace, command, timeout).await
    }

    /// Wait, at most `within`, for the kills of runs whose callers went
    /// away; whether they all ended. A stopping server calls it last.
    pub async fn settle(&self, within: Duration) -> bool {
        self.backend.settle(within).await
    }

    /// Open an interactive shell in a running workspace as a terminal
    /// session that outlives its clients: attach to it (again) through
    /// [`WorkspaceManager::terminal`] by its id; it ends with the shell or
    /// after `terminal_idle` without a client.
    pub async fn open_terminal(
        &self,
        name: &str,
        command: Vec<String>,
        size: (u16, u16),
    ) -> Result<TerminalSession, WorkspaceError> {
        let io = self
            .exec(
                name,
                ExecRequest {
                    command,
                    tty: true,
                    env: vec![("TERM".to_string(), "xterm-256color".to_string())],
                    size: Some(size),
                    ..ExecRequest::default()
                },
            )
            .await?;
        use futures_util::StreamExt;
        let output = io.output.map(|chunk| chunk.map(|(_, bytes)| bytes));
        let terminal_io = TerminalIo {
            output: Box::pin(output),
            input: io.input,
            resize: io.resize,
        };
        let id = format!("{name}/{}", crate::docker::new_id());
        let session = self
            .terminals
            .start(id, terminal_io)
            .map_err(|e| WorkspaceError::InvalidRequest(e.to_string()))?;
        // Once the session ends (the shell exited, or nobody watched it for
        // `terminal_idle`), end the shell and collect its exit status.
        let (watched, exit_code, terminate) = (session.clone(), io.exit_code, io.terminate);
        tokio::spawn(async move {
            watched.closed().await;
            terminate().await;
            let code = exit_code.await;
            watched.set_exit_status(code);
        });
        Ok(session)
    }

    /// A terminal session by id, if it is still open.
    pub fn terminal(&self, id: &str) -> Option<TerminalSession> {
        self.terminals.get(id)
    }

    /// The open terminal sessions.
    pub fn terminals(&self) -> &TerminalRegistry {
        &self.terminals
    }

    pub async fn stats(&self, name: &str) -> Result<Stats, WorkspaceError> {
        let workspace = self.running(name)?;
        self.backend.stats(&workspace).await
    }

    /// The workspace's files, confined to its folder.
    ///
    /// The folder is opened with no symlink in its path and must be the one
    /// the workspace was created with (device and inode), as before a start.
    pub fn files(&self, name: &str) -> Result<WorkspaceFiles, WorkspaceError> {
        let workspace = self.get(name)?;
        let folder = Folder::open_no_symlinks(&workspace.dir).map_err(|error| {
            WorkspaceError::InvalidRequest(format!(
                "the folder of workspace {name:?} cannot be used: {error}"
            ))
        })?;
        let identity = folder
            .identity()
            .map_err(|e| WorkspaceError::io(&workspace.dir, e))?;
        if workspace.dir_identity.is_some_and(|recorded| {
            recorded.device != identity.device || recorded.inode != identity.inode
        }) {
            return Err(WorkspaceError::InvalidRequest(format!(
                "the folder of workspace {name:?} ({}) is not the folder it was created with",
                workspace.dir.display()
            )));
        }
        let dir = folder
            .to_cap_std()
            .map_err(|e| WorkspaceError::io(&workspace.dir, e))?;
        Ok(WorkspaceFiles::from_dir(dir, self.options.max_file_bytes))
    }

    /// Write a compressed backup of a workspace's files and record to
    /// `archive` (mode 0600: the record holds `env` values), which must lie
    /// outside every workspace's folder.
    pub async fn backup(
        &self,
        name: &str,
        archive: &Path,
    ) -> Result<BackupManifest, WorkspaceError> {
        let workspace = self.get(name)?;
        self.check_archive_destination(archive)?;
        let metadata = serde_json::to_value(&workspace).map_err(|e| WorkspaceError::Store {
            path: self.store.workspace_dir(name),
            message: e.to_string(),
        })?;
        let dir = workspace.dir.clone();
        let archive = archive.to_path_buf();
        let limit = self.options.max_backup_bytes;
        tokio::task::spawn_blocking(move || {
            backup::write_backup_limited(&dir, metadata, &archive, limit)
        })
        .await
        .map_err(|e| WorkspaceError::InvalidRequest(format!("backup task failed: {e}")))?
        .map_err(WorkspaceError::from)
    }

    /// Recreate a workspace from a backup, under its old name or `name`.
    ///
    /// Holds the lifecycle lock throughout, so no `create` of the same name
    /// can interleave. The files are extracted into a private folder with an
    /// unpredictable name (`workspaces/.restore-…`, mode 0700, never a name a
    /// workspace can have), checked against the manifest, handed to the
    /// workspace's user, and only then renamed into place; a failed restore
    /// removes it, and one killed midway leaves only that hidden folder,
    /// which no `create` uses and the next restore sweeps away. The user and
    /// limits in the archive are checked like any other request: root is
    /// refused and limits are lowered to the configured maximums.
    pub async fn restore(
        &self,
        archive: &Path,
        name: Option<String>,
        start: bool,
    ) -> Result<Workspace, WorkspaceError> {
        let _guard = self.lock().await?;
        let manifest = {
            let archive = archive.to_path_buf();
            tokio::task::spawn_blocking(move || backup::read_manifest(&archive))
                .await
                .map_err(|e| {
                    WorkspaceError::InvalidRequest(format!("restore task failed: {e}"))
                })??
        };
        let old: Workspace = serde_json::from_value(manifest.workspace.clone()).map_err(|e| {
            WorkspaceError::InvalidRequest(format!(
                "{} is a backup without a readable workspace record: {e}",
                archive.display()
            ))
        })?;
        let name = name.unwrap_or(old.name.clone());
        validate_name(&name)?;
        if self.backend.isolated() {
            check_user(&old.user).map_err(|error| {
                WorkspaceError::InvalidRequest(format!("{}: {error}", archive.display()))
            })?;
        }
        if self.store.get(&name)?.is_some() {
            return Err(WorkspaceError::NameTaken { name });
        }
        let parent = self.store.workspace_dir(&name);
        if parent.exists() {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{} already holds files (kept from a removed workspace named {name:?}): \
                 restore under another name with --name, or delete that folder",
                parent.display()
            )));
        }
        let limits = self.clamp_limits(&old.limits, &name);

        let staging_root = self.store.root().to_path_buf();
        let owner = numeric_owner(&old.user).filter(|(uid, _)| *uid != 0);
        let is_docker = self.backend.kind() == BackendKind::Docker;
        let limit = self.options.max_backup_bytes;
        let restored = {
            let archive = archive.to_path_buf();
            let parent = parent.clone();
            tokio::task::spawn_blocking(move || {
                restore_staged(&archive, &staging_root, &parent, owner, is_docker, limit)
            })
            .await
            .map_err(|e| WorkspaceError::InvalidRequest(format!("restore task failed: {e}")))?
        };
        restored?;
        let request = CreateRequest {
            name: name.clone(),
            image: Some(old.image.clone()),
            memory: Some(limits.memory_bytes.to_string()),
            cpus: Some(limits.cpus),
            pids: Some(limits.pids),
            // The archive's network could be `bridge` or another project's
            // network: a backup gets the configured one unless they agree.
            network: Some(self.options.network.clone()),
            env: old.env.clone(),
            dir: None,
            start,
        };
        if old.network != self.options.network {
            tracing::warn!(
                "workspace {name}: the backup asks for network {:?}; restored with the configured {:?} \
                 (workspaces.network)",
                old.network,
                self.options.network
            );
        }
        let result = self.create_restored(request).await;
        match &result {
            Ok(_) => {
                // The record exists now: the folder is an ordinary workspace's.
                if let Ok(entries) = std::fs::read_dir(&parent) {
                    for entry in entries.filter_map(Result::ok) {
                        if entry
                            .file_name()
                            .as_bytes()
                            .starts_with(RESTORING_MARKER.as_bytes())
                        {
                            let _ = std::fs::remove_file(entry.path());
                        }
                    }
                }
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(&parent);
            }
        }
        result
    }

    /// [`WorkspaceManager::create_locked`] over files a restore just put in place.
    async fn create_restored(&self, request: CreateRequest) -> Result<Workspace, WorkspaceError> {
        self.create_locked_with(request, true).await
    }

    /// Limits from an archive, lowered to the configured maximums (with a warning).
    fn clamp_limits(&self, asked: &Limits, name: &str) -> Limits {
        let max = &self.options.max_limits;
        let limits = Limits {
            memory_bytes: asked.memory_bytes.min(max.memory_bytes),
            cpus: if asked.cpus.is_finite() && asked.cpus > 0.0 {
                asked.cpus.min(max.cpus)
            } else {
                self.options.limits.cpus.min(max.cpus)
            },
            pids: asked.pids.min(max.pids),
            nofile: self.options.limits.nofile,
            nproc: self.options.limits.nproc,
        };
        if &limits != asked {
            tracing::warn!(
                "workspace {name}: the backup asks for limits above the configured maximums; \
                 restored with memory {} bytes, {} CPUs, {} processes",
                limits.memory_bytes,
                limits.cpus,
                limits.pids
            );
        }
        limits
    }

    /// Stop every running workspace nobody used for `idle` and nobody
    /// watches in a terminal; returns their names. A workspace that cannot
    /// be stopped is logged and does not keep the others running.
    pub async fn stop_idle(&self, idle: Duration) -> Result<Vec<String>, WorkspaceError> {
        let cutoff = now().saturating_sub(idle.as_secs());
        let watched: std::collections::HashSet<String> = self
            .terminals
            .ids()
            .into_iter()
            .filter(|id| self.terminals.get(id).is_some_and(|s| s.clients() > 0))
            .filter_map(|id| id.split_once('/').map(|(name, _)| name.to_string()))
            .collect();
        let mut stopped = Vec::new();
        for workspace in self.list()? {
            if workspace.state != WorkspaceState::Running
                || workspace.last_used_at > cutoff
                || watched.contains(&workspace.name)
            {
                continue;
            }
            match self.stop(&workspace.name).await {
                Ok(_) => stopped.push(workspace.name),
                Err(error) => tracing::warn!("idle stop of workspace {}: {error}", workspace.name),
            }
        }
        Ok(stopped)
    }

    /// Run [`WorkspaceManager::stop_idle`] every `every` in the background,
    /// with the configured idle time (does nothing when it is off).
    pub fn spawn_idle_stopper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let Some(idle) = manager.options.idle_stop else {
                return;
            };
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                if let Err(error) = manager.stop_idle(idle).await {
                    tracing::warn!("idle stop failed: {error}");
                }
            }
        })
    }

    /// Everything a pooled container's settings depend on.
    fn pool_key(&self) -> String {
        format!(
            "{}|{:?}|{}|{}|{}",
            self.options.default_image,
            self.options.limits,
            self.options.network,
            self.options.docker.read_only_root,
            self.options.docker.tmp_size
        )
    }

    fn pool_store(&self) -> Store {
        Store::at(self.options.data_dir.join("pool"))
    }

    /// The pooled containers waiting to be claimed.
    pub fn pool(&self) -> Result<Vec<Workspace>, WorkspaceError> {
        Ok(self.pool_store().list()?.0)
    }

    /// Create containers with the default settings, start them and freeze
    /// them, until `size` wait in the pool; returns how many were made.
    ///
    /// Frozen, not stopped: on a typical engine a cold `start` alone takes
    /// longer than the whole pooled path (rename, thaw, first exec); a frozen
    /// container uses no CPU and only the memory of its idle init process.
    pub async fn fill_pool(&self, size: usize) -> Result<usize, WorkspaceError> {
        let _guard = self.lock().await?;
        let store = self.pool_store();
        let mut made = 0;
        while store.list()?.0.len() < size {
            let name = format!("-pool-{}", crate::docker::new_id());
            let dir = store.files_dir(&name);
            let request = CreateRequest {
                name: name.clone(),
                ..CreateRequest::default()
            };
            let result = async {
                let mut entry = self.create_inner(&request, &dir, true, &store).await?;
                let ready = async {
                    self.backend.start(&entry).await?;
                    self.verify_not_root(&entry).await?;
                    self.backend.freeze(&entry).await
                }
                .await;
                if let Err(error) = ready {
                    let _ = self.backend.remove(&entry).await;
                    return Err(error);
                }
                entry.state = WorkspaceState::Running;
                entry.started_at = Some(now());
                entry.pool_key = Some(self.pool_key());
                store.put(&entry)
            }
            .await;
            if let Err(error) = result {
                let _ = std::fs::remove_dir_all(store.workspace_dir(&name));
                return Err(error);
            }
            made += 1;
        }
        Ok(made)
    }

    /// Remove every pooled container and its folder; returns how many.
    pub async fn drain_pool(&self) -> Result<usize, WorkspaceError> {
        let _guard = self.lock().await?;
        let store = self.pool_store();
        let entries = store.list()?.0;
        for entry in &entries {
            self.backend.remove(entry).await?;
            store.delete(&entry.name, true)?;
        }
        Ok(entries.len())
    }

    /// Take a pooled container for a request that asks for nothing but the
    /// defaults; `None` when the pool is empty or the request is special.
    async fn claim_pooled(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Workspace>, WorkspaceError> {
        let plain = request.image.is_none()
            && request.memory.is_none()
            && request.cpus.is_none()
            && request.pids.is_none()
            && request.network.is_none()
            && request.env.is_empty()
            && request.dir.is_none()
            && request.start
            && !self.store.files_dir(&request.name).exists();
        if !plain {
            return Ok(None);
        }
        let store = self.pool_store();
        for mut entry in store.list()?.0 {
            // Renaming the record claims it atomically, even against another process.
            let record = store.record_path(&entry.name);
            let claimed = record.with_file_name("claimed.json");
            if std::fs::rename(&record, &claimed).is_err() {
                continue;
            }
            if entry.pool_key.as_deref() != Some(self.pool_key().as_str()) {
                // Made with other defaults: not what this request asks for.
                let _ = std::fs::rename(&claimed, &record);
                continue;
            }
            let container_name = format!("aicockpit-{}", request.name);
            if let Err(error) = self.backend.rename(&entry, &container_name).await {
                let _ = std::fs::rename(&claimed, &record);
                return Err(error);
            }
            if let Err(error) = self.backend.thaw(&entry).await {
                // A pooled container that cannot be thawed is of no use to anyone.
                let _ = self.backend.remove(&entry).await;
                let _ = std::fs::remove_dir_all(store.workspace_dir(&entry.name));
                return Err(error);
            }
            entry.name = request.name.clone();
            entry.pool_key = None;
            let now = now();
            entry.created_at = now;
            entry.started_at = Some(now);
            entry.last_used_at = now;
            entry.state = WorkspaceState::Running;
            if let Err(error) = self.store.put(&entry) {
                let _ = self.backend.remove(&entry).await;
                return Err(error);
            }
            let _ = std::fs::remove_file(&claimed);
            return Ok(Some(entry));
        }
        Ok(None)
    }
}
