//! `aicockpit workspace …` and `aicockpit image build`: wiring from the
//! command line to `aicockpit-workspace`, with text or `--json` output.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use aicockpit_config::{Config, Paths};
use aicockpit_workspace::image::{self, ImageSource};
use aicockpit_workspace::{
    CreateRequest, DockerBackend, ExecRequest, ManagerOptions, OutputKind, Workspace,
    WorkspaceManager, WorkspaceState,
};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use futures_util::StreamExt;

use crate::terminal_text::printable;

/// Workspace verbs.
#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace: a hardened container with a host folder at /workspace, started unless --no-start.
    ///
    /// The folder is new under the data folder unless --dir names one. A
    /// .devcontainer/devcontainer.json in it is read (image, containerEnv,
    /// remoteUser, postCreateCommand); fields that weaken isolation are refused.
    Create {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// A local image (never pulled); default: workspaces.default_image.
        #[arg(long)]
        image: Option<String>,
        /// Memory limit, e.g. 1g (swap is set equal, so the workspace never swaps).
        #[arg(long)]
        memory: Option<String>,
        /// CPU limit, e.g. 1.5.
        #[arg(long)]
        cpus: Option<f64>,
        /// Most processes and threads in the workspace.
        #[arg(long)]
        pids: Option<u32>,
        /// Docker network mode (none, bridge, or a named network).
        #[arg(long)]
        network: Option<String>,
        /// KEY=VALUE environment variable; repeatable.
        #[arg(long = "env", short = 'e')]
        env: Vec<String>,
        /// Mount this host folder instead of a new one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Create the container but do not start it.
        #[arg(long)]
        no_start: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List workspaces, after reconciling the records with the engine.
    #[command(alias = "list")]
    Ls {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a workspace: state, image, limits, times, ports, folder.
    Inspect {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the host folder holding the workspace's files (works without Docker).
    Path {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
    },
    /// Start a workspace (a container removed by hand is made again; files are kept).
    Start {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a workspace (its files and container are kept).
    Stop {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop and start a workspace again.
    Restart {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a workspace's container and record; its files are kept unless --purge.
    #[command(alias = "remove")]
    Rm {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Delete the files too (only a folder AiCockpit made; a --dir folder stays).
        #[arg(long)]
        purge: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a workspace; exits with the command's exit code.
    Exec {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Kill the command after this many seconds (its output so far is printed).
        #[arg(long)]
        timeout: Option<u64>,
        /// Print {stdout, stderr, exit_code, timed_out} as JSON (implies capturing the output).
        #[arg(long)]
        json: bool,
        /// Pass this process's stdin to the command (without it the command reads end-of-file).
        #[arg(long, short = 'i', conflicts_with_all = ["json", "timeout"])]
        interactive: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open an interactive shell in a workspace (needs a terminal).
    Shell {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// The shell to run.
        #[arg(long, default_value = "/bin/sh")]
        shell: String,
    },
    /// CPU, memory and process count of a running workspace.
    Stats {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a compressed backup (files + record, with hashes) to FILE.
    Backup {
        /// The workspace's name (see `aicockpit workspace ls`).
        name: String,
        /// The backup file to write (a gzip-compressed tar).
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recreate a workspace from a backup; its files are checked against the recorded hashes.
    Restore {
        /// The backup file to restore from (made by `aicockpit workspace backup`).
        file: PathBuf,
        /// Restore under another name.
        #[arg(long)]
        name: Option<String>,
        /// Create the container but do not start it.
        #[arg(long)]
        no_start: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The pool of frozen, ready containers that makes a plain `create` fast.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Stop running workspaces nobody used for a while (for cron).
    StopIdle {
        /// Idle minutes; default: workspaces.idle_stop_minutes.
        #[arg(long)]
        after: Option<u64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Pool verbs.
#[derive(Subcommand)]
pub enum PoolCommand {
    /// Create containers until N wait in the pool (default: workspaces.pool_size).
    Fill {
        /// How many containers should wait in the pool.
        count: Option<usize>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the containers waiting in the pool.
    Ls {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every container waiting in the pool.
    Drain {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Image verbs.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build the default workspace image locally, without a registry.
    ///
    /// The image is FROM scratch: a static busybox (Debian: busybox-static)
    /// with an unprivileged `dev` user (uid 1000), or the root filesystem in
    /// --rootfs (e.g. made with debootstrap).
    Build {
        /// Image tag; default: workspaces.default_image.
        #[arg(long)]
        tag: Option<String>,
        /// A statically linked busybox to use.
        #[arg(long, conflicts_with = "rootfs")]
        busybox: Option<PathBuf>,
        /// A folder holding a whole root filesystem.
        #[arg(long)]
        rootfs: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn manager_options(paths: &Paths, config: &Config) -> Result<ManagerOptions> {
    let mut options = ManagerOptions::from_config(&config.workspaces, &paths.data_dir)?;
    // Whether they exist yet or not: a container given the config folder
    // before `aicockpit/` exists in it could write `config.toml`.
    options.protected_dirs.extend(paths.protected_dirs());
    Ok(options)
}

/// The host folder of a workspace, from its record alone (no engine needed).
pub fn workspace_dir(paths: &Paths, name: &str) -> Result<PathBuf> {
    let store = WorkspaceManager::store_for(&paths.data_dir);
    match store.get(name)? {
        Some(workspace) => Ok(workspace.dir),
        None => bail!("no workspace named {name:?} (see `aicockpit workspace ls`)"),
    }
}

/// Run a workspace verb; returns the process exit code.
pub fn run(paths: &Paths, config: &Config, command: WorkspaceCommand) -> Result<u8> {
    if let WorkspaceCommand::Path { name } = &command {
        println!("{}", workspace_dir(paths, name)?.display());
        return Ok(0);
    }
    let json = command.wants_json();
    let options = manager_options(paths, config)?;
    let runtime = runtime()?;
    let result = runtime.block_on(async move {
        let manager = WorkspaceManager::open(options).await?;
        if !manager.backend().isolated() {
            eprintln!(
                "warning: the local backend runs commands on the host, without any isolation"
            );
        }
        run_with(&manager, config, command).await
    });
    match result {
        // Scripts that asked for JSON get the error as JSON on stdout too.
        Err(error) if json => {
            println!("{}", serde_json::json!({ "error": format!("{error:#}") }));
            eprintln!("error: {}", printable(&format!("{error:#}")));
            Ok(1)
        }
        other => other,
    }
}

impl WorkspaceCommand {
    /// Whether the verb was asked for `--json` output.
    fn wants_json(&self) -> bool {
        match self {
            WorkspaceCommand::Create { json, .. }
            | WorkspaceCommand::Ls { json }
            | WorkspaceCommand::Inspect { json, .. }
            | WorkspaceCommand::Start { json, .. }
            | WorkspaceCommand::Stop { json, .. }
            | WorkspaceCommand::Restart { json, .. }
            | WorkspaceCommand::Rm { json, .. }
            | WorkspaceCommand::Exec { json, .. }
            | WorkspaceCommand::Stats { json, .. }
            | WorkspaceCommand::Backup { json, .. }
            | WorkspaceCommand::Restore { json, .. }
            | WorkspaceCommand::StopIdle { json, .. } => *json,
            WorkspaceCommand::Pool(
                PoolCommand::Fill { json, .. }
                | PoolCommand::Ls { json }
                | PoolCommand::Drain { json },
            ) => *json,
            WorkspaceCommand::Path { .. } | WorkspaceCommand::Shell { .. } => false,
        }
    }
}

async fn run_with(
    manager: &WorkspaceManager,
    config: &Config,
    command: WorkspaceCommand,
) -> Result<u8> {
    match command {
        WorkspaceCommand::Create {
            name,
            image,
            memory,
            cpus,
            pids,
            network,
            env,
            dir,
            no_start,
            json,
        } => {
            let mut variables = BTreeMap::new();
            for pair in env {
                let Some((key, value)) = pair.split_once('=') else {
                    bail!("--env {pair:?}: expected KEY=VALUE");
                };
                variables.insert(key.to_string(), value.to_string());
            }
            let spinner = spinner(!json, &format!("creating workspace {name}"));
            let workspace = manager
                .create(CreateRequest {
                    name,
                    image,
                    memory,
                    cpus,
                    pids,
                    network,
                    env: variables,
                    dir,
                    start: !no_start,
                })
                .await;
            spinner.finish_and_clear();
            print_workspace(&workspace?, json);
            // Top the pool up again for the next one (after the answer is printed).
            let size = config.workspaces.pool_size as usize;
            if size > 0 {
                if let Err(error) = manager.fill_pool(size).await {
                    eprintln!("warning: could not refill the workspace pool: {error}");
                }
            }
        }
        WorkspaceCommand::Pool(command) => match command {
            PoolCommand::Fill { count, json } => {
                let size = count.unwrap_or(config.workspaces.pool_size as usize);
                let made = manager.fill_pool(size).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "made": made, "size": manager.pool()?.len() })
                    );
                } else {
                    println!(
                        "made {made}; {} containers wait in the pool",
                        manager.pool()?.len()
                    );
                }
            }
            PoolCommand::Ls { json } => {
                let pool = manager.pool()?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "pool": pool.iter().map(Workspace::public_view).collect::<Vec<_>>(),
                        })
                    );
                } else {
                    for entry in &pool {
                        println!(
                            "{}  {}  {}",
                            entry.container_name(),
                            entry.image,
                            entry.dir.display()
                        );
                    }
                    eprintln!("{} containers wait in the pool", pool.len());
                }
            }
            PoolCommand::Drain { json } => {
                let removed = manager.drain_pool().await?;
                if json {
                    println!("{}", serde_json::json!({ "removed": removed }));
                } else {
                    println!("removed {removed} pooled containers");
                }
            }
        },
        WorkspaceCommand::Ls { json } => {
            let report = manager.reconcile().await?;
            for name in &report.missing {
                eprintln!("warning: workspace {name}: its container was removed outside AiCockpit (start it to make it again)");
            }
            for name in &report.adopted {
                eprintln!("note: adopted workspace {name} from its container's labels");
            }
            for container in &report.orphans {
                eprintln!("warning: container {container} carries AiCockpit labels but has no record and could not be adopted");
            }
            for damaged in &report.damaged {
                eprintln!("warning: {damaged}");
            }
            let workspaces = manager.list()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "workspaces": workspaces.iter().map(Workspace::public_view).collect::<Vec<_>>(),
                        "reconcile": report,
                    })
                );
            } else if workspaces.is_empty() {
                eprintln!("no workspaces yet: create one with `aicockpit workspace create NAME`");
            } else {
                println!(
                    "{:<20} {:<9} {:<32} {:>5} {:>8}  FOLDER",
                    "NAME", "STATE", "IMAGE", "CPUS", "MEMORY"
                );
                for w in workspaces {
                    println!(
                        "{:<20} {:<9} {:<32} {:>5} {:>8}  {}",
                        w.name,
                        w.state.name(),
                        w.image,
                        w.limits.cpus,
                        human_bytes(w.limits.memory_bytes),
                        w.dir.display()
                    );
                }
            }
        }
        WorkspaceCommand::Inspect { name, json } => {
            let workspace = manager.inspect(&name).await?;
            print_workspace(&workspace, json);
        }
        WorkspaceCommand::Path { .. } => unreachable!("answered without an engine"),
        WorkspaceCommand::Start { name, json } => {
            print_workspace(&manager.start(&name).await?, json)
        }
        WorkspaceCommand::Stop { name, json } => print_workspace(&manager.stop(&name).await?, json),
        WorkspaceCommand::Restart { name, json } => {
            print_workspace(&manager.restart(&name).await?, json)
        }
        WorkspaceCommand::Rm { name, purge, json } => {
            let report = manager.remove(&name, purge).await?;
            if json {
                println!("{}", serde_json::json!(report));
            } else {
                match &report.files_kept {
                    Some(dir) => println!(
                        "removed workspace {name}; its files are kept in {}",
                        dir.display()
                    ),
                    None => println!("removed workspace {name} and its files"),
                }
            }
        }
        WorkspaceCommand::Exec {
            name,
            timeout,
            json,
            interactive,
            command,
        } => {
            // Like `docker exec`: 125 when AiCockpit (not the command) failed.
            return match exec(manager, &name, command, timeout, json, interactive).await {
                Ok(code) => Ok(code),
                Err(error) => {
                    eprintln!("error: {}", printable(&format!("{error:#}")));
                    Ok(125)
                }
            };
        }
        WorkspaceCommand::Shell { name, shell } => {
            return shell_session(manager, &name, &shell).await
        }
        WorkspaceCommand::Stats { name, json } => {
            let stats = manager.stats(&name).await?;
            if json {
                println!("{}", serde_json::json!(stats));
            } else {
                println!(
                    "{name}: CPU {:.1}%  memory {} / {}  processes {} / {}",
                    stats.cpu_percent,
                    human_bytes(stats.memory_bytes),
                    human_bytes(stats.memory_limit_bytes),
                    stats.pids,
                    stats.pids_limit
                );
            }
        }
        WorkspaceCommand::Backup { name, file, json } => {
            let spinner = spinner(!json, &format!("backing up {name}"));
            let manifest = manager.backup(&name, &file).await;
            spinner.finish_and_clear();
            let manifest = manifest?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": file, "files": manifest.files.len(), "created_at": manifest.created_at})
                );
            } else {
                println!(
                    "backed up workspace {name} ({} entries) to {}",
                    manifest.files.len(),
                    file.display()
                );
            }
        }
        WorkspaceCommand::Restore {
            file,
            name,
            no_start,
            json,
        } => {
            let spinner = spinner(!json, &format!("restoring {}", file.display()));
            let workspace = manager.restore(&file, name, !no_start).await;
            spinner.finish_and_clear();
            print_workspace(&workspace?, json);
        }
        WorkspaceCommand::StopIdle { after, json } => {
            let minutes = after.unwrap_or(config.workspaces.idle_stop_minutes);
            if minutes == 0 {
                bail!("idle stop is off (workspaces.idle_stop_minutes = 0); pass --after MINUTES");
            }
            let stopped = manager
                .stop_idle(Duration::from_secs(minutes.saturating_mul(60)))
                .await?;
            if json {
                println!("{}", serde_json::json!({ "stopped": stopped }));
            } else if stopped.is_empty() {
                println!("no workspace has been idle for {minutes} minutes");
            } else {
                println!("stopped {}", stopped.join(", "));
            }
        }
    }
    Ok(0)
}

async fn exec(
    manager: &WorkspaceManager,
    name: &str,
    command: Vec<String>,
    timeout: Option<u64>,
    json: bool,
    interactive: bool,
) -> Result<u8> {
    if json || timeout.is_some() {
        let limit = Duration::from_secs(timeout.unwrap_or(24 * 3600));
        let output = manager.run(name, command, limit).await?;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "stdout": String::from_utf8_lossy(&output.stdout),
                    "stderr": String::from_utf8_lossy(&output.stderr),
                    "exit_code": output.exit_code,
                    "timed_out": output.timed_out,
                })
            );
        } else {
            std::io::stdout().write_all(&output.stdout)?;
            std::io::stderr().write_all(&output.stderr)?;
        }
        if output.timed_out {
            if !json {
                eprintln!("error: the command was killed after {} s", limit.as_secs());
            }
            return Ok(124);
        }
        return Ok(exit_byte(output.exit_code));
    }
    let io = manager
        .exec(
            name,
            ExecRequest {
                command,
                stdin: interactive,
                ..ExecRequest::default()
            },
        )
        .await?;
    let aicockpit_workspace::ExecIo {
        mut output,
        mut input,
        exit_code,
        ..
    } = io;
    if interactive {
        // Copy stdin to the command and close its input at end-of-file.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut input).await;
            let _ = input.shutdown().await;
        });
    } else {
        drop(input);
    }
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = output.next().await {
        let (kind, bytes) = chunk.context("reading the command's output")?;
        match kind {
            OutputKind::Stdout => {
                stdout.write_all(&bytes)?;
                stdout.flush()?;
            }
            OutputKind::Stderr => {
                stderr.write_all(&bytes)?;
            }
        }
    }
    Ok(exit_byte(exit_code.await))
}

