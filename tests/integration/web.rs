//! The web IDE end to end: a real `aicockpit serve` with a Docker
//! workspace and the mock AI service, driven through Debian's Chromium and
//! chromedriver (WebDriver, via fantoccini), each browser with a fresh
//! profile. It signs in with the one-time URL, creates a workspace from the
//! dashboard (live CPU shown), tests the AI service (FIM verdict shown, key
//! field write-only), finds the creation in the audit log, opens a file,
//! goes to a definition in another file (F12), lists its references
//! (Shift+F12) and the outline,
//! types and accepts the mock's ghost text with Tab, saves and reads the
//! file back with `cat` in the terminal, reloads the page and finds the
//! terminal's earlier output replayed, searches and jumps to a hit, asks
//! the chat and sees the streamed answer with its sources, applies a
//! Refactor code action's answer through its diff, has a suggested command
//! typed at the prompt but not run, makes a second user on the Users page and
//! shares the workspace with them as a viewer from the dashboard's Share
//! dialog (they can type into neither the editor nor the terminal), and
//! restarts the server under the page: it reconnects by itself, the unsaved
//! text is still there, and saving works. Screenshots of the dashboard, the
//! ghost text and the chat go to `target/web-e2e/` (to `docs/images/`, shown
//! in the README, with `AICOCKPIT_UPDATE_SCREENSHOTS=1`).
//!
//! Needs: Docker with busybox-static (as the workspace tests), and
//! `apt-get install chromium chromium-driver`. Set
//! `AICOCKPIT_SKIP_WEB_TESTS=1` to skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;
use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub(crate) const SKIP_VAR: &str = "AICOCKPIT_SKIP_WEB_TESTS";
pub(crate) const TEST_IMAGE: &str = "aicockpit-test/workspace:latest";
/// The workspace's name: one per run, so runs never meet on the engine.
pub(crate) fn workspace_name() -> String {
    format!("web-e2e-{}", std::process::id())
}
/// Every wait in this test.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) const LIB_RS: &str = "\
/// Greets someone by name.
pub fn greeting(name: &str) -> String {
    let shown = name.trim();
    
}
";
pub(crate) const MAIN_RS: &str = "\
mod lib;

fn main() {
    println!(\"{}\", lib::greeting(\"web\"));
}
";

/// WebDriver key codes.
pub(crate) const CONTROL: char = '\u{E009}';
pub(crate) const SHIFT: char = '\u{E008}';
pub(crate) const ENTER: char = '\u{E007}';
pub(crate) const ESCAPE: char = '\u{E00C}';
pub(crate) const TAB: char = '\u{E004}';
pub(crate) const HOME: char = '\u{E011}';
pub(crate) const END: char = '\u{E010}';
pub(crate) const LEFT: char = '\u{E012}';
pub(crate) const DOWN: char = '\u{E015}';
pub(crate) const F12: char = '\u{E03C}';
pub(crate) const RELEASE: char = '\u{E000}';

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) struct Tools {
    pub(crate) chromium: PathBuf,
    pub(crate) chromedriver: PathBuf,
}

pub(crate) fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

pub(crate) fn tools() -> Result<Tools, String> {
    match (
        find_on_path(&["chromium", "chromium-browser"]),
        find_on_path(&["chromedriver"]),
    ) {
        (Some(chromium), Some(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
        }),
        _ => Err(format!(
            "the web IDE end-to-end test needs Chromium and chromedriver: \
             `apt-get install chromium chromium-driver` (or set {SKIP_VAR}=1 to skip it)"
        )),
    }
}

/// Child processes, each in its own process group, killed with their children.
pub(crate) struct Processes(pub(crate) Vec<Child>);

