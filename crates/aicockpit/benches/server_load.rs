//! `cargo bench --bench server_load`: one `aicockpit serve` under load, on
//! loopback. 50 language-server sessions over WebSockets type into their own
//! file of a real project (a slice of the Python standard library copied
//! into one Docker workspace) and ask `workspace/symbol` and
//! `textDocument/inlineCompletion` (answered by the in-repo mock AI service
//! at once), while 20 terminals stream output; echo latency is measured on a
//! few of them. The server's resident memory is sampled throughout.
//!
//! Before the load, the same requests are measured with ONE session and no
//! terminals (and the echo with one terminal alone), so the cost of the load
//! shows. Every wait has a deadline; every error and timeout is counted and
//! printed. Prints a Markdown report, also written to `AICOCKPIT_BENCH_OUT`
//! when set. Needs a running Docker engine, busybox-static (the workspace
//! image is built locally) and python3 (for its standard library).

#[allow(dead_code)]
#[path = "../../../tests/integration/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;
use serde_json::{json, Value};
use support::{stderr, stdout, Project};
use tungstenite::Message;

const IMAGE: &str = "aicockpit-bench/workspace:latest";
/// Concurrent language-server sessions under load.
const SESSIONS: usize = 50;
/// Terminals streaming output under load.
const TERMINALS: usize = 20;
/// Of those, how many also measure echo latency.
const ECHO_TERMINALS: usize = 4;
/// How long the load runs.
const LOAD: Duration = Duration::from_secs(30);
/// How long the one-session baseline runs, and the one-terminal echo baseline.
const BASELINE: Duration = Duration::from_secs(20);
const ECHO_BASELINE: Duration = Duration::from_secs(10);
/// A keystroke every 100–200 ms (spread over the sessions).
const KEY_MIN_MS: u64 = 100;
const KEY_SPREAD_MS: u64 = 100;
/// A symbol query and a completion this often per session under load.
const QUERY_INTERVAL: Duration = Duration::from_secs(1);
/// The baseline asks 4× as often, so its percentiles rest on enough samples
/// (still one session: a few requests a second).
const BASELINE_QUERY_INTERVAL: Duration = Duration::from_millis(250);
/// A marker typed into a measured terminal this often.
const ECHO_INTERVAL: Duration = Duration::from_millis(250);
/// The deadline of any one wait (a request's answer, an echo, a start).
const WAIT: Duration = Duration::from_secs(10);
/// Setup steps (image build, server start, first index) get longer.
const SETUP_WAIT: Duration = Duration::from_secs(90);
/// The corpus: this many Python files of the standard library, each at most this big.
const CORPUS_FILES: usize = 300;
const CORPUS_MAX_FILE: u64 = 64 * 1024;
/// Targets of issue 10.
const LSP_P99_TARGET_MS: f64 = 50.0;
const ECHO_P99_TARGET_MS: f64 = 20.0;
const MEMORY_TARGET_BYTES: u64 = 1 << 30;
/// What the mock answers every completion with.
const MOCK_REPLY: &str = "value * 2";
/// The command each terminal streams.
const STREAM: &str = "while :; do echo line; sleep 0.05; done\n";

// ---------------------------------------------------------------------------
// Samples and errors.

#[derive(Default)]
struct Record {
    /// Round trips by request kind.
    samples: BTreeMap<&'static str, Vec<Duration>>,
    /// Errors by kind and what happened, with a count.
    errors: BTreeMap<String, u64>,
    keystrokes: u64,
    terminal_bytes: u64,
}

impl Record {
    fn add(&mut self, other: Record) {
        for (kind, samples) in other.samples {
            self.samples.entry(kind).or_default().extend(samples);
        }
        for (error, count) in other.errors {
            *self.errors.entry(error).or_default() += count;
        }
        self.keystrokes += other.keystrokes;
        self.terminal_bytes += other.terminal_bytes;
    }

    fn sample(&mut self, kind: &'static str, took: Duration) {
        self.samples.entry(kind).or_default().push(took);
    }

    fn error(&mut self, kind: &str, what: impl std::fmt::Display) {
        let mut what = what.to_string();
        what.truncate(160);
        *self.errors.entry(format!("{kind}: {what}")).or_default() += 1;
    }