fn exit_byte(code: Option<i64>) -> u8 {
    match code {
        Some(code) => u8::try_from(code.clamp(0, 255)).unwrap_or(1),
        None => 1,
    }
}

async fn shell_session(manager: &WorkspaceManager, name: &str, shell: &str) -> Result<u8> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!("`workspace shell` needs a terminal; use `aicockpit workspace exec {name} -- CMD` in scripts");
    }
    let size = crate::terminal_mode::window_size();
    let io = manager
        .exec(
            name,
            ExecRequest {
                command: vec![shell.to_string()],
                tty: true,
                env: vec![(
                    "TERM".into(),
                    std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
                )],
                size,
                ..ExecRequest::default()
            },
        )
        .await?;
    let raw = crate::terminal_mode::RawMode::enable()?;
    let code = crate::terminal_mode::attach(io).await;
    drop(raw);
    Ok(exit_byte(code?))
}

/// `aicockpit image build`.
pub fn image(config: &Config, command: ImageCommand) -> Result<u8> {
    let ImageCommand::Build {
        tag,
        busybox,
        rootfs,
        json,
    } = command;
    let tag = tag.unwrap_or_else(|| config.workspaces.default_image.clone());
    let runtime = runtime()?;
    runtime.block_on(async move {
        let backend = DockerBackend::connect(Default::default()).await?;
        let source = ImageSource { busybox, rootfs };
        let built = image::build_image(&backend, &tag, &source, |line| {
            if !json {
                eprintln!("  {line}");
            }
        })
        .await?;
        if json {
            println!("{}", serde_json::json!(built));
        } else {
            println!("built {} ({}) from {}", built.tag, built.id, built.source);
        }
        Ok(0)
    })
}

