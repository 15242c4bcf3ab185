//! `aicockpit workspace …`, `aicockpit image build` and
//! `aicockpit-lsp --workspace` against a real Docker engine. Every CLI call
//! is a new process, so each step also proves the state survives a restart.

use serde_json::{json, Value};

use crate::support::{file_uri, stderr, stdout, LspClient, Project};

pub(crate) const TEST_IMAGE: &str = "aicockpit-test/workspace:latest";
const OPT_OUT: &str = "AICOCKPIT_SKIP_DOCKER_TESTS";

/// Build the test image; `false` only when the run opted out of Docker tests.
pub(crate) fn docker_ready(project: &Project) -> bool {
    let output = project.cli(&["image", "build", "--tag", TEST_IMAGE, "--json"]);
    if output.status.success() {
        let built: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(built["tag"], TEST_IMAGE);
        assert!(
            built["id"].as_str().unwrap().starts_with("sha256:"),
            "{built}"
        );
        return true;
    }
    let error = stderr(&output);
    if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (by {OPT_OUT}=1): {error}");
        return false;
    }
    panic!(
        "these tests need a running Docker engine and busybox-static: {error}\n\
         install them with `apt-get install docker.io busybox-static` and start \
         `dockerd --bridge=none --iptables=false --ip-masq=false` (or run `bash .ci/run`); \
         set {OPT_OUT}=1 to skip them explicitly"
    );
}

/// Removes the workspace (and its files) however the test ends.
struct Cleanup<'a>(&'a Project, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for name in &self.1 {
            let _ = self.0.cli(&["workspace", "rm", name, "--purge"]);
        }
    }
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