    fn error_count(&self, kind: &str) -> u64 {
        self.errors
            .iter()
            .filter(|(e, _)| e.starts_with(&format!("{kind}:")))
            .map(|(_, n)| n)
            .sum()
    }
}

struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

fn stats(samples: Option<&Vec<Duration>>) -> Option<Stats> {
    let mut samples = samples?.clone();
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = |p: f64| {
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    Some(Stats {
        n: samples.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    })
}

// ---------------------------------------------------------------------------
// The server process and a small HTTP client.

struct Server {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(project: &Project) -> Server {
        let log = project.home.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("create the server log");
        let mut child = project
            .command(env!("CARGO_BIN_EXE_aicockpit"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn aicockpit serve");
        let out = child.stdout.take().expect("the server's stdout");
        let (sender, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let mut address = None;
        loop {
            let left = SETUP_WAIT.saturating_sub(started.elapsed());
            let Ok(line) = lines.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "the server did not start within {SETUP_WAIT:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            if let Some(rest) = line.strip_prefix("AiCockpit is listening on ") {
                let host = rest.trim().trim_start_matches("http://");
                address = Some(host.parse().expect("host:port"));
            } else if line.contains("/login?token=") || line.starts_with("Sign in at") {
                break;
            }
        }
        Server {
            child,
            address: address.expect("the listening line comes first"),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A JSON request with a bearer token: status and body.
    fn api(&self, token: &str, method: &str, target: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(self.address).expect("connect to the server");
        stream.set_read_timeout(Some(SETUP_WAIT)).expect("timeout");
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .expect("send the request");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).expect("read the reply");
        let text = String::from_utf8_lossy(&reply);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first so sessions and engines end cleanly; then make sure.
        // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the workspace (and its files) however the run ends; declared
/// before the server so it runs after the server is gone.
struct Cleanup<'a>(&'a Project, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.cli(&["workspace", "rm", &self.1, "--purge"]);
    }
}

fn websocket(
    address: SocketAddr,
    token: &str,
    target: &str,
) -> Result<tungstenite::WebSocket<TcpStream>, String> {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{address}{target}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let auth = format!("Bearer {token}").parse().map_err(|_| "bad token")?;
    request.headers_mut().insert("authorization", auth);
    let stream = TcpStream::connect_timeout(&address, WAIT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (socket, _) = tungstenite::client(request, stream).map_err(|e| e.to_string())?;
    // Short reads, so every wait checks its own deadline.
    socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    Ok(socket)
}

fn timed_out(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ))
}

// ---------------------------------------------------------------------------
// One language-server session.

struct Lsp {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: i64,
}

enum Failure {
    /// No answer within the deadline.
    Timeout,
    /// The server answered with a JSON-RPC error.
    Error(String),
    /// The socket closed or broke.
    Closed(String),
}

impl Lsp {
    fn connect(address: SocketAddr, token: &str, workspace: &str) -> Result<Lsp, String> {
        let socket = websocket(
            address,
            token,
            &format!("/api/v1/workspaces/{workspace}/lsp"),
        )?;
        Ok(Lsp { socket, next_id: 0 })
    }

    fn send(&mut self, message: Value) -> Result<(), Failure> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .map_err(|e| Failure::Closed(e.to_string()))
    }

    fn notify(&mut self, method: &str, params: Value) -> Result<(), Failure> {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// A request's result and its round trip (from the send to the answer read).
    fn request(&mut self, method: &str, params: Value) -> Result<(Value, Duration), Failure> {
        self.next_id += 1;
        let id = self.next_id;
        let started = Instant::now();
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = started + WAIT;
        loop {
            let message = match self.socket.read() {
                Ok(Message::Text(text)) => match serde_json::from_str::<Value>(text.as_str()) {
                    Ok(message) => message,
                    Err(error) => return Err(Failure::Error(format!("not JSON: {error}"))),
                },
                Ok(Message::Close(_)) => {
                    return Err(Failure::Closed("closed by the server".into()))
                }
                Ok(_) => continue,
                Err(error) if timed_out(&error) => {
                    if Instant::now() > deadline {
                        return Err(Failure::Timeout);
                    }
                    continue;
                }
                Err(error) => return Err(Failure::Closed(error.to_string())),
            };
            let is_request = message.get("method").is_some();
            if message.get("id") == Some(&json!(id)) && !is_request {
                let took = started.elapsed();
                if let Some(error) = message.get("error") {
                    return Err(Failure::Error(error["message"].to_string()));
                }
                return Ok((message["result"].clone(), took));
            }
            if let (Some(server_id), true) = (message.get("id"), is_request) {
                // A request from the server (progress tokens, configuration): say yes.
                let reply = json!({"jsonrpc": "2.0", "id": server_id.clone(), "result": null});
                self.send(reply)?;
            }
        }
    }
}

/// What one session does, and at what pace.
#[derive(Clone)]
struct SessionPlan {
    index: usize,
    /// The file it opens and types into.
    file: PathBuf,
    uri: String,
    /// Names it asks `workspace/symbol` for (parts of the corpus's names).
    queries: Vec<String>,
    duration: Duration,
    query_interval: Duration,
}

fn record_failure(record: &mut Record, kind: &str, failure: Failure) -> bool {
    match failure {
        Failure::Timeout => {
            record.error(kind, format!("no answer within {WAIT:?}"));
            true
        }
        Failure::Error(message) => {
            record.error(kind, message);
            true
        }
        Failure::Closed(why) => {
            record.error(kind, format!("socket closed: {why}"));
            false
        }
    }
}

/// Start a session (initialize, open its file); `ready` is told once it is.
fn open_session(
    address: SocketAddr,
    token: &str,
    workspace: &str,
    plan: &SessionPlan,
) -> Result<(Lsp, String), String> {
    let mut lsp = Lsp::connect(address, token, workspace).map_err(|e| format!("connect: {e}"))?;
    let params = json!({"processId": null, "rootUri": null, "capabilities": {"window": {"workDoneProgress": true}}});
    match lsp.request("initialize", params) {
        Ok(_) => {}
        Err(Failure::Timeout) => return Err("initialize: no answer".into()),
        Err(Failure::Error(e) | Failure::Closed(e)) => return Err(format!("initialize: {e}")),
    }
    let text = std::fs::read_to_string(&plan.file).map_err(|e| format!("read: {e}"))?;
    let opened = lsp.notify("initialized", json!({})).and_then(|()| {
        lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": plan.uri, "languageId": "python", "version": 1, "text": text}}),
        )
    });
    if opened.is_err() {
        return Err("didOpen: the socket closed".into());
    }
    Ok((lsp, text))
}

/// Type, ask for symbols and completions until the plan's time is up.
fn run_session(mut lsp: Lsp, text: &str, plan: &SessionPlan, start: Instant) -> Record {
    let mut record = Record::default();
    // The cursor: a new line after the file's end, in UTF-16 units as LSP counts.
    let mut line = text.split('\n').count() as u32 - 1;
    let mut character = text
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.encode_utf16().count() as u32);
    let mut version = 1;
    let typed = format!(
        "\n\ndef typed_by_session_{}(value):\n    return value + 1\n",
        plan.index
    );
    let mut keys = typed.chars().cycle();
    // Spread the sessions' events so they do not all fire at once.
    let phase = plan
        .query_interval
        .mul_f64(plan.index as f64 / SESSIONS as f64);
    let mut next_key = start + Duration::from_millis(plan.index as u64 * 7 % KEY_MIN_MS);
    let mut next_symbol = start + phase;
    let mut next_completion = start + phase + plan.query_interval / 2;
    let end = start + plan.duration;
    let mut queries = plan.queries.iter().cycle();
    let mut step: u64 = plan.index as u64;
    loop {
        let next = next_key.min(next_symbol).min(next_completion);
        if next >= end {
            break;
        }
        let now = Instant::now();
        if next > now {
            // Pacing the simulated typist, not waiting for a result.
            std::thread::sleep(next - now);
        }
        if next == next_key {
            let key = keys.next().unwrap_or('x');
            version += 1;
            let change = json!({
                "textDocument": {"uri": plan.uri, "version": version},
                "contentChanges": [{
                    "range": {"start": {"line": line, "character": character}, "end": {"line": line, "character": character}},
                    "text": key.to_string(),
                }],
            });
            if key == '\n' {
                line += 1;
                character = 0;
            } else {
                character += 1;
            }
            if let Err(failure) = lsp.notify("textDocument/didChange", change) {
                record_failure(&mut record, "didChange", failure);
                break;
            }
            record.keystrokes += 1;
            // A pseudo-random pace between KEY_MIN_MS and KEY_MIN_MS + KEY_SPREAD_MS.
            step = step
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            next_key += Duration::from_millis(KEY_MIN_MS + (step >> 33) % KEY_SPREAD_MS);
        } else if next == next_symbol {
            let query = queries.next().cloned().unwrap_or_default();
            match lsp.request("workspace/symbol", json!({"query": query})) {
                Ok((result, took)) => {
                    if result.is_array() {
                        record.sample("workspace/symbol", took);
                    } else {
                        record.error("workspace/symbol", format!("not a list: {result}"));
                    }
                }
                Err(failure) => {
                    if !record_failure(&mut record, "workspace/symbol", failure) {
                        break;
                    }
                }
            }
            next_symbol += plan.query_interval;
        } else {
            let params = json!({
                "textDocument": {"uri": plan.uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
            });
            match lsp.request("textDocument/inlineCompletion", params) {
                Ok((result, took)) => {
                    if result["items"][0]["insertText"].is_string() {
                        record.sample("textDocument/inlineCompletion", took);
                    } else {
                        record.error(
                            "textDocument/inlineCompletion",
                            format!("no ghost text: {result}"),
                        );
                    }
                }
                Err(failure) => {
                    if !record_failure(&mut record, "textDocument/inlineCompletion", failure) {
                        break;
                    }
                }
            }
            next_completion += plan.query_interval;
        }
    }
    let _ = lsp.socket.close(None);
    let _ = lsp.socket.flush();
    record
}

// ---------------------------------------------------------------------------
// One terminal.

struct Terminal {
    socket: tungstenite::WebSocket<TcpStream>,
    bytes: u64,
}

impl Terminal {
    /// Open a terminal and start the streaming loop in it.
    fn open(address: SocketAddr, token: &str, workspace: &str) -> Result<Terminal, String> {
        let target = format!("/api/v1/workspaces/{workspace}/terminal?cols=120&rows=40");
        let socket = websocket(address, token, &target).map_err(|e| format!("connect: {e}"))?;
        let mut terminal = Terminal { socket, bytes: 0 };
        terminal.type_keys(STREAM)?;
        let mut seen = String::new();
        terminal.read_until(Instant::now() + WAIT, |chunk| {
            seen.push_str(chunk);
            seen.contains("line\r\nline\r\n")
        })?;
        Ok(terminal)
    }

    fn type_keys(&mut self, keys: &str) -> Result<(), String> {
        self.socket
            .send(Message::binary(keys.as_bytes().to_vec()))
            .map_err(|e| format!("send: {e}"))
    }

    /// Read output until `done` says so (given each chunk as text) or the deadline;
    /// `Ok(false)` at the deadline.
    fn read_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&str) -> bool,
    ) -> Result<bool, String> {
        loop {
            match self.socket.read() {
                Ok(Message::Binary(bytes)) => {
                    self.bytes += bytes.len() as u64;
                    if done(&String::from_utf8_lossy(&bytes)) {
                        return Ok(true);
                    }
                }
                Ok(Message::Text(text)) => {
                    let control: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    if control["type"] != "session" {
                        return Err(format!("control message: {control}"));
                    }
                }
                Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
                Ok(_) => {}
                Err(error) if timed_out(&error) => {}
                Err(error) => return Err(error.to_string()),
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
        }
    }

    /// Stream until `end`; when `echo`, type a marker every ECHO_INTERVAL and
    /// time its echo.
    fn run(mut self, end: Instant, echo: bool, id: usize) -> Record {
        let mut record = Record::default();
        let mut marker_no = 0u32;
        let mut next_marker = Instant::now();
        while Instant::now() < end {
            if echo && Instant::now() >= next_marker {
                marker_no += 1;
                // Letters the stream never prints; the loop's own lines are
                // removed before matching, in case they land mid-marker.
                let marker = format!("qz{id}k{marker_no}q");
                let started = Instant::now();
                if let Err(error) = self.type_keys(&marker) {
                    record.error("terminal echo", error);
                    break;
                }
                let mut seen = String::new();
                let found = self.read_until(started + WAIT, |chunk| {
                    seen.push_str(chunk);
                    seen.replace("line\r\n", "").contains(&marker)
                });
                match found {
                    Ok(true) => record.sample("terminal echo", started.elapsed()),
                    Ok(false) => record.error("terminal echo", format!("no echo within {WAIT:?}")),
                    Err(error) => {
                        record.error("terminal echo", error);
                        break;
                    }
                }
                next_marker = started + ECHO_INTERVAL;
            } else {
                let until = if echo { next_marker.min(end) } else { end };
                if let Err(error) = self.read_until(until, |_| false) {
                    record.error("terminal stream", error);
                    break;
                }
            }
        }
        // Stop the loop so the shell is idle until the workspace goes.
        let _ = self.type_keys("\u{3}");
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
        record.terminal_bytes = self.bytes;
        record
    }
}

// ---------------------------------------------------------------------------
// Memory and CPU of a process.

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time of a process so far.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no memory preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Samples the server's RSS until stopped; returns the peak seen.
struct MemorySampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemorySampler {
    fn start(pid: u32) -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak_kib.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        MemorySampler {
            stop,
            peak_kib,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak_kib.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// The corpus.

/// The Python standard library's top folder (found through python3).
fn python_stdlib() -> PathBuf {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("this benchmark copies part of Python's standard library: {e}; install it with `apt-get install python3`")
        });
    assert!(output.status.success(), "python3 failed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Copy the first CORPUS_FILES `.py` files (at most CORPUS_MAX_FILE each,
/// in name order) of the top folder and its packages into `dir`. Returns
/// the copied relative paths and the function names found in them.
fn copy_corpus(stdlib: &Path, dir: &Path) -> (Vec<String>, Vec<String>, u64) {
    let mut found = Vec::new();
    let mut folders = vec![stdlib.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && folder == stdlib {
                if !matches!(
                    name.as_str(),
                    "site-packages" | "test" | "idlelib" | "lib2to3" | "__pycache__"
                ) {
                    folders.push(path);
                }
            } else if kind.is_file()
                && name.ends_with(".py")
                && entry
                    .metadata()
                    .is_ok_and(|m| m.len() <= CORPUS_MAX_FILE && m.len() > 512)
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found.truncate(CORPUS_FILES);
    let mut copied = Vec::new();
    let mut names = Vec::new();
    let mut bytes = 0;
    for path in found {
        let rel = path
            .strip_prefix(stdlib)
            .expect("under the stdlib")
            .to_string_lossy()
            .replace('/', "__");
        let text = std::fs::read(&path).expect("read a corpus file");
        bytes += text.len() as u64;
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(rest) = line.strip_prefix("def ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name.len() >= 6 && !name.starts_with('_') {
                    names.push(name);
                }
            }
        }
        let target = dir.join("lib").join(&rel);
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&target, text).expect("write a corpus file");
        copied.push(format!("lib/{rel}"));
    }
    names.sort();
    names.dedup();
    (copied, names, bytes)
}

// ---------------------------------------------------------------------------
// The run.

struct Phase {
    record: Record,
    peak_rss_kib: u64,
    server_cpu: Duration,
    bench_cpu: Duration,
    wall: Duration,
}

fn run_sessions(
    address: SocketAddr,
    token: &str,
    workspace: &str,
    plans: Vec<SessionPlan>,
    terminals: Vec<(Terminal, bool)>,
    terminal_time: Duration,
) -> Record {
    // Open every session first, then start them together.
    let record = Arc::new(Mutex::new(Record::default()));
    let start = Arc::new(std::sync::Barrier::new(plans.len() + 1));
    let mut threads = Vec::new();
    let (opened_sender, opened) = mpsc::channel::<bool>();
    let starting_at = Arc::new(Mutex::new(None::<Instant>));
    let count = plans.len();
    for plan in plans {
        let (token, workspace) = (token.to_string(), workspace.to_string());
        let (record, start, opened, starting_at) = (
            record.clone(),
            start.clone(),
            opened_sender.clone(),
            starting_at.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let session = open_session(address, &token, &workspace, &plan);
            let _ = opened.send(session.is_ok());
            start.wait();
            let begin = starting_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(Instant::now);
            let result = match session {
                Ok((lsp, text)) => run_session(lsp, &text, &plan, begin),
                Err(error) => {
                    let mut r = Record::default();
                    r.error("session start", error);
                    r
                }
            };
            record.lock().unwrap_or_else(|p| p.into_inner()).add(result);
        }));
    }
    for _ in 0..count {
        // Each thread reports once; the deadline covers a server too slow to open them.
        if opened.recv_timeout(SETUP_WAIT).is_err() {
            break;
        }
    }
    let begin = Instant::now();
    *starting_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(begin);
    start.wait();
    let end = begin + terminal_time;
    for (index, (terminal, echo)) in terminals.into_iter().enumerate() {
        let record = record.clone();
        threads.push(std::thread::spawn(move || {
            let result = terminal.run(end, echo, index);
            record.lock().unwrap_or_else(|p| p.into_inner()).add(result);
        }));
    }
    for thread in threads {
        if thread.join().is_err() {
            record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .error("client thread", "panicked");
        }
    }
    Arc::try_unwrap(record)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default()
}

