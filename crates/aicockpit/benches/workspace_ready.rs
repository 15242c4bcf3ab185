//! `cargo bench --bench workspace_ready`: time to a ready workspace (create,
//! start and first successful exec) against a raw `docker run -d` and
//! `docker exec` of the same image with the same hardening flags, measured
//! side by side in one run on the same engine; then the cost of stop, start
//! and delete, and a new workspace taken from the pool of stopped containers.
//!
//! Measured through the library (`WorkspaceManager`, bollard) and through
//! the CLI (`aicockpit workspace create` + `exec`, one process each, which is
//! what the docker CLI baseline is too). Needs a running Docker engine and
//! busybox-static (the image is built locally). Prints a Markdown report.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aicockpit_workspace::image::{build_image, ImageSource};
use aicockpit_workspace::{
    BackendKind, CreateRequest, DockerBackend, DockerOptions, ExecRequest, Limits, ManagerOptions,
    WorkspaceManager,
};

const IMAGE: &str = "aicockpit-bench/workspace:latest";
const WARMUP: usize = 3;
const RUNS: usize = 20;

fn docker(args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn new(name: &'static str) -> Series {
        Series {
            name,
            samples: Vec::new(),
        }
    }
    fn p50(&self) -> f64 {
        percentile(&mut self.samples.clone(), 0.5)
    }
    fn p95(&self) -> f64 {
        percentile(&mut self.samples.clone(), 0.95)
    }
}

fn options(data: &Path) -> ManagerOptions {
    ManagerOptions {
        data_dir: data.to_path_buf(),
        backend: BackendKind::Docker,
        default_image: IMAGE.to_string(),
        network: "none".to_string(),
        limits: Limits {
            memory_bytes: 512 << 20,
            cpus: 1.0,
            pids: 512,
            nofile: 4096,
            nproc: 4096,
        },
        docker: DockerOptions::default(),
        idle_stop: None,
        terminal_idle: Duration::from_secs(60),
        max_file_bytes: 1 << 20,
        protected_dirs: Vec::new(),
        max_limits: Limits {
            memory_bytes: 16 << 30,
            cpus: 8.0,
            pids: 4096,
            nofile: 4096,
            nproc: 4096,
        },
        max_backup_bytes: 1 << 30,
    }
}