#[test]
fn the_workspace_cli_from_create_to_restore() {
    let project = Project::new(&[]);
    if !docker_ready(&project) {
        return;
    }
    let name = unique("cli");
    let restored = format!("{name}-r");
    let _cleanup = Cleanup(&project, vec![name.clone(), restored.clone()]);

    let created = json_of(&project.cli(&[
        "workspace",
        "create",
        &name,
        "--image",
        TEST_IMAGE,
        "--memory",
        "128m",
        "--cpus",
        "0.5",
        "--network",
        "none",
        "--env",
        "STAGE=test",
        "--json",
    ]));
    assert_eq!(created["state"], "running");
    assert_eq!(created["limits"]["memory_bytes"], 128 << 20);
    assert_eq!(created["network"], "none");
    // `env` values may be secrets: scripts see the names only.
    assert_eq!(created["env"], serde_json::json!(["STAGE"]));
    let listed = stdout(&project.cli(&["workspace", "ls", "--json"]));
    let inspected = stdout(&project.cli(&["workspace", "inspect", &name, "--json"]));
    for output in [&listed, &inspected] {
        assert!(
            output.contains("STAGE") && !output.contains("=test") && !output.contains("\"test\""),
            "{output}"
        );
    }

    let path = stdout(&project.cli(&["workspace", "path", &name]));
    let dir = std::path::PathBuf::from(path.trim());
    assert_eq!(
        dir.as_path(),
        std::path::Path::new(created["dir"].as_str().unwrap())
    );

    // exec passes the exit code and both streams through.
    let output = project.cli(&[
        "workspace",
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "echo $STAGE > /workspace/stage.txt; echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(stdout(&output), "out\n");
    assert_eq!(stderr(&output), "err\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("stage.txt")).unwrap(),
        "test\n"
    );
    let captured = json_of(&project.cli(&[
        "workspace",
        "exec",
        &name,
        "--json",
        "--",
        "cat",
        "/workspace/stage.txt",
    ]));
    assert_eq!(
        captured,
        json!({"stdout": "test\n", "stderr": "", "exit_code": 0, "timed_out": false})
    );
    let killed = project.cli(&[
        "workspace",
        "exec",
        &name,
        "--timeout",
        "1",
        "--",
        "sleep",
        "60",
    ]);
    assert_eq!(killed.status.code(), Some(124), "{}", stderr(&killed));

    let listed = json_of(&project.cli(&["workspace", "ls", "--json"]));
    let entry = listed["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["state"], "running");
    let text = stdout(&project.cli(&["workspace", "ls"]));
    assert!(
        text.lines()
            .any(|l| l.starts_with(&name) && l.contains("running")),
        "{text}"
    );

    let stats = json_of(&project.cli(&["workspace", "stats", &name, "--json"]));
    assert_eq!(stats["memory_limit_bytes"], 128 << 20);
    assert!(stats["pids"].as_u64().unwrap() >= 1, "{stats}");

    assert_eq!(
        json_of(&project.cli(&["workspace", "stop", &name, "--json"]))["state"],
        "stopped"
    );
    assert_eq!(
        json_of(&project.cli(&["workspace", "inspect", &name, "--json"]))["state"],
        "stopped"
    );
    let refused = project.cli(&["workspace", "exec", &name, "--", "true"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("aicockpit workspace start"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        json_of(&project.cli(&["workspace", "start", &name, "--json"]))["state"],
        "running"
    );
    assert_eq!(
        json_of(&project.cli(&["workspace", "restart", &name, "--json"]))["state"],
        "running"
    );

    // Backup, purge, restore under another name: identical files.
    let archive = project.root().join("ws.tar.gz");
    let archive_arg = archive.to_str().unwrap();
    json_of(&project.cli(&["workspace", "backup", &name, archive_arg, "--json"]));
    let again = json_of(&project.cli(&[
        "workspace",
        "restore",
        archive_arg,
        "--name",
        &restored,
        "--json",
    ]));
    assert_eq!(again["name"], restored.as_str());
    let output = project.cli(&[
        "workspace",
        "exec",
        &restored,
        "--",
        "cat",
        "/workspace/stage.txt",
    ]);
    assert_eq!(stdout(&output), "test\n");

    // A name clash is refused with a clear message (and as JSON for scripts).
    let clash_json = project.cli(&[
        "workspace",
        "create",
        &name,
        "--image",
        TEST_IMAGE,
        "--json",
    ]);
    assert_eq!(clash_json.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout(&clash_json)).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("already exists"),
        "{error}"
    );
    let clash = project.cli(&["workspace", "create", &name, "--image", TEST_IMAGE]);
    assert!(!clash.status.success());
    assert!(
        stderr(&clash).contains("already exists"),
        "{}",
        stderr(&clash)
    );

    let removed = json_of(&project.cli(&["workspace", "rm", &name, "--json"]));
    assert_eq!(removed["files_kept"], dir.to_str().unwrap());
    assert!(
        dir.join("stage.txt").exists(),
        "files are kept without --purge"
    );
    let gone = project.cli(&["workspace", "inspect", &name]);
    assert!(
        stderr(&gone).contains("no workspace named"),
        "{}",
        stderr(&gone)
    );
    json_of(&project.cli(&["workspace", "rm", &restored, "--purge", "--json"]));
}

#[test]
fn engine_problems_are_clear_errors() {
    let project = Project::new(&[]);
    // No engine at all.
    let output = project.cli_with(
        &["workspace", "ls"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with(
            "error: cannot reach the Docker engine at unix:///nonexistent/docker.sock"
        ),
        "{text}"
    );
    assert!(text.contains("apt-get install docker.io"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // A missing image names the fix; `path` of an unknown workspace works without an engine.
    if docker_ready(&project) {
        let output = project.cli(&[
            "workspace",
            "create",
            "noimage",
            "--image",
            "aicockpit-test/missing:0",
        ]);
        assert!(
            stderr(&output).contains("aicockpit image build"),
            "{}",
            stderr(&output)
        );
        assert!(!project
            .root()
            .join("../home/data/workspaces/noimage")
            .exists());
    }
    let output = project.cli_with(
        &["workspace", "path", "nothing"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
        None,
    );
    assert!(
        stderr(&output).contains("no workspace named \"nothing\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_socket_the_user_may_not_open_is_a_permission_error() {
    let project = Project::new(&[]);
    // A socket only root may open (mode 0600), reached as an unprivileged user.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED (by {OPT_OUT}=1): needs root to run the CLI as another user");
            return;
        }
        panic!("this test runs the CLI as uid 65534 and needs root (CI runs as root); set {OPT_OUT}=1 to skip it");
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The build folder may be private to root (a clone in a 0700 temp dir): run a copy.
    let binary = dir.path().join("aicockpit");
    std::fs::copy(env!("CARGO_BIN_EXE_aicockpit"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = project.command(binary.to_str().unwrap());
    command
        .args(["workspace", "ls"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("AICOCKPIT_DATA_DIR", dir.path().join("data"))
        .env("HOME", dir.path())
        .current_dir(dir.path());
    std::os::unix::process::CommandExt::uid(&mut command, 65534);
    std::os::unix::process::CommandExt::gid(&mut command, 65534);
    let output = command.output().unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("permission denied on the Docker socket"),
        "{text}"
    );
    assert!(text.contains("docker` group"), "{text}");
}

#[test]
fn the_language_server_serves_a_workspace_from_anywhere() {
    let project = Project::new(&[]);
    if !docker_ready(&project) {
        return;
    }
    let name = unique("lsp");
    let _cleanup = Cleanup(&project, vec![name.clone()]);
    json_of(&project.cli(&[
        "workspace",
        "create",
        &name,
        "--image",
        TEST_IMAGE,
        "--json",
    ]));
    // A file written inside the container...
    let output = project.cli(&[
        "workspace", "exec", &name, "--", "sh", "-c",
        "mkdir -p /workspace/pkg && printf 'def written_in_container(x):\\n    return x\\n' > /workspace/pkg/inner.py",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dir = std::path::PathBuf::from(stdout(&project.cli(&["workspace", "path", &name])).trim());

    // ...is indexed by a server started in an unrelated folder (the project's) with --workspace.
    let mut client = LspClient::spawn(&project, &["--workspace", &name]);
    client.initialize(&project.root(), json!({}));
    client.wait_for_index();
    let symbols = client.request("workspace/symbol", json!({"query": "written_in_container"}));
    let hit = &symbols.as_array().unwrap()[0];
    assert_eq!(hit["name"], "written_in_container");
    assert_eq!(
        hit["location"]["uri"],
        file_uri(&dir.join("pkg/inner.py")).as_str()
    );

    // An edit saved by the editor is seen inside the container.
    let edited = dir.join("pkg/inner.py");
    std::fs::write(
        &edited,
        "def written_in_container(x):\n    return x\n\ndef added_by_editor():\n    pass\n",
    )
    .unwrap();
    client.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": file_uri(&edited)}}),
    );
    let output = project.cli(&[
        "workspace",
        "exec",
        &name,
        "--",
        "grep",
        "-c",
        "added_by_editor",
        "/workspace/pkg/inner.py",
    ]);
    assert_eq!(stdout(&output), "1\n");
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": file_uri(&edited), "type": 2}]}),
    );
    let started = std::time::Instant::now();
    loop {
        let found = client.request("workspace/symbol", json!({"query": "added_by_editor"}));
        if found.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the edit was not indexed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    client.shutdown();

    // `aicockpit lsp --workspace` is the same server; an unknown workspace is a clear error.
    let output = project.cli(&["lsp", "--workspace", "no-such-workspace"]);
    assert!(
        stderr(&output).contains("no workspace named \"no-such-workspace\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_pool_hands_out_ready_workspaces_and_refills() {
    let project = Project::new(&[]);
    if !docker_ready(&project) {
        return;
    }
    let name = unique("pool");
    let _cleanup = Cleanup(&project, vec![name.clone()]);
    let env = [
        ("AICOCKPIT_WORKSPACES_DEFAULT_IMAGE", TEST_IMAGE),
        ("AICOCKPIT_WORKSPACES_POOL_SIZE", "1"),
    ];
    let filled = json_of(&project.cli_with(&["workspace", "pool", "fill", "--json"], &env, None));
    assert_eq!(filled, json!({"made": 1, "size": 1}));
    let pool = json_of(&project.cli_with(&["workspace", "pool", "ls", "--json"], &env, None));
    let pooled_id = pool["pool"][0]["id"].clone();
    // A plain create takes the pooled container, and the CLI tops the pool up again.
    let created = json_of(&project.cli_with(&["workspace", "create", &name, "--json"], &env, None));
    assert_eq!(created["id"], pooled_id);
    assert_eq!(created["state"], "running");
    let output = project.cli_with(
        &[
            "workspace",
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "echo ok > /workspace/f; cat /workspace/f",
        ],
        &env,
        None,
    );
    assert_eq!(stdout(&output), "ok\n");
    let pool = json_of(&project.cli_with(&["workspace", "pool", "ls", "--json"], &env, None));
    assert_eq!(pool["pool"].as_array().unwrap().len(), 1);
    assert_ne!(pool["pool"][0]["id"], pooled_id);
    // Pooled containers are not workspaces.
    let listed = json_of(&project.cli_with(&["workspace", "ls", "--json"], &env, None));
    assert_eq!(listed["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(
        json_of(&project.cli_with(&["workspace", "pool", "drain", "--json"], &env, None)),
        json!({"removed": 1})
    );
}

#[test]
fn stdin_is_passed_only_when_asked_and_parallel_creates_do_not_collide() {
    let project = Project::new(&[]);
    if !docker_ready(&project) {
        return;
    }
    let name = unique("race");
    let _cleanup = Cleanup(&project, vec![name.clone()]);
    // Four processes create the same workspace at once: one wins, the others
    // get a clear error, and the winner's record, folder and container are intact.
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    project.cli(&[
                        "workspace",
                        "create",
                        &name,
                        "--image",
                        TEST_IMAGE,
                        "--json",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        outputs.iter().map(stderr).collect::<Vec<_>>()
    );
    for loser in outputs.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(loser).contains("already exists"),
            "{}",
            stderr(loser)
        );
    }
    let output = project.cli(&[
        "workspace",
        "exec",
        &name,
        "--",
        "sh",
        "-c",
        "echo alive > /workspace/a && cat /workspace/a",
    ]);
    assert_eq!(stdout(&output), "alive\n", "{}", stderr(&output));

    // Without -i a command that reads stdin sees end-of-file at once; with -i it gets ours.
    let started = std::time::Instant::now();
    let output = project.cli(&["workspace", "exec", &name, "--", "cat"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let output = project.cli_with(
        &[
            "workspace",
            "exec",
            "-i",
            &name,
            "--",
            "sh",
            "-c",
            "tr a-z A-Z",
        ],
        &[],
        Some("piped through\n"),
    );
    assert_eq!(stdout(&output), "PIPED THROUGH\n", "{}", stderr(&output));

    // AiCockpit's own failures exit with 125, never to be mistaken for the command's code.
    let output = project.cli(&["workspace", "exec", "no-such-workspace", "--", "true"]);
    assert_eq!(output.status.code(), Some(125), "{}", stderr(&output));
    // The language server takes one folder.
    let output = project.cli(&["lsp", "--root", ".", "--workspace", &name]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn shell_gives_an_interactive_terminal_of_the_callers_size() {
    let project = Project::new(&[]);
    if !docker_ready(&project) {
        return;
    }
    let name = unique("shell");
    let _cleanup = Cleanup(&project, vec![name.clone()]);
    json_of(&project.cli(&[
        "workspace",
        "create",
        &name,
        "--image",
        TEST_IMAGE,
        "--json",
    ]));
    // `script` (util-linux) gives the CLI a real terminal of a known size.
    let line = format!(
        "stty cols 91 rows 27; {} workspace shell {name}",
        env!("CARGO_BIN_EXE_aicockpit")
    );
    let mut command = project.command("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command
        .spawn()
        .expect("`script` runs the shell on a terminal: apt-get install util-linux");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(std::time::Duration::from_millis(800));
        let _ = stdin.write_all(b"echo shell-$((40+2)); stty size; tty; exit 5\n");
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("workspace shell did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("shell-42"), "{text}");
    assert!(
        text.contains("27 91"),
        "the window size reaches the shell: {text}"
    );
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(
        output.status.code(),
        Some(5),
        "the shell's exit code: {text}"
    );
}