fn measure(server_pid: u32, run: impl FnOnce() -> Record) -> Phase {
    let sampler = MemorySampler::start(server_pid);
    let (server_before, bench_before) = (cpu_time(&server_pid.to_string()), cpu_time("self"));
    let started = Instant::now();
    let record = run();
    let wall = started.elapsed();
    Phase {
        record,
        peak_rss_kib: sampler.finish(),
        server_cpu: cpu_time(&server_pid.to_string()) - server_before,
        bench_cpu: cpu_time("self") - bench_before,
        wall,
    }
}

fn main() {
    let bench_started = Instant::now();
    let stdlib = python_stdlib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply(MOCK_REPLY);

    let project = Project::new(&[]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[workspaces]\ndefault_image = \"{IMAGE}\"\nnetwork = \"none\"\nmemory = \"512m\"\ncpus = 1.0\n\n\
             [completion]\ndebounce_ms = 0\n\n[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\n\
             kind = \"lmstudio\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
            mock.url()
        ),
    )
    .expect("write the config");
    let built = project.cli(&["image", "build", "--tag", IMAGE, "--json"]);
    assert!(
        built.status.success(),
        "building the workspace image failed (needs a running Docker engine and busybox-static: \
         `apt-get install docker.io busybox-static`): {}",
        stderr(&built)
    );

    let server = Server::start(&project);
    let token = stdout(&project.cli(&["admin", "token"])).trim().to_string();
    assert!(token.starts_with("acp_"), "no token: {token}");
    let workspace = format!("bench-load-{}", std::process::id());
    let _cleanup = Cleanup(&project, workspace.clone());
    let (status, view) = server.api(
        &token,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": workspace})),
    );
    assert_eq!(status, 201, "create the workspace: {view}");
    let dir = PathBuf::from(stdout(&project.cli(&["workspace", "path", &workspace])).trim());
    assert!(dir.is_dir(), "the workspace's folder {}", dir.display());
    let (files, names, corpus_bytes) = copy_corpus(&stdlib, &dir);
    assert!(files.len() >= SESSIONS, "only {} corpus files", files.len());
    assert!(names.len() >= 50, "only {} function names", names.len());

    // The first session opens the engine and starts the first index; wait
    // until a function of the last file is found.
    let indexed_started = Instant::now();
    let mut first = Lsp::connect(server.address, &token, &workspace).expect("the first session");
    let Ok((init, _)) = first.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    ) else {
        panic!("the first initialize failed")
    };
    let root = init["capabilities"]["experimental"]["aicockpit"]["rootUri"]
        .as_str()
        .unwrap_or_else(|| panic!("a shared session names its root: {init}"))
        .trim_end_matches('/')
        .to_string();
    let probe = names.last().cloned().expect("a name");
    let mut indexed = false;
    while indexed_started.elapsed() < SETUP_WAIT {
        if let Ok((found, _)) = first.request("workspace/symbol", json!({"query": probe})) {
            if found
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s["name"] == probe.as_str()))
            {
                indexed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        indexed,
        "the first index did not find {probe} within {SETUP_WAIT:?}"
    );
    let index_time = indexed_started.elapsed();
    let _ = first.socket.close(None);
    let _ = first.socket.flush();
    drop(first);
    let idle_rss_kib = status_kib(server.pid(), "VmRSS:").unwrap_or(0);

    // Queries: parts of real function names (5–8 letters), spread per session.
    let plans = |count: usize, duration: Duration, interval: Duration| -> Vec<SessionPlan> {
        (0..count)
            .map(|index| {
                let rel = &files[(index * files.len()) / count.max(1)];
                let file = dir.join(rel);
                let queries = (0..16)
                    .map(|q| {
                        let name = &names[(index * 16 + q) * 7919 % names.len()];
                        name.chars().take(5 + q % 4).collect()
                    })
                    .collect();
                SessionPlan {
                    index,
                    uri: format!("{root}/{rel}"),
                    file,
                    queries,
                    duration,
                    query_interval: interval,
                }
            })
            .collect()
    };

    eprintln!("baseline: one session for {BASELINE:?}…");
    let baseline = measure(server.pid(), || {
        run_sessions(
            server.address,
            &token,
            &workspace,
            plans(1, BASELINE, BASELINE_QUERY_INTERVAL),
            Vec::new(),
            Duration::ZERO,
        )
    });
    eprintln!("baseline: one terminal for {ECHO_BASELINE:?}…");
    let echo_baseline = measure(server.pid(), || {
        match Terminal::open(server.address, &token, &workspace) {
            Ok(terminal) => run_sessions(
                server.address,
                &token,
                &workspace,
                Vec::new(),
                vec![(terminal, true)],
                ECHO_BASELINE,
            ),
            Err(error) => {
                let mut record = Record::default();
                record.error("terminal echo", format!("open: {error}"));
                record
            }
        }
    });

    eprintln!("load: {SESSIONS} sessions and {TERMINALS} terminals for {LOAD:?}…");
    let load = measure(server.pid(), || {
        let mut terminals = Vec::new();
        let mut record = Record::default();
        for index in 0..TERMINALS {
            match Terminal::open(server.address, &token, &workspace) {
                Ok(terminal) => terminals.push((terminal, index < ECHO_TERMINALS)),
                Err(error) => record.error("terminal open", error),
            }
        }
        let sessions = plans(SESSIONS, LOAD, QUERY_INTERVAL);
        record.add(run_sessions(
            server.address,
            &token,
            &workspace,
            sessions,
            terminals,
            LOAD,
        ));
        record
    });
    let hwm_kib = status_kib(server.pid(), "VmHWM:").unwrap_or(0);
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let log_warnings = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();

    let report = report(&Report {
        files: files.len(),
        corpus_bytes,
        names: names.len(),
        index_time,
        idle_rss_kib,
        hwm_kib,
        baseline: &baseline,
        echo_baseline: &echo_baseline,
        load: &load,
        log_warnings,
    });
    println!("{report}");
    if let Some(out) = std::env::var_os("AICOCKPIT_BENCH_OUT") {
        std::fs::write(&out, &report).expect("write AICOCKPIT_BENCH_OUT");
    }
    if log_warnings > 0 {
        eprintln!("server warnings and errors (first 20):");
        for line in log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
        {
            eprintln!("  {line}");
        }
    }
    eprintln!("the whole run took {:.0?}", bench_started.elapsed());
    drop(server);
}