fn spinner(show: bool, message: &str) -> indicatif::ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_workspace(workspace: &Workspace, json: bool) {
    if json {
        // `env` values may be secrets: the view lists names only.
        println!("{}", workspace.public_view());
        return;
    }
    let time = |seconds: Option<u64>| match seconds {
        Some(s) => format!("{s} (unix seconds)"),
        None => "never".to_string(),
    };
    println!("name:      {}", workspace.name);
    println!("id:        {}", workspace.id);
    println!("state:     {}", workspace.state.name());
    println!("backend:   {}", workspace.backend.name());
    println!("image:     {}", workspace.image);
    println!(
        "folder:    {} (mounted at /workspace)",
        workspace.dir.display()
    );
    println!("user:      {}", workspace.user);
    println!(
        "limits:    {} CPUs, {} memory (no swap), {} processes",
        workspace.limits.cpus,
        human_bytes(workspace.limits.memory_bytes),
        workspace.limits.pids
    );
    println!("network:   {}", workspace.network);
    println!("created:   {}", time(Some(workspace.created_at)));
    println!("started:   {}", time(workspace.started_at));
    if !workspace.ports.is_empty() {
        println!("ports:     {}", workspace.ports.join(", "));
    }
    if workspace.state == WorkspaceState::Missing {
        println!(
            "note:      the container is gone; `aicockpit workspace start {}` makes it again",
            workspace.name
        );
    }
}