async fn first_exec(manager: &WorkspaceManager, name: &str) {
    let io = manager
        .exec(
            name,
            ExecRequest {
                command: vec!["true".into()],
                ..ExecRequest::default()
            },
        )
        .await
        .expect("exec");
    use futures_util::StreamExt;
    let mut output = io.output;
    while output.next().await.is_some() {}
    assert_eq!(io.exit_code.await, Some(0));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(raw_dir.path(), Some(1000), Some(1000)).ok();
    let backend = runtime
        .block_on(DockerBackend::connect(DockerOptions::default()))
        .unwrap_or_else(|e| panic!("the benchmark needs a Docker engine: {e}"));
    runtime
        .block_on(build_image(
            &backend,
            IMAGE,
            &ImageSource::default(),
            |_| {},
        ))
        .expect("build the benchmark image (needs busybox-static)");
    let manager = Arc::new(WorkspaceManager::with_backend(
        options(data.path()),
        Arc::new(backend),
    ));

    let mut raw =
        Series::new("raw `docker run -d` + `docker exec` (same image and hardening flags)");
    let mut ours = Series::new("`WorkspaceManager::create` (start) + first exec");
    let mut cli =
        Series::new("`aicockpit workspace create` + `aicockpit workspace exec` (CLI processes)");
    let mut pooled =
        Series::new("from the pool (frozen containers): `create` (start) + first exec");
    let mut stop = Series::new("stop");
    let mut start = Series::new("start (stopped → running)");
    let mut delete = Series::new("delete (`rm --purge`)");
    let mut raw_rm = Series::new("raw `docker rm -f`");
    let aicockpit = env!("CARGO_BIN_EXE_aicockpit");
    let cli_home = tempfile::tempdir().unwrap();
    let cli_env = |command: &mut Command| {
        command
            .env("AICOCKPIT_DATA_DIR", cli_home.path().join("data"))
            .env("AICOCKPIT_CONFIG", cli_home.path().join("config.toml"))
            .env("AICOCKPIT_WORKSPACES_DEFAULT_IMAGE", IMAGE)
            .env("AICOCKPIT_WORKSPACES_MEMORY", "512m")
            .env("AICOCKPIT_WORKSPACES_CPUS", "1");
    };

    for round in 0..WARMUP + RUNS {
        let measured = round >= WARMUP;
        // Interleave the contenders so drift on the machine hits all alike.
        let name = format!("bench-raw-{}-{round}", std::process::id());
        let mount = format!(
            "type=bind,source={},target=/workspace",
            raw_dir.path().display()
        );
        let started = Instant::now();
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--init",
            "--pids-limit",
            "512",
            "--memory",
            "512m",
            "--memory-swap",
            "512m",
            "--cpus",
            "1",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--user",
            "1000:1000",
            "--log-opt",
            "max-size=1m",
            "--mount",
            &mount,
            "-w",
            "/workspace",
            "--entrypoint",
            "sleep",
            IMAGE,
            "infinity",
        ]);
        docker(&["exec", &name, "true"]);
        let raw_ready = started.elapsed();
        let raw_removed = docker(&["rm", "-f", &name]);

        let name = format!("bench-{round}");
        let (ready, stopped, restarted, deleted) = runtime.block_on(async {
            let started = Instant::now();
            manager
                .create(CreateRequest {
                    name: name.clone(),
                    start: true,
                    ..CreateRequest::default()
                })
                .await
                .expect("create");
            first_exec(&manager, &name).await;
            let ready = started.elapsed();
            let t = Instant::now();
            manager.stop(&name).await.unwrap();
            let stopped = t.elapsed();
            let t = Instant::now();
            manager.start(&name).await.unwrap();
            let restarted = t.elapsed();
            let t = Instant::now();
            manager.remove(&name, true).await.unwrap();
            (ready, stopped, restarted, t.elapsed())
        });

        let cli_name = format!("bench-cli-{round}");
        let started = Instant::now();
        let mut create = Command::new(aicockpit);
        cli_env(&mut create);
        let status = create
            .args(["workspace", "create", &cli_name, "--json"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let mut exec = Command::new(aicockpit);
        cli_env(&mut exec);
        let status = exec
            .args(["workspace", "exec", &cli_name, "--", "true"])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let cli_ready = started.elapsed();
        let mut remove = Command::new(aicockpit);
        cli_env(&mut remove);
        remove
            .args(["workspace", "rm", &cli_name, "--purge"])
            .output()
            .unwrap();

        let pool_name = format!("bench-pool-{round}");
        let pool_ready = runtime.block_on(async {
            manager.fill_pool(1).await.expect("fill the pool");
            let started = Instant::now();
            let workspace = manager
                .create(CreateRequest {
                    name: pool_name.clone(),
                    start: true,
                    ..CreateRequest::default()
                })
                .await
                .expect("create from the pool");
            first_exec(&manager, &pool_name).await;
            let ready = started.elapsed();
            assert!(
                manager.pool().unwrap().is_empty(),
                "{} did not come from the pool",
                workspace.name
            );
            manager.remove(&pool_name, true).await.unwrap();
            ready
        });

        if measured {
            raw.samples.push(raw_ready);
            raw_rm.samples.push(raw_removed);
            ours.samples.push(ready);
            cli.samples.push(cli_ready);
            pooled.samples.push(pool_ready);
            stop.samples.push(stopped);
            start.samples.push(restarted);
            delete.samples.push(deleted);
        }
    }
    runtime.block_on(manager.drain_pool()).unwrap();

    let engine = String::from_utf8_lossy(
        &Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    println!("### Workspace benchmark: time to a ready workspace\n");
    println!("Docker engine {engine}, image `{IMAGE}` (FROM scratch + busybox-static), {RUNS} runs after {WARMUP} warm-up rounds, contenders interleaved.\n");
    println!("| Measure | p50 ms | p95 ms | vs raw docker p50 |");
    println!("|---|---:|---:|---:|");
    let base = raw.p50();
    for series in [&raw, &ours, &cli, &pooled] {
        println!(
            "| {} | {:.1} | {:.1} | {:.2}× |",
            series.name,
            series.p50(),
            series.p95(),
            series.p50() / base
        );
    }
    for series in [&stop, &start, &delete, &raw_rm] {
        println!(
            "| {} | {:.1} | {:.1} | |",
            series.name,
            series.p50(),
            series.p95()
        );
    }
}