struct Report<'a> {
    files: usize,
    corpus_bytes: u64,
    names: usize,
    index_time: Duration,
    idle_rss_kib: u64,
    hwm_kib: u64,
    baseline: &'a Phase,
    echo_baseline: &'a Phase,
    load: &'a Phase,
    log_warnings: usize,
}

fn report(r: &Report) -> String {
    let mut out = String::new();
    let mib = |kib: u64| kib as f64 / 1024.0;
    out.push_str("### Server under load\n\n");
    out.push_str(&format!(
        "Corpus: {} Python files of the standard library ({:.1} MB, {} function names), \
         first index {:.1} s. Load: {SESSIONS} LSP sessions over WebSockets (a keystroke every \
         {KEY_MIN_MS}–{} ms, a `workspace/symbol` and an inline completion every {} ms each) and \
         {TERMINALS} terminals streaming `{}` ({ECHO_TERMINALS} of them typing a marker every {} ms), \
         for {} s. Baseline: one session for {} s asking every {} ms; one terminal alone for {} s.\n\n",
        r.files,
        r.corpus_bytes as f64 / 1e6,
        r.names,
        r.index_time.as_secs_f64(),
        KEY_MIN_MS + KEY_SPREAD_MS,
        QUERY_INTERVAL.as_millis(),
        STREAM.trim(),
        ECHO_INTERVAL.as_millis(),
        LOAD.as_secs(),
        BASELINE.as_secs(),
        BASELINE_QUERY_INTERVAL.as_millis(),
        ECHO_BASELINE.as_secs(),
    ));
    out.push_str("| measure | baseline n | p50 ms | p99 ms | max ms | load n | p50 ms | p99 ms | max ms | errors under load | target p99 | met |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    let rows: [(&str, &Phase, f64); 3] = [
        ("workspace/symbol", r.baseline, LSP_P99_TARGET_MS),
        (
            "textDocument/inlineCompletion",
            r.baseline,
            LSP_P99_TARGET_MS,
        ),
        ("terminal echo", r.echo_baseline, ECHO_P99_TARGET_MS),
    ];
    let cell = |s: &Option<Stats>| match s {
        Some(s) => format!("{} | {:.1} | {:.1} | {:.1}", s.n, s.p50, s.p99, s.max),
        None => "0 | – | – | –".to_string(),
    };
    for (kind, base, target) in rows {
        let before = stats(base.record.samples.get(kind));
        let after = stats(r.load.record.samples.get(kind));
        let errors = r.load.record.error_count(kind);
        let met = match &after {
            Some(s) if s.p99 < target && errors == 0 => "yes",
            Some(s) if s.p99 < target => "p99 yes, but errors",
            _ => "**no**",
        };
        out.push_str(&format!(
            "| {kind} | {} | {} | {errors} | < {target:.0} ms | {met} |\n",
            cell(&before),
            cell(&after),
        ));
    }
    let peak = r.load.peak_rss_kib.max(r.hwm_kib);
    out.push_str(&format!(
        "| server memory (RSS) | | idle {:.0} MiB | | peak {:.0} MiB | | | | peak {:.0} MiB (VmHWM {:.0} MiB) | | < 1024 MiB | {} |\n\n",
        mib(r.idle_rss_kib),
        mib(r.baseline.peak_rss_kib.max(r.echo_baseline.peak_rss_kib)),
        mib(r.load.peak_rss_kib),
        mib(r.hwm_kib),
        if peak * 1024 < MEMORY_TARGET_BYTES { "yes" } else { "**no**" },
    ));
    let cpu = |p: &Phase| {
        format!(
            "server {:.1} s CPU ({:.0}% of one core), this bench's clients and mock {:.1} s ({:.0}%)",
            p.server_cpu.as_secs_f64(),
            100.0 * p.server_cpu.as_secs_f64() / p.wall.as_secs_f64(),
            p.bench_cpu.as_secs_f64(),
            100.0 * p.bench_cpu.as_secs_f64() / p.wall.as_secs_f64(),
        )
    };
    out.push_str(&format!(
        "Under load: {} keystrokes (`didChange`), {} terminal bytes streamed; {}. \
         Baseline session: {}.\n\n",
        r.load.record.keystrokes,
        r.load.record.terminal_bytes,
        cpu(r.load),
        cpu(r.baseline),
    ));
    let all_errors: Vec<(String, u64)> = [
        ("baseline", r.baseline),
        ("echo baseline", r.echo_baseline),
        ("load", r.load),
    ]
    .iter()
    .flat_map(|(phase, p)| {
        p.record
            .errors
            .iter()
            .map(move |(e, n)| (format!("{phase}: {e}"), *n))
    })
    .collect();
    if all_errors.is_empty() {
        out.push_str("Errors and timeouts: none.");
    } else {
        out.push_str("Errors and timeouts:\n\n");
        for (error, count) in all_errors {
            out.push_str(&format!("- {count} × {error}\n"));
        }
    }
    out.push_str(&format!(
        "\nServer log: {} warning or error lines.\n",
        r.log_warnings
    ));
    out
}