impl Processes {
    fn spawn(&mut self, command: &mut Command, what: &str) -> u32 {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let pid = child.id();
        self.0.push(child);
        pid
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

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Wait until `http://127.0.0.1:port{path}` answers with any HTTP status.
pub(crate) fn wait_for_http(port: u16, path: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
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
        assert!(
            Instant::now() < deadline,
            "{what} did not answer on port {port} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The environment of our binaries: every folder under `home`.
pub(crate) fn environment(command: &mut Command, home: &Path) {
    command
        .env("HOME", home)
        .env("AICOCKPIT_CONFIG", home.join("config.toml"))
        .env("AICOCKPIT_CACHE_DIR", home.join("cache"))
        .env("AICOCKPIT_DATA_DIR", home.join("data"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_DATA_HOME")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
}

/// A running server (with the mock AI service as its active service) and
/// chromedriver, over a fresh data folder; what the test and the benchmark
/// share. Everything started is stopped when it drops.
pub(crate) struct Rig {
    pub(crate) children: Processes,
    pub(crate) tools: Tools,
    pub(crate) base: PathBuf,
    pub(crate) home: PathBuf,
    pub(crate) port: u16,
    pub(crate) driver_port: u16,
    pub(crate) login_url: String,
    _scratch: tempfile::TempDir,
}

impl Rig {
    /// Build the workspace image, start `aicockpit serve` and chromedriver.
    /// Panics with the install command when a tool is missing.
    pub(crate) fn start(mock: &MockServer) -> Rig {
        let tools = tools().unwrap_or_else(|message| panic!("{message}"));
        let scratch = tempfile::tempdir().expect("a temp folder");
        let base = scratch
            .path()
            .canonicalize()
            .expect("canonical temp folder");
        let home = base.join("home");
        std::fs::create_dir_all(&home).expect("make home");

        // The workspace image (busybox), as the Docker workspace tests build it.
        let mut build = Command::new(env!("CARGO_BIN_EXE_aicockpit"));
        environment(&mut build, &home);
        let output = build
            .args(["image", "build", "--tag", TEST_IMAGE, "--json"])
            .output()
            .expect("run aicockpit image build");
        assert!(
            output.status.success(),
            "the web IDE test needs a running Docker engine and busybox-static: {}\n\
             install them with `apt-get install docker.io busybox-static` and start `dockerd` \
             (or set {SKIP_VAR}=1 to skip this test)",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(
            home.join("config.toml"),
            format!(
                "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\n\
                 base_url = \"{}\"\nchat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
                mock.url()
            ),
        )
        .expect("write config.toml");

        let mut rig = Rig {
            children: Processes(Vec::new()),
            tools,
            base,
            home,
            port: free_port(),
            driver_port: free_port(),
            login_url: String::new(),
            _scratch: scratch,
        };
        let mut serve = rig.serve(Stdio::piped());
        rig.children.spawn(&mut serve, "aicockpit serve");
        let stdout = rig.children.0[0].stdout.take().expect("serve's stdout");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        rig.login_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("/login?token=") => break line.trim().to_string(),
                Ok(_) => {}
                Err(_) => panic!(
                    "aicockpit serve printed no one-time login URL within {WAIT:?}:\n{}",
                    rig.log()
                ),
            }
        };
        let mut driver = Command::new(&rig.tools.chromedriver);
        driver
            .arg(format!("--port={}", rig.driver_port))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        rig.children.spawn(&mut driver, "chromedriver");
        wait_for_http(rig.port, "/healthz", "aicockpit serve");
        wait_for_http(rig.driver_port, "/status", "chromedriver");
        rig
    }

    /// The `aicockpit serve` command of this rig (its log appended to `serve.log`).
    pub(crate) fn serve(&self, stdout: Stdio) -> Command {
        let mut serve = Command::new(env!("CARGO_BIN_EXE_aicockpit"));
        environment(&mut serve, &self.home);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("serve.log"))
            .expect("log file");
        serve
            .args(["serve", "--bind"])
            .arg(format!("127.0.0.1:{}", self.port))
            .stdout(stdout)
            .stderr(log);
        serve
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("serve.log")).unwrap_or_default()
    }

    /// Remove the run's workspace (container and files).
    pub(crate) fn remove_workspace(&self) {
        let mut remove = Command::new(env!("CARGO_BIN_EXE_aicockpit"));
        environment(&mut remove, &self.home);
        let _ = remove
            .args(["workspace", "rm", "--purge", &workspace_name()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn ide_in_chromium() {
    let _browser = crate::support::BROWSER
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("skipped: {SKIP_VAR}=1");
        return;
    }
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("shown.to_uppercase()");
    let mut rig = Rig::start(&mock);
    let (port, driver_port, login_url) = (rig.port, rig.driver_port, rig.login_url.clone());

    let result = runtime.block_on(async {
        let admin = browser(&rig.tools, driver_port, &rig.base.join("profile-admin")).await?;
        let mut outcome = admin_session(&admin, &login_url, port, &mock).await;
        if outcome.is_ok() {
            outcome = ai_actions(&admin, &mock).await;
        }
        let viewer = if outcome.is_ok() {
            Some(browser(&rig.tools, driver_port, &rig.base.join("profile-viewer")).await?)
        } else {
            None
        };
        if let Some(viewer) = &viewer {
            outcome = viewer_session(&admin, viewer, port, &rig.home).await;
        }
        if outcome.is_ok() {
            outcome = survive_a_restart(&admin, &mut rig).await;
        }
        for client in [Some(&admin), viewer.as_ref()].into_iter().flatten() {
            if outcome.is_err() {
                if let Ok(png) = client.screenshot().await {
                    let _ = std::fs::write(repo().join("target/web-e2e-failure.png"), png);
                }
            }
        }
        let _ = admin.close().await;
        if let Some(viewer) = viewer {
            let _ = viewer.close().await;
        }
        outcome
    });
    // The workspace's container goes with the test, whatever happened.
    rig.remove_workspace();
    if let Err(message) = result {
        panic!(
            "{message}\n(see target/web-e2e-failure.png)\n--- aicockpit serve log ---\n{}",
            rig.log()
        );
    }
    eprintln!("web IDE end to end passed in {:?}", started.elapsed());
}

pub(crate) type Step<T> = Result<T, String>;

pub(crate) fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A fresh headless Chromium with its own profile.
pub(crate) async fn browser(tools: &Tools, driver_port: u16, profile: &Path) -> Step<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": tools.chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900", "--force-prefers-reduced-motion",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .map_err(fail("a WebDriver session"))
}

pub(crate) async fn element(client: &Client, css: &str, what: &str) -> Step<Element> {
    client
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .map_err(fail(what))
}

/// Poll a JavaScript body in the page until it returns a truthy value.
pub(crate) async fn wait_for_script(client: &Client, script: &str, what: &str) -> Step<Value> {
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

/// Run an async JavaScript body in the page and return its value.
pub(crate) async fn run_script(client: &Client, body: &str, what: &str) -> Step<Value> {
    let script = format!(
        "const done = arguments[arguments.length - 1]; \
         (async () => {{ {body} }})().then(done, (e) => done({{ error: String(e) }}));"
    );
    let value = client
        .execute_async(&script, vec![])
        .await
        .map_err(fail(what))?;
    if let Some(error) = value.get("error") {
        return Err(format!("{what}: {error}"));
    }
    Ok(value)
}

/// Type into whatever has the focus.
pub(crate) async fn keys(client: &Client, text: &str) -> Step<()> {
    client
        .active_element()
        .await
        .map_err(fail("the focused element"))?
        .send_keys(text)
        .await
        .map_err(fail("typing"))
}

pub(crate) async fn screenshot(client: &Client, name: &str) -> Step<()> {
    let png = client.screenshot().await.map_err(fail("a screenshot"))?;
    if png.len() < 1000 || !png.starts_with(b"\x89PNG") {
        return Err(format!(
            "the screenshot {name} is not a PNG image ({} bytes)",
            png.len()
        ));
    }
    // The README's images change only when asked, so a test run leaves the
    // tree clean: AICOCKPIT_UPDATE_SCREENSHOTS=1 writes docs/images/.
    let dir = if std::env::var_os("AICOCKPIT_UPDATE_SCREENSHOTS").is_some() {
        repo().join("docs/images")
    } else {
        repo().join("target/web-e2e")
    };
    std::fs::create_dir_all(&dir).map_err(fail("make the screenshot folder"))?;
    std::fs::write(dir.join(name), png).map_err(fail("write the screenshot"))
}

/// The text of the active editor.
pub(crate) const EDITOR_TEXT: &str =
    "const c = document.querySelector('.editor-area .cm-content'); \
     return c ? [...c.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n') : null";

/// The start of a script about the active editor's text (as `t`).
pub(crate) const EDITOR_TEXT_IS: &str = "const c = document.querySelector('.editor-area .cm-content'); \
     const t = c ? [...c.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n') : ''; return";

/// The start of a script about the lines the active terminal shows (as `r`).
pub(crate) const TERMINAL_TEXT_IS: &str =
    "const e = document.querySelector('.terminal .xterm-rows'); \
     const r = e ? e.innerText.replace(/\\u00a0/g, ' ') : ''; return";

/// Open a file from the tree; `focused`: also wait for the editor to take the focus (writers).
pub(crate) async fn open_from_tree(client: &Client, path: &str, focused: bool) -> Step<()> {
    let mut prefix = String::new();
    for part in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        let row = element(
            client,
            &format!(".tree-row[data-path=\"{prefix}\"]"),
            &format!("{prefix} in the file tree"),
        )
        .await?;
        let expanded = row.attr("aria-expanded").await.ok().flatten();
        if expanded.as_deref() != Some("true") {
            row.click().await.map_err(fail("click in the tree"))?;
        }
    }
    wait_for_script(
        client,
        &format!(
            "return document.querySelector('.tab.active')?.dataset.path === '{path}' && \
             ({focused} === false || document.activeElement?.classList.contains('cm-content'))"
        ),
        &format!("{path} open and focused in the editor"),
    )
    .await
    .map(|_| ())
}

pub(crate) async fn admin_session(
    client: &Client,
    login_url: &str,
    port: u16,
    mock: &MockServer,
) -> Step<()> {
    let ws = workspace_name();
    // Sign in with the one-time URL: the server sets the cookie and sends us to the dashboard.
    client
        .goto(login_url)
        .await
        .map_err(fail("open the login URL"))?;
    element(
        client,
        ".dashboard",
        "the dashboard after the one-time login",
    )
    .await?;

    // Create a workspace from the dashboard's form.
    element(
        client,
        "form.create-form input[name=name]",
        "the name field",
    )
    .await?
    .send_keys(&ws)
    .await
    .map_err(fail("type the name"))?;
    element(
        client,
        "form.create-form input[name=image]",
        "the image field",
    )
    .await?
    .send_keys(TEST_IMAGE)
    .await
    .map_err(fail("type the image"))?;
    element(client, "form.create-form button.primary", "Create")
        .await?
        .click()
        .await
        .map_err(fail("click Create"))?;
    wait_for_script(
        client,
        &format!(
            "return document.querySelector('tr[data-workspace={ws}] .state-running') !== null"
        ),
        "the new workspace running on the dashboard",
    )
    .await?;
    wait_for_script(
        client,
        &format!("return document.querySelector('tr[data-workspace={ws}] td.stat')?.textContent.includes('%')"),
        "live CPU figures on the dashboard",
    )
    .await?;
    screenshot(client, "web-dashboard.png").await?;

    // AI services: the mock is active; Test shows the round trip and the FIM
    // probe; the key field of the edit form is write-only.
    client
        .goto(&format!("http://127.0.0.1:{port}/#/services"))
        .await
        .map_err(fail("open the services page"))?;
    element(
        client,
        "tr[data-service=mock] .badge.active",
        "the mock service, active",
    )
    .await?;
    client
        .find(Locator::XPath(
            "//tr[@data-service='mock']//button[.='Test']",
        ))
        .await
        .map_err(fail("the Test button"))?
        .click()
        .await
        .map_err(fail("click Test"))?;
    let report = wait_for_script(
        client,
        "const r = document.querySelector('.test-result'); \
         return r && r.textContent.includes('answered in') ? r.textContent : null",
        "the service test's result",
    )
    .await?;
    if !report
        .as_str()
        .unwrap_or_default()
        .contains("Fill-in-the-middle probe")
    {
        return Err(format!(
            "the test result shows no FIM probe verdict: {report}"
        ));
    }
    client
        .find(Locator::XPath(
            "//tr[@data-service='mock']//button[.='Edit']",
        ))
        .await
        .map_err(fail("the Edit button"))?
        .click()
        .await
        .map_err(fail("click Edit"))?;
    let key = element(client, ".modal input[name=api_key]", "the key field").await?;
    let kind = key
        .attr("type")
        .await
        .map_err(fail("the key field's type"))?;
    let value = key
        .prop("value")
        .await
        .map_err(fail("the key field's value"))?;
    if kind.as_deref() != Some("password") || value.as_deref().is_some_and(|v| !v.is_empty()) {
        return Err(format!(
            "the key field is not write-only: type {kind:?}, value {value:?}"
        ));
    }
    keys(client, &ESCAPE.to_string()).await?;

    // The audit log has the workspace's creation.
    client
        .goto(&format!("http://127.0.0.1:{port}/#/audit"))
        .await
        .map_err(fail("open the audit log"))?;
    wait_for_script(
        client,
        &format!(
            "return [...document.querySelectorAll('table.audit tr')].some(r => \
             r.textContent.includes('workspace.create') && r.textContent.includes('{ws}'))"
        ),
        "the workspace's creation in the audit log",
    )
    .await?;

    // The project's files, through the files API as any client would write them.
    for (path, text) in [("src/lib.rs", LIB_RS), ("src/main.rs", MAIN_RS)] {
        run_script(
            client,
            &format!(
                "const r = await fetch('/api/v1/workspaces/{ws}/files?path={path}', \
                 {{method: 'PUT', headers: {{'if-none-match': '*'}}, body: {}}}); \
                 return r.ok ? null : {{ error: r.status + ' ' + await r.text() }};",
                serde_json::to_string(text).map_err(fail("encode"))?
            ),
            &format!("write {path}"),
        )
        .await?;
    }

    // The IDE: connected to the language server.
    client
        .goto(&format!("http://127.0.0.1:{port}/#/w/{ws}"))
        .await
        .map_err(fail("open the IDE"))?;
    element(
        client,
        ".connection[data-state=connected]",
        "the language server connected",
    )
    .await?;

    // Once the index is built (the status bar follows `$/progress`), open
    // main.rs and go to the definition of `greeting`, in lib.rs.
    element(
        client,
        ".statusbar .index[data-state=done]",
        "the index progress ending in the status bar",
    )
    .await?;
    open_from_tree(client, "src/main.rs", true).await?;
    keys(client, &format!("{CONTROL}f{RELEASE}")).await?;
    element(client, ".cm-search input[name=search]", "the find panel").await?;
    keys(client, &format!("greeting({ENTER}{ESCAPE}")).await?;
    keys(client, &format!("{LEFT}{F12}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active')?.dataset.path === 'src/lib.rs'",
        "F12 opening src/lib.rs in a tab",
    )
    .await?;
    let text = wait_for_script(client, EDITOR_TEXT, "lib.rs in the editor").await?;
    if !text
        .as_str()
        .unwrap_or_default()
        .contains("pub fn greeting")
    {
        return Err(format!("F12 opened {text}, not lib.rs"));
    }
    // Shift+F12 on the definition lists its references, main.rs's call among them.
    keys(client, &format!("{SHIFT}{F12}{RELEASE}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.cm-lsp-reference-panel')?.textContent.includes('main.rs')",
        "Shift+F12's reference panel naming main.rs",
    )
    .await?;
    keys(client, &ESCAPE.to_string()).await?;
    // The outline of lib.rs, from documentSymbol.
    element(client, ".side-tab[data-pane=outline]", "the Outline tab")
        .await?
        .click()
        .await
        .map_err(fail("open the outline"))?;
    wait_for_script(
        client,
        "return [...document.querySelectorAll('.outline-item')].some(i => i.textContent.includes('greeting'))",
        "greeting in the outline",
    )
    .await?;
    element(client, ".side-tab[data-pane=files]", "the Files tab")
        .await?
        .click()
        .await
        .map_err(fail("back to the files"))?;

    // Type on the empty line: the mock's completion shows as ghost text; Tab takes it.
    client
        .find(Locator::Css(".editor-area .cm-content"))
        .await
        .map_err(fail("the editor"))?
        .click()
        .await
        .map_err(fail("focus the editor"))?;
    keys(
        client,
        &format!("{CONTROL}{HOME}{RELEASE}{DOWN}{DOWN}{DOWN}{END}"),
    )
    .await?;
    keys(client, "let upper = ").await?;
    let ghost = wait_for_script(
        client,
        "return document.querySelector('.cm-ghost')?.textContent || null",
        "ghost text from the mock AI service (.cm-ghost)",
    )
    .await?;
    if ghost.as_str() != Some("shown.to_uppercase()") {
        return Err(format!(
            "the ghost text is {ghost}, not the mock's completion"
        ));
    }
    screenshot(client, "web-ide-ghost.png").await?;
    keys(client, &TAB.to_string()).await?;
    let text = wait_for_script(client, EDITOR_TEXT, "the editor's text").await?;
    if !text
        .as_str()
        .unwrap_or_default()
        .contains("    let upper = shown.to_uppercase()")
    {
        return Err(format!("Tab did not insert the ghost text: {text}"));
    }
    keys(client, &format!("{CONTROL}s{RELEASE}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active') && !document.querySelector('.tab.active.dirty')",
        "the tab saved (no unsaved marker)",
    )
    .await?;

    // The terminal sees the saved file.
    element(client, ".terminal .xterm-helper-textarea", "the terminal")
        .await?
        .click()
        .await
        .map_err(fail("focus the terminal"))?;
    wait_for_script(
        client,
        &format!("{TERMINAL_TEXT_IS} r.includes('$')"),
        "the shell prompt",
    )
    .await?;
    keys(client, "cat src/lib.rs\n").await?;
    wait_for_script(
        client,
        &format!("{TERMINAL_TEXT_IS} r.includes('let upper = shown.to_uppercase()')"),
        "`cat` showing the saved change",
    )
    .await?;

    // A reload reattaches to the same shell and replays its output.
    client.refresh().await.map_err(fail("reload"))?;
    element(
        client,
        ".connection[data-state=connected]",
        "the IDE after the reload",
    )
    .await?;
    wait_for_script(
        client,
        "const r = document.querySelector('.terminal .xterm-rows'); \
         return r && r.innerText.replace(/\\u00a0/g, ' ').includes('let upper = shown.to_uppercase()')",
        "the terminal's earlier output replayed after the reload",
    )
    .await?;

    // Search the project and jump to the hit.
    keys(client, &format!("{CONTROL}{SHIFT}f{RELEASE}")).await?;
    element(client, ".search-input", "the search panel").await?;
    keys(client, &format!("greeting{ENTER}")).await?;
    let hit = element(
        client,
        ".search-hit[data-path=\"src/lib.rs\"]",
        "a search hit in src/lib.rs",
    )
    .await?;
    hit.click().await.map_err(fail("click the hit"))?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active')?.dataset.path === 'src/lib.rs'",
        "the hit's file active",
    )
    .await?;

    // The chat streams the answer and names its sources. An image in the
    // answer is not rendered: a same-origin `src` would be a request the
    // AI (or a prompt injection in the code it read) makes with the user's
    // cookie, `/login?token=…` one that signs the browser in as someone else.
    mock.set_reply("The greeting trims the name before showing it. ![pixel](/login?token=planted)");
    element(client, ".chat-input", "the chat input")
        .await?
        .send_keys(&format!("What does greeting do?{ENTER}"))
        .await
        .map_err(fail("ask the chat"))?;
    let answer = wait_for_script(
        client,
        "const a = document.querySelector('.chat-message.assistant.done'); \
         return a ? {text: a.textContent, deltas: Number(a.dataset.deltas || 0), \
         images: a.querySelectorAll('img, svg image, picture, video, audio').length, \
         sources: [...a.querySelectorAll('a.source-link')].map(s => s.textContent)} : null",
        "the chat answer",
    )
    .await?;
    if !answer["text"]
        .as_str()
        .unwrap_or_default()
        .contains("The greeting trims the name before showing it.")
    {
        return Err(format!("the chat shows {answer}"));
    }
    if !answer["sources"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s.as_str().is_some_and(|s| s.contains("lib.rs")))
    }) {
        return Err(format!("the answer names no source file: {answer}"));
    }
    if answer["deltas"].as_u64().unwrap_or(0) < 1 {
        return Err(format!("the answer did not stream: {answer}"));
    }
    if answer["images"] != json!(0) {
        return Err(format!("the answer's image was rendered: {answer}"));
    }
    screenshot(client, "web-chat.png").await?;
    Ok(())
}

/// A code action on the selection, its answer applied through a diff; a
/// suggested command typed at the prompt and not run.
pub(crate) async fn ai_actions(client: &Client, mock: &MockServer) -> Step<()> {
    let ws = workspace_name();
    // Select line 3 of lib.rs and ask for a refactoring.
    element(client, ".editor-area .cm-content", "the editor")
        .await?
        .click()
        .await
        .map_err(fail("focus the editor"))?;
    keys(
        client,
        &format!("{CONTROL}{HOME}{RELEASE}{DOWN}{DOWN}{HOME}{HOME}{SHIFT}{END}{RELEASE}"),
    )
    .await?;
    mock.set_reply("Trimmed and owned:\n```rust\n    let shown = name.trim().to_owned();\n```\n");
    element(
        client,
        "button[data-action=refactor]",
        "the Refactor button",
    )
    .await?
    .click()
    .await
    .map_err(fail("click Refactor"))?;
    wait_for_script(
        client,
        "const a = [...document.querySelectorAll('.chat-message.assistant.done')].pop(); \
         return a && a.textContent.includes('to_owned') && a.querySelector('button[data-code-action=apply]') !== null",
        "the refactoring's code block with Apply to file",
    )
    .await?;
    element(
        client,
        ".chat-log > .chat-message.assistant.done:last-child button[data-code-action=apply]",
        "Apply to file",
    )
    .await?
    .click()
    .await
    .map_err(fail("click Apply to file"))?;
    let diff = wait_for_script(
        client,
        "const d = document.querySelector('.modal pre.diff'); return d ? \
         {add: [...d.querySelectorAll('.diff-add')].map(e => e.textContent), \
          del: [...d.querySelectorAll('.diff-del')].map(e => e.textContent)} : null",
        "the diff before applying",
    )
    .await?;
    if !diff["add"].to_string().contains("to_owned()")
        || !diff["del"].to_string().contains("name.trim();")
    {
        return Err(format!("the diff does not show the change: {diff}"));
    }
    element(
        client,
        ".modal button[data-value=apply]",
        "the diff's Apply button",
    )
    .await?
    .click()
    .await
    .map_err(fail("apply"))?;
    let text = wait_for_script(
        client,
        &format!("{EDITOR_TEXT_IS} t.includes('let shown = name.trim().to_owned();') ? t : null"),
        "the refactoring applied to the selection",
    )
    .await?;
    if text
        .as_str()
        .unwrap_or_default()
        .matches("let shown")
        .count()
        != 1
    {
        return Err(format!(
            "the refactoring did not replace exactly the selection: {text}"
        ));
    }

    keys(client, &format!("{CONTROL}s{RELEASE}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active') && !document.querySelector('.tab.active.dirty')",
        "the refactoring saved",
    )
    .await?;

    // A suggested command lands at the prompt without running, even when the
    // service's answer puts CRs in it (a terminal runs what follows one).
    mock.set_reply(
        "{\"command\": \"true\\rtouch suggested-ran\\r\", \"explanation\": \"Creates the marker file.\"}",
    );
    client
        .find(Locator::XPath("//button[contains(., 'Suggest command')]"))
        .await
        .map_err(fail("the Suggest command button"))?
        .click()
        .await
        .map_err(fail("click Suggest command"))?;
    element(client, ".modal input", "the description field")
        .await?
        .send_keys(&format!("make a marker file{ENTER}"))
        .await
        .map_err(fail("describe the command"))?;
    wait_for_script(
        client,
        &format!("{TERMINAL_TEXT_IS} r.includes('$ true && touch suggested-ran')"),
        "the suggested command typed at the prompt",
    )
    .await?;
    // Ctrl+C drops the typed line; a probe then proves nothing ran it.
    element(client, ".terminal .xterm-helper-textarea", "the terminal")
        .await?
        .click()
        .await
        .map_err(fail("focus the terminal"))?;
    keys(client, &format!("{CONTROL}c{RELEASE}")).await?;
    keys(client, "ls suggested-ran; echo probe-$((5*5))\n").await?;
    wait_for_script(
        client,
        &format!("{TERMINAL_TEXT_IS} r.includes('probe-25')"),
        "the probe's output",
    )
    .await?;
    let status = run_script(
        client,
        &format!("const r = await fetch('/api/v1/workspaces/{ws}/files?path=suggested-ran'); return r.status;"),
        "look for the marker",
    )
    .await?;
    if status != json!(404) {
        return Err(format!(
            "the suggested command was run (marker status {status}); it must only be typed"
        ));
    }
    Ok(())
}

/// Unsaved text survives a server restart: the page reconnects by itself
/// (no reload), re-opens its documents, and saves afterwards.
pub(crate) async fn survive_a_restart(client: &Client, rig: &mut Rig) -> Step<()> {
    let marker = "// unsaved across a restart";
    element(client, ".editor-area .cm-content", "the editor")
        .await?
        .click()
        .await
        .map_err(fail("focus the editor"))?;
    keys(client, &format!("{CONTROL}{END}{RELEASE}{ENTER}{marker}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active.dirty') !== null",
        "the unsaved marker",
    )
    .await?;
    let server = rig.children.0.first_mut().ok_or("no server to restart")?;
    let pid = i32::try_from(server.id()).map_err(fail("the server's pid"))?;
    // SAFETY: kill(2) on the server we started; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    server.wait().map_err(fail("wait for the server to stop"))?;
    wait_for_script(
        client,
        "return ['offline', 'reconnecting'].includes(document.querySelector('.connection')?.dataset.state)",
        "the status bar saying the connection dropped",
    )
    .await?;
    rig.children.0[0] = {
        let mut command = rig.serve(Stdio::null());
        command.process_group(0);
        command.spawn().map_err(fail("restart aicockpit serve"))?
    };
    wait_for_http(rig.port, "/healthz", "the restarted server");
    element(
        client,
        ".connection[data-state=connected]",
        "the page reconnected without a reload",
    )
    .await?;
    let text = client
        .execute(EDITOR_TEXT, vec![])
        .await
        .map_err(fail("read the editor"))?;
    if !text.as_str().unwrap_or_default().contains(marker) {
        return Err(format!(
            "the unsaved text is gone after the restart: {text}"
        ));
    }
    client
        .find(Locator::Css(".editor-area .cm-content"))
        .await
        .map_err(fail("the editor"))?
        .click()
        .await
        .map_err(fail("focus the editor"))?;
    keys(client, &format!("{CONTROL}s{RELEASE}")).await?;
    wait_for_script(
        client,
        "return document.querySelector('.tab.active') && !document.querySelector('.tab.active.dirty')",
        "the save after the restart",
    )
    .await?;
    Ok(())
}

pub(crate) async fn viewer_session(
    admin: &Client,
    viewer: &Client,
    port: u16,
    home: &Path,
) -> Step<()> {
    let ws = workspace_name();
    // The admin makes a user on the Users page and shares the workspace with
    // them as a viewer from the dashboard.
    admin
        .goto(&format!("http://127.0.0.1:{port}/#/users"))
        .await
        .map_err(fail("open the users page"))?;
    element(admin, "input[name=new-user]", "the new user's name")
        .await?
        .send_keys("vera")
        .await
        .map_err(fail("type the name"))?;
    element(
        admin,
        "input[name=new-user-password]",
        "the new user's password",
    )
    .await?
    .send_keys(&format!("viewer-password-1{ENTER}"))
    .await
    .map_err(fail("type the password"))?;
    wait_for_script(
        admin,
        "return [...document.querySelectorAll('table.list tr')].some(r => r.textContent.includes('vera'))",
        "vera in the user list",
    )
    .await?;
    admin
        .goto(&format!("http://127.0.0.1:{port}/#/"))
        .await
        .map_err(fail("open the dashboard"))?;
    // The rows are redrawn with fresh figures every few seconds: find and
    // click the button in one step.
    wait_for_script(
        admin,
        &format!(
            "const b = [...document.querySelectorAll('tr[data-workspace=\"{ws}\"] button')] \
             .find(b => b.textContent === 'Share'); if (b) b.click(); return Boolean(b)"
        ),
        "the Share button",
    )
    .await?;
    element(admin, ".modal input[name=share-user]", "the share dialog")
        .await?
        .send_keys("vera")
        .await
        .map_err(fail("type the user"))?;
    element(
        admin,
        ".modal select option[value=viewer]",
        "the viewer role",
    )
    .await?
    .click()
    .await
    .map_err(fail("choose viewer"))?;
    admin
        .find(Locator::XPath(
            "//div[contains(@class,'modal')]//button[.='Add']",
        ))
        .await
        .map_err(fail("the Add button"))?
        .click()
        .await
        .map_err(fail("click Add"))?;
    element(admin, ".modal button[data-value=save]", "Save")
        .await?
        .click()
        .await
        .map_err(fail("save the sharing"))?;
    wait_for_script(
        admin,
        &format!(
            "return fetch('/api/v1/workspaces/{ws}/members').then(r => r.json()) \
             .then(m => m.some(x => x.user === 'vera' && x.role === 'viewer'))"
        ),
        "vera a viewer of the workspace",
    )
    .await?;
    // Back to the IDE: the terminal reattaches, lib.rs is opened again.
    admin
        .goto(&format!("http://127.0.0.1:{port}/#/w/{ws}"))
        .await
        .map_err(fail("back to the IDE"))?;
    element(admin, ".connection[data-state=connected]", "the IDE again").await?;
    open_from_tree(admin, "src/lib.rs", true).await?;

    // Vera signs in with her password.
    viewer
        .goto(&format!("http://127.0.0.1:{port}/"))
        .await
        .map_err(fail("open the login page"))?;
    element(viewer, "form.login input[name=name]", "the login form")
        .await?
        .send_keys("vera")
        .await
        .map_err(fail("type the name"))?;
    element(
        viewer,
        "form.login input[name=password]",
        "the password field",
    )
    .await?
    .send_keys(&format!("viewer-password-1{ENTER}"))
    .await
    .map_err(fail("type the password"))?;
    element(
        viewer,
        &format!("tr[data-workspace={ws}]"),
        "the shared workspace on vera's dashboard",
    )
    .await?;
    viewer
        .goto(&format!("http://127.0.0.1:{port}/#/w/{ws}"))
        .await
        .map_err(fail("open the IDE as a viewer"))?;
    element(viewer, ".badge.readonly", "the read-only notice").await?;

    // The editor does not take her typing.
    open_from_tree(viewer, "src/lib.rs", false).await?;
    let before = wait_for_script(viewer, EDITOR_TEXT, "lib.rs for the viewer").await?;
    element(viewer, ".editor-area .cm-content", "the viewer's editor")
        .await?
        .click()
        .await
        .map_err(fail("click into the viewer's editor"))?;
    keys(viewer, "viewer typed this").await?;
    let after = viewer
        .execute(EDITOR_TEXT, vec![])
        .await
        .map_err(fail("read the editor"))?;
    if after != before || after.as_str().unwrap_or_default().contains("viewer typed") {
        return Err(format!("a viewer changed the editor's text: {after}"));
    }
    let editable = viewer
        .execute(
            "return document.querySelector('.editor-area .cm-content').contentEditable",
            vec![],
        )
        .await
        .map_err(fail("read contentEditable"))?;
    if editable != json!("false") {
        return Err(format!("the viewer's editor is editable: {editable}"));
    }

    // She watches the admin's terminal, and her keystrokes reach no shell.
    wait_for_script(
        viewer,
        "const r = document.querySelector('.terminal .xterm-rows'); \
         return r && r.innerText.includes('probe-25')",
        "the viewer watching the admin's terminal (its last output)",
    )
    .await?;
    element(
        viewer,
        ".terminal .xterm-helper-textarea",
        "the viewer's terminal",
    )
    .await?
    .click()
    .await
    .map_err(fail("focus the terminal"))?;
    keys(viewer, "touch viewer-was-here\n").await?;
    // The admin then runs a command in the same shell: had her keystrokes
    // reached it, the file would exist by the time this answers.
    element(
        admin,
        ".terminal .xterm-helper-textarea",
        "the admin's terminal",
    )
    .await?
    .click()
    .await
    .map_err(fail("focus the admin's terminal"))?;
    keys(admin, "ls viewer-was-here; echo checked-$((6*7))\n").await?;
    let shown = wait_for_script(
        admin,
        &format!("{TERMINAL_TEXT_IS} r.includes('checked-42') ? r : null"),
        "the admin's check in the shell",
    )
    .await?;
    let exists = run_script(
        admin,
        &format!(
            "const r = await fetch('/api/v1/workspaces/{ws}/files?path=viewer-was-here'); return r.status;"
        ),
        "look for the viewer's file",
    )
    .await?;
    if exists != json!(404) {
        return Err(format!(
            "a viewer's keystrokes reached the shell (status {exists}):\n{shown}"
        ));
    }

    // She changes her password on her account page: a wrong current one is
    // refused and changes nothing, the right one works.
    viewer
        .goto(&format!("http://127.0.0.1:{port}/#/account"))
        .await
        .map_err(fail("open the account page"))?;
    let current = element(
        viewer,
        "input[name=current-password]",
        "the current password field",
    )
    .await?;
    current
        .send_keys("not-her-password")
        .await
        .map_err(fail("type a wrong current password"))?;
    for (name, text) in [
        ("new-password", "viewer-password-2"),
        ("repeat-password", "viewer-password-2"),
    ] {
        element(viewer, &format!("input[name={name}]"), name)
            .await?
            .send_keys(text)
            .await
            .map_err(fail("type the new password"))?;
    }
    element(
        viewer,
        "form[aria-label='change your password'] button",
        "Change password",
    )
    .await?
    .click()
    .await
    .map_err(fail("submit the password change"))?;
    wait_for_script(
        viewer,
        "const t = document.getElementById('toasts');          return t && t.textContent.includes('current password is wrong')",
        "the refusal of a wrong current password",
    )
    .await?;
    current.clear().await.map_err(fail("clear the field"))?;
    current
        .send_keys(&format!("viewer-password-1{ENTER}"))
        .await
        .map_err(fail("type the current password"))?;
    wait_for_script(
        viewer,
        "const t = document.getElementById('toasts');          return t && t.textContent.includes('password changed')",
        "the password change",
    )
    .await?;
    let logins = run_script(
        viewer,
        "const login = (password) => fetch('/api/v1/auth/login', { method: 'POST', \
           headers: { 'content-type': 'application/json' }, \
           body: JSON.stringify({ name: 'vera', password }) }).then(r => r.status); \
         return [await login('viewer-password-1'), await login('viewer-password-2')];",
        "log in with the old and the new password",
    )
    .await?;
    if logins != json!([401, 200]) {
        return Err(format!(
            "after the change, the old and new passwords logged in with {logins} (want [401, 200])"
        ));
    }

    // Past the recent-password window, making an API token asks for her
    // password first, then goes on. (The window is 15 minutes: her
    // sessions' last proof is moved back in the server's database.)
    age_password_proofs(home, "vera")?;
    element(viewer, "input[name=token-name]", "the token name field")
        .await?
        .send_keys(&format!("from-the-browser{ENTER}"))
        .await
        .map_err(fail("ask for a token"))?;
    element(
        viewer,
        ".modal input[name=confirm-password]",
        "the password confirmation dialog",
    )
    .await?
    .send_keys(&format!("viewer-password-2{ENTER}"))
    .await
    .map_err(fail("confirm the password"))?;
    let token = wait_for_script(
        viewer,
        "const c = document.querySelector('.token-shown code.secret'); \
         return c && c.textContent.startsWith('acp_') ? c.textContent : null",
        "the new token, after the confirmation",
    )
    .await?;
    if run_script(
        viewer,
        "return document.querySelectorAll('.modal').length",
        "count dialogs",
    )
    .await?
        != json!(0)
    {
        return Err(format!("the dialog stayed open after {token}"));
    }
    // It expires in the 90 days the form offers first, as the list shows.
    wait_for_script(
        viewer,
        "const row = [...document.querySelectorAll('table.list tr')]\
         .find(r => r.textContent.includes('from-the-browser')); \
         const cell = row && row.querySelector('td.expires'); \
         return cell && /\\d/.test(cell.textContent) ? cell.textContent : null",
        "the new token's expiry in the token list",
    )
    .await?;
    Ok(())
}

/// Move the last password proof of a user's sessions far into the past,
/// in the server's database, as if the recent-password window had passed.
fn age_password_proofs(home: &Path, user: &str) -> Step<()> {
    let paths = aicockpit_config::Paths::from_vars(|name| match name {
        "AICOCKPIT_CONFIG" => Some(home.join("config.toml")),
        "AICOCKPIT_CACHE_DIR" => Some(home.join("cache")),
        "AICOCKPIT_DATA_DIR" => Some(home.join("data")),
        _ => None,
    })
    .map_err(fail("work out the server's paths"))?;
    let db = aicockpit_server::open_db(&paths).map_err(fail("open the server's database"))?;
    let user = user.to_string();
    let aged = db
        .call_blocking(move |c| {
            Ok(c.execute(
                "UPDATE sessions SET confirmed_at = 1 \
                 WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
                [user],
            )?)
        })
        .map_err(fail("age the sessions"))?;
    if aged == 0 {
        return Err("no session to age".into());
    }
    Ok(())
}
