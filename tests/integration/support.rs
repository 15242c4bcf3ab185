//! Test support: temp projects, running the CLI, and a small LSP client that
//! speaks JSON-RPC over the server's stdio as an editor does.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The deadline for any single wait.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A project folder plus private cache and config folders.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

impl Project {
    pub fn new(files: &[(&str, &str)]) -> Project {
        let project = Project {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        for (rel, text) in files {
            project.write(rel, text);
        }
        project
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    /// A command for one of our binaries with the environment pointed at this project's folders.
    pub fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .env("AICOCKPIT_CONFIG", self.home.path().join("config.toml"))
            .env("AICOCKPIT_CACHE_DIR", self.cache_dir())
            .env("AICOCKPIT_DATA_DIR", self.home.path().join("data"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env("RUST_LOG", "warn");
        command
    }

    /// Run `aicockpit ARGS…` to completion (with a deadline).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, &[], None)
    }

    /// Run `aicockpit ARGS…` with extra environment variables and, optionally, text on stdin.
    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut command = self.command(env!("CARGO_BIN_EXE_aicockpit"));
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn aicockpit");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("aicockpit {args:?} did not finish within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A language-server process and the messages it sent.
pub struct LspClient {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    /// Notifications and server requests seen so far, in order.
    pub seen: Vec<Value>,
}

impl LspClient {
    pub fn spawn(project: &Project, args: &[&str]) -> LspClient {
        LspClient::spawn_with_env(project, args, &[])
    }

    pub fn spawn_with_env(project: &Project, args: &[&str], env: &[(&str, &str)]) -> LspClient {
        LspClient::spawn_program(project, env!("CARGO_BIN_EXE_aicockpit-lsp"), args, env)
    }

    /// Any language server program, in the project's environment (benchmarks compare others).
    pub fn spawn_program(
        project: &Project,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> LspClient {
        let mut command = project.command(program);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aicockpit-lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        LspClient {
            child,
            stdin,
            incoming,
            next_id: 1,
            seen: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(body).unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn send(&mut self, message: &Value) {
        self.send_raw(message.to_string().as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send(&message);
    }

    /// Send a request and return its id without waiting.
    pub fn request_async(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        // Requests without parameters omit the field, as the LSP specification asks.
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null() {
            message["params"] = params;
        }
        self.send(&message);
        id
    }

    /// Send a request and wait for the whole response (`result` or `error`).
    pub fn request_response(&mut self, method: &str, params: Value) -> Value {
        let id = self.request_async(method, params);
        self.response(id)
    }

    /// Send a request and return its result, failing the test on an error response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.request_response(method, params);
        if let Some(error) = response.get("error") {
            panic!("{method} failed: {error}");
        }
        response["result"].clone()
    }

    /// Wait for the response with this id, answering server requests meanwhile.
    pub fn response(&mut self, id: i64) -> Value {
        self.wait_for(&format!("the response to request {id}"), |message| {
            message["id"] == json!(id) && message.get("method").is_none()
        })
    }

    /// Wait for a message matching `predicate`, recording and answering everything else.
    pub fn wait_for(&mut self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().position(&predicate) {
            return self.seen.remove(found);
        }
        let started = Instant::now();
        loop {
            let left = DEADLINE.checked_sub(started.elapsed()).unwrap_or_default();
            let message = match self.incoming.recv_timeout(left) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out after {DEADLINE:?} waiting for {what}; seen: {:#?}",
                    self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed its output while we waited for {what}")
                }
            };
            if message.get("method").is_some() && message.get("id").is_some() {
                // A server → client request (progress token, capability registration,
                // an edit to apply): accept it.
                let result = if message["method"] == "workspace/applyEdit" {
                    json!({"applied": true})
                } else {
                    Value::Null
                };
                self.send(&json!({"jsonrpc": "2.0", "id": message["id"], "result": result}));
            }
            if predicate(&message) {
                return message;
            }
            self.seen.push(message);
        }
    }

    pub fn initialize(&mut self, root: &Path, capabilities: Value) -> Value {
        let result = self.request(
            "initialize",
            json!({
                "processId": null,
                "rootUri": file_uri(root),
                "capabilities": capabilities,
                "clientInfo": {"name": "aicockpit-tests"},
            }),
        );
        self.notify("initialized", json!({}));
        result
    }

    /// Wait until the first index is done (its `$/progress` end), for clients that take progress.
    pub fn wait_for_index_progress(&mut self) -> Value {
        self.wait_for("the end of the index progress", |m| {
            m["method"] == "$/progress"
                && m["params"]["token"] == "aicockpit/index"
                && m["params"]["value"]["kind"] == "end"
        })
    }

    /// Wait until `aicockpit/status` says the index is built, for any client.
    pub fn wait_for_index(&mut self) -> Value {
        let started = Instant::now();
        loop {
            let status = self.request("aicockpit/status", Value::Null);
            if status["indexing"] == false && status["lastIndexMs"].is_number() {
                return status;
            }
            if started.elapsed() > DEADLINE {
                panic!("the index was not built within {DEADLINE:?}: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `shutdown`, `exit`, and the process's exit status (with a deadline).
    pub fn shutdown(mut self) -> std::process::ExitStatus {
        self.request("shutdown", Value::Null);
        self.exit()
    }

    /// `exit` (with or without `shutdown` before it) and the process's exit status.
    pub fn exit(mut self) -> std::process::ExitStatus {
        self.notify("exit", Value::Null);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("the server did not exit within {DEADLINE:?} after `exit`");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Held by each end-to-end test that drives a browser (the VS Code and web
/// IDE tests), so two Chromiums never compete for the machine's two cores:
/// under that load their UIs missed input deadlines.
pub static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
