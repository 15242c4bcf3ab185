//! `aicockpit serve` end to end: the real binary over real HTTP and
//! WebSockets, with workspaces in a real Docker engine. Each test starts its
//! own server in its own temp folders (cheap: a SQLite file and a Docker
//! connection) and names its workspaces uniquely, so tests run in parallel.
//!
//! HTTP goes through the small client below, written on `std::net` so the
//! bytes on the wire are exactly the test's: a percent-encoded path stays
//! encoded, a missing `Origin` stays missing, a source address can be chosen.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::Message;

use crate::support::{stderr, stdout, Project, DEADLINE};
use crate::workspace::{docker_ready, unique, TEST_IMAGE};

const BIN: &str = env!("CARGO_BIN_EXE_aicockpit");
const ORIGIN_EVIL: &str = "http://evil.example";

// ---------------------------------------------------------------------------
// A tiny HTTP/1.1 client.

/// A response: status, headers (names lower-cased) and the whole body.
#[path = "../support/http1.rs"]
mod http1;
pub(crate) use http1::Reply;

fn connect_from(source: Ipv4Addr, target: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(target) = target else {
        panic!("the server listens on IPv4 loopback")
    };
    fn sockaddr(address: SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: address.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*address.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    }
    // SAFETY: socket() has no preconditions; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket nothing else owns; the stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = sockaddr(SocketAddrV4::new(source, 0));
    let remote = sockaddr(target);
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `local` is a valid sockaddr_in of `size` bytes that outlives the call.
    let bound = unsafe { libc::bind(fd, std::ptr::from_ref(&local).cast(), size) };
    assert_eq!(
        bound,
        0,
        "bind {source}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: as above, for `remote`.
    let connected = unsafe { libc::connect(fd, std::ptr::from_ref(&remote).cast(), size) };
    assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
    stream
}

/// Send one request and read its response (by `Content-Length`, chunks, or to the end).
pub(crate) fn http(
    address: SocketAddr,
    source: Option<Ipv4Addr>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = match source {
        Some(source) => connect_from(source, address),
        None => TcpStream::connect(address).expect("connect to the server"),
    };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = http1::request_head(address, method, target, headers, body.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    http1::read_reply(stream, method == "HEAD")
}

// ---------------------------------------------------------------------------
// A server process.

/// One `aicockpit serve` on a free loopback port, over a project's folders.
pub(crate) struct Server {
    project: Arc<Project>,
    child: Child,
    pub(crate) address: SocketAddr,
    pub(crate) url: String,
    /// The one-time login URL printed at first start.
    login_url: Option<String>,
    /// What the server printed on stdout up to and including the sign-in line.
    banner: String,
}

impl Server {
    /// Start a server (stderr appends to `server.log` in the project's home).
    pub(crate) fn start(project: &Arc<Project>, rust_log: &str) -> Server {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(project.home.path().join("server.log"))
            .unwrap();
        let data = project.home.path().join("data");
        let mut child = project
            .command(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn aicockpit serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines): (_, Receiver<String>) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let mut banner = String::new();
        let mut url = None;
        let mut login_url = None;
        loop {
            let left = DEADLINE.saturating_sub(started.elapsed());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the server did not print its address and sign-in line within {DEADLINE:?}; \
                         stdout: {banner}\nlog: {}",
                        read_lossy(&project.home.path().join("server.log"))
                    );
                }
            };
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.strip_prefix("AiCockpit is listening on ") {
                url = Some(rest.trim().to_string());
            } else if line.contains("/login?token=") {
                login_url = Some(line.trim().to_string());
                break;
            } else if line.starts_with("Sign in at") {
                break;
            }
        }
        let url = url.expect("the listening line comes first");
        let address: SocketAddr = url
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .expect("host:port");
        Server {
            project: project.clone(),
            child,
            address,
            url,
            login_url,
            banner,
        }
    }

    fn origin(&self) -> String {
        self.url.clone()
    }

    fn call(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http(self.address, None, method, target, headers, body)
    }

    /// A JSON call with a bearer token (no `Origin`: a script).
    pub(crate) fn api(
        &self,
        token: &str,
        method: &str,
        target: &str,
        body: Option<&Value>,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.call(method, target, &headers, text.as_bytes())
    }

    /// SIGTERM, and the exit status (within a deadline).
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; `pid` is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        wait_child(&mut self.child, Duration::from_secs(20))
            .expect("the server did not exit within 20 s of SIGTERM")
    }

    pub(crate) fn log(&self) -> String {
        read_lossy(&self.project.home.path().join("server.log"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// A project whose config makes small workspaces of the test image without a network.
pub(crate) fn new_project() -> Arc<Project> {
    let project = Project::new(&[]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[workspaces]\ndefault_image = \"{TEST_IMAGE}\"\nnetwork = \"none\"\nmemory = \"256m\"\ncpus = 0.5\n"
        ),
    )
    .unwrap();
    Arc::new(project)
}

/// Removes workspaces (with their files) however the test ends; declare it
/// before the server so it runs after the server is gone.
pub(crate) struct Cleanup(Arc<Project>, std::sync::Mutex<Vec<String>>);

impl Cleanup {
    pub(crate) fn new(project: &Arc<Project>) -> Cleanup {
        Cleanup(project.clone(), Default::default())
    }
    fn add(&self, name: &str) {
        self.1.lock().unwrap().push(name.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in self.1.lock().unwrap().iter() {
            let _ = self.0.cli(&["workspace", "rm", name, "--purge"]);
        }
    }
}

/// `aicockpit admin create-user NAME --role ROLE`, the password on stdin.
pub(crate) fn create_user(project: &Project, name: &str, role: &str, password: &str) {
    let output = project.cli_with(
        &["admin", "create-user", name, "--role", role],
        &[],
        Some(&format!("{password}\n")),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stdout(&output).contains(password),
        "a password given on stdin is not echoed"
    );
}

/// `aicockpit admin token [--user NAME]`: a fresh `acp_…` token.
pub(crate) fn token_for(project: &Project, user: Option<&str>) -> String {
    let mut args = vec!["admin", "token"];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    let output = project.cli(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output).trim().to_string();
    assert!(token.starts_with("acp_"), "{token}");
    token
}

/// `aicockpit audit --json`.
fn audit_cli(project: &Project) -> Vec<Value> {
    let output = project.cli(&["audit", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str::<Value>(&stdout(&output))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The session cookie (`name=value`) of a response's `Set-Cookie`, checking its flags.
#[track_caller]
fn session_cookie(reply: &Reply) -> String {
    let set = reply
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {}", reply.everything()));
    assert!(set.starts_with("aicockpit_session="), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    let pair = set.split(';').next().unwrap().to_string();
    assert!(pair.len() > "aicockpit_session=".len() + 20, "{pair}");
    pair
}

/// The path and query of an absolute URL on the server.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

/// Create a workspace through the API (it starts), registering it for cleanup.
pub(crate) fn create_workspace(
    server: &Server,
    cleanup: &Cleanup,
    token: &str,
    name: &str,
) -> Value {
    cleanup.add(name);
    let reply = server.api(
        token,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": name})),
    );
    let view = reply.expect(201).json();
    assert_eq!(view["state"], "running", "{view}");
    assert_eq!(view["role"], "owner", "{view}");
    assert_eq!(view["network"], "none", "{view}");
    view
}

/// Run a command in a workspace through the API.
fn exec(server: &Server, token: &str, workspace: &str, script: &str) -> Reply {
    server.api(
        token,
        "POST",
        &format!("/api/v1/workspaces/{workspace}/exec"),
        Some(&json!({"command": ["sh", "-c", script], "timeout_secs": 30})),
    )
}

/// Whether a `sleep SECONDS` runs in the workspace.
fn sleeping(server: &Server, token: &str, workspace: &str, seconds: u32) -> bool {
    let script = format!("ps | grep -v grep | grep -q 'sleep {seconds}'");
    exec(server, token, workspace, &script).json()["exit_code"] == json!(0)
}

fn exec_ok(server: &Server, token: &str, workspace: &str, script: &str) -> Value {
    let result = exec(server, token, workspace, script).expect(200).json();
    assert_eq!(result["exit_code"], 0, "{script}: {result}");
    result
}

// ---------------------------------------------------------------------------
// A terminal over a WebSocket.

struct Terminal {
    socket: tungstenite::WebSocket<TcpStream>,
    /// The terminal's bytes so far, as text.
    output: String,
    /// Control messages (JSON text frames) so far.
    controls: Vec<Value>,
}

impl Terminal {
    fn open(server: &Server, token: &str, target: &str) -> Result<Terminal, tungstenite::Error> {
        let auth = format!("Bearer {token}");
        Terminal::open_with(server, &[("authorization", &auth)], target)
    }

    /// Open with any headers (a browser sends its cookie and `Origin`).
    fn open_with(
        server: &Server,
        headers: &[(&'static str, &str)],
        target: &str,
    ) -> Result<Terminal, tungstenite::Error> {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}{target}", server.address)
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let stream = TcpStream::connect(server.address).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (socket, response) = tungstenite::client(request, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => {
                panic!("the WebSocket handshake was interrupted")
            }
        })?;
        assert_eq!(response.status().as_u16(), 101);
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ok(Terminal {
            socket,
            output: String::new(),
            controls: Vec::new(),
        })
    }

    /// The next message, or `None` at the deadline.
    fn next(&mut self, deadline: Instant) -> Option<Message> {
        loop {
            match self.socket.read() {
                Ok(message) => return Some(message),
                Err(tungstenite::Error::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() > deadline {
                        return None;
                    }
                }
                Err(error) => panic!("terminal socket: {error}; output so far: {}", self.output),
            }
        }
    }

    /// Read until the output (from byte `from`) or a control message satisfies `done`.
    fn wait(&mut self, what: &str, done: impl Fn(&str, &[Value]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.output, &self.controls) {
            match self.next(deadline) {
                Some(Message::Binary(bytes)) => {
                    self.output.push_str(&String::from_utf8_lossy(&bytes))
                }
                Some(Message::Text(text)) => self
                    .controls
                    .push(serde_json::from_str(text.as_str()).unwrap()),
                Some(Message::Close(_)) => panic!(
                    "the terminal closed while waiting for {what}; output: {:?}; controls: {:?}",
                    self.output, self.controls
                ),
                Some(_) => {}
                None => panic!(
                    "timed out waiting for {what}; output: {:?}; controls: {:?}",
                    self.output, self.controls
                ),
            }
        }
    }

    fn wait_output(&mut self, needle: &str) {
        self.wait(needle, |output, _| output.contains(needle));
    }

    /// The first message must be the `session` hello.
    fn hello(&mut self) -> Value {
        match self.next(Instant::now() + DEADLINE) {
            Some(Message::Text(text)) => {
                let hello: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(hello["type"], "session", "{hello}");
                hello
            }
            other => panic!("expected the session hello, got {other:?}"),
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.socket
            .send(Message::binary(keys.as_bytes().to_vec()))
            .unwrap();
    }

    fn control(&mut self, value: Value) {
        self.socket.send(Message::text(value.to_string())).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The tests.

/// Item 10: a public address without TLS is refused, naming the flags.
#[test]
fn serve_refuses_a_public_bind_without_tls() {
    let project = Project::new(&[]);
    let output = project.cli(&["serve", "--bind", "0.0.0.0:0"]);
    assert!(!output.status.success());
    let text = stderr(&output);
    for flag in ["--tls-cert", "--tls-key", "--insecure-bind-public"] {
        assert!(text.contains(flag), "{flag} not named: {text}");
    }
    assert!(
        !stdout(&output).contains("listening"),
        "{}",
        stdout(&output)
    );
}

/// Item 1: every route of the OpenAPI description needs credentials, except the public five.
#[test]
fn every_route_but_the_public_ones_needs_credentials() {
    let project = new_project();
    let server = Server::start(&project, "warn");
    let description = server
        .call("GET", "/api/v1/openapi.json", &[], b"")
        .expect(200)
        .json();
    let paths = description["paths"].as_object().unwrap();
    let public = [
        ("get", "/healthz"),
        ("get", "/login"),
        ("post", "/api/v1/auth/login"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/"),
        ("get", "/assets/{file}"),
    ];
    let wrong_token = "Bearer acp_0123456789ab_not-the-secret";
    let wrong_cookie = "aicockpit_session=not-a-session-id-at-all-xxxxxxxxxxxx";
    let mut checked = 0;
    let mut public_seen = Vec::new();
    for (path, item) in paths {
        // Substitute every path parameter: a workspace, service, user or token that may not exist.
        let mut target = String::new();
        let mut rest = path.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').unwrap() + start;
            target.push_str(&rest[..start]);
            target.push_str("probe");
            rest = &rest[end + 1..];
        }
        target.push_str(rest);
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            if public.contains(&(method, path.as_str())) {
                public_seen.push((method, path.clone()));
                continue;
            }
            let upper = method.to_ascii_uppercase();
            checked += 1;
            let anonymous = server.call(&upper, &target, &[], b"");
            assert_eq!(
                anonymous.status, 401,
                "{upper} {target} without credentials"
            );
            assert_eq!(
                anonymous.json()["error"],
                "unauthorized",
                "{upper} {target}"
            );
            let wrong = server.call(&upper, &target, &[("Authorization", wrong_token)], b"");
            assert_eq!(wrong.status, 401, "{upper} {target} with a wrong token");
            let stale = server.call(
                &upper,
                &target,
                &[("Cookie", wrong_cookie), ("Origin", &server.origin())],
                b"",
            );
            assert_eq!(stale.status, 401, "{upper} {target} with a wrong cookie");
            if method == "get" {
                // HEAD runs the GET handler in axum: it must be guarded the same.
                let head = server.call("HEAD", &target, &[], b"");
                assert_eq!(
                    head.status, 401,
                    "HEAD {target} without credentials: {head:?}"
                );
            }
        }
    }
    assert!(checked >= 35, "only {checked} guarded operations described");
    // Methods no route has are refused, never served anonymously.
    for (method, target) in [
        ("OPTIONS", "/api/v1/audit"),
        ("PATCH", "/api/v1/audit"),
        ("POST", "/api/v1/workspaces/probe/backup"),
        ("TRACE", "/api/v1/me"),
    ] {
        let reply = server.call(method, target, &[], b"");
        assert!(
            matches!(reply.status, 401 | 405),
            "{method} {target}: {}",
            reply.everything()
        );
    }
    public_seen.sort();
    let mut expected: Vec<(&str, String)> =
        public.iter().map(|(m, p)| (*m, p.to_string())).collect();
    expected.sort();
    assert_eq!(public_seen, expected, "the public routes are described");

    // What the public ones answer instead.
    let health = server.call("GET", "/healthz", &[], b"").expect(200);
    assert_eq!(health.text(), "ok");
    let home = server.call("GET", "/", &[], b"").expect(200);
    assert!(home
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(home.text().contains("AiCockpit"), "{}", home.text());
    // The web IDE's script is public (the page is useless without it); other names are not there.
    let script = server.call("GET", "/assets/app.js", &[], b"").expect(200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    server.call("GET", "/assets/probe", &[], b"").expect(404);
    let no_token = server.call("GET", "/login", &[], b"").expect(400);
    assert_eq!(no_token.json()["error"], "bad_request");
    let bad_link = server
        .call("GET", "/login?token=guessed", &[], b"")
        .expect(401);
    assert_eq!(bad_link.json()["error"], "bad_link");
    assert!(bad_link.header("set-cookie").is_none());
    let bad_password = server
        .call(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            json!({"name": "admin", "password": "not the password"})
                .to_string()
                .as_bytes(),
        )
        .expect(401);
    assert_eq!(bad_password.json()["error"], "bad_credentials");
    assert!(bad_password.header("set-cookie").is_none());
    assert!(server.login_url.is_some(), "{}", server.banner);
}

/// Item 2: login link, passwords, the rate limit, tokens and logout.
#[test]
fn logins_tokens_and_sessions() {
    let project = new_project();
    let server = Server::start(&project, "warn");
    let link = server
        .login_url
        .clone()
        .expect("first start prints a login URL");
    assert!(
        link.starts_with(&format!("{}/login?token=", server.url)),
        "{link}"
    );

    // The one-time link: a cookie and a 303 to the home page, once.
    let first = server.call("GET", &path_of(&link), &[], b"").expect(303);
    assert_eq!(first.header("location"), Some("/"));
    let admin_cookie = session_cookie(&first);
    let me = server
        .call("GET", "/api/v1/me", &[("Cookie", &admin_cookie)], b"")
        .expect(200)
        .json();
    assert_eq!(me["name"], "admin");
    assert_eq!(me["role"], "admin");
    let again = server.call("GET", &path_of(&link), &[], b"").expect(401);
    assert!(again.header("set-cookie").is_none());

    // A member made by the CLI logs in with their password.
    create_user(&project, "carol", "member", "carol-password-1");
    let login = |source: Ipv4Addr, name: &str, password: &str| {
        http(
            server.address,
            Some(source),
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            json!({"name": name, "password": password})
                .to_string()
                .as_bytes(),
        )
    };
    let localhost = Ipv4Addr::new(127, 0, 0, 1);
    let ok = login(localhost, "carol", "carol-password-1").expect(200);
    assert_eq!(ok.json()["name"], "carol");
    assert!(!ok.text().contains("password"), "{}", ok.text());
    let carol_cookie = session_cookie(&ok);
    let me = server
        .call("GET", "/api/v1/me", &[("Cookie", &carol_cookie)], b"")
        .expect(200)
        .json();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("carol"), Some("member"))
    );
    login(localhost, "carol", "carol-password-2").expect(401);

    // `aicockpit admin token` prints a working token.
    let admin_token = token_for(&project, None);
    assert_eq!(
        server
            .api(&admin_token, "GET", "/api/v1/me", None)
            .expect(200)
            .json()["name"],
        "admin"
    );

    // Tokens made, listed and revoked through the API stop working at once.
    let made = server
        .api(
            &admin_token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({"name": "ci"})),
        )
        .expect(201)
        .json();
    let ci_token = made["token"].as_str().unwrap().to_string();
    let ci_id = made["id"].as_str().unwrap().to_string();
    assert!(ci_token.starts_with(&format!("acp_{ci_id}_")), "{made}");
    server.api(&ci_token, "GET", "/api/v1/me", None).expect(200);
    let listed = server
        .api(&admin_token, "GET", "/api/v1/tokens", None)
        .expect(200);
    assert!(
        !listed.text().contains(&ci_token[ci_token.len() - 20..]),
        "secrets are not listed"
    );
    let listed = listed.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == ci_id.as_str() && t["name"] == "ci"),
        "{listed}"
    );
    server
        .api(
            &admin_token,
            "DELETE",
            &format!("/api/v1/tokens/{ci_id}"),
            None,
        )
        .expect(204);
    server.api(&ci_token, "GET", "/api/v1/me", None).expect(401);
    let listed = server
        .api(&admin_token, "GET", "/api/v1/tokens", None)
        .expect(200)
        .json();
    let tokens = listed.as_array().unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t["id"] == ci_id.as_str() && t["revoked"] == true),
        "{listed}"
    );
    // Another user cannot revoke the admin's token.
    let carol_token = token_for(&project, Some("carol"));
    let admin_id = tokens
        .iter()
        .find(|t| t["name"] == "cli" && t["revoked"] == false)
        .unwrap_or_else(|| panic!("{listed}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .api(
            &carol_token,
            "DELETE",
            &format!("/api/v1/tokens/{admin_id}"),
            None,
        )
        .expect(404);
    server
        .api(&admin_token, "GET", "/api/v1/me", None)
        .expect(200);

    // Logout revokes the session itself, not just the browser's copy.
    let origin = server.origin();
    let out = server
        .call(
            "POST",
            "/api/v1/auth/logout",
            &[("Cookie", &carol_cookie), ("Origin", &origin)],
            b"",
        )
        .expect(204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    server
        .call("GET", "/api/v1/me", &[("Cookie", &carol_cookie)], b"")
        .expect(401);
    server
        .call("GET", "/api/v1/me", &[("Cookie", &admin_cookie)], b"")
        .expect(200);
    // A browser still holding the ended session's cookie can sign in again,
    // by password or by a new link, and reach the public pages.
    let stale = [
        ("Cookie", carol_cookie.as_str()),
        ("Content-Type", "application/json"),
    ];
    let again = server
        .call(
            "POST",
            "/api/v1/auth/login",
            &stale,
            json!({"name": "carol", "password": "carol-password-1"})
                .to_string()
                .as_bytes(),
        )
        .expect(200);
    session_cookie(&again);
    let output = project.cli(&[
        "admin",
        "login-link",
        "--user",
        "carol",
        "--url",
        &server.url,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let carol_link = stdout(&output).trim().to_string();
    let relinked = server
        .call(
            "GET",
            &path_of(&carol_link),
            &[("Cookie", &carol_cookie)],
            b"",
        )
        .expect(303);
    session_cookie(&relinked);
    server
        .call("GET", "/", &[("Cookie", &carol_cookie)], b"")
        .expect(200);
    server
        .call("GET", "/healthz", &[("Cookie", &carol_cookie)], b"")
        .expect(200);

    // A role change ends the user's sessions; deleting a user ends their tokens too.
    create_user(&project, "fred", "member", "fred-password-1");
    let fred_cookie = session_cookie(&login(localhost, "fred", "fred-password-1").expect(200));
    let fred_token = token_for(&project, Some("fred"));
    server
        .api(
            &admin_token,
            "PATCH",
            "/api/v1/users/fred",
            Some(&json!({"role": "auditor"})),
        )
        .expect(200);
    server
        .call("GET", "/api/v1/me", &[("Cookie", &fred_cookie)], b"")
        .expect(401);
    assert_eq!(
        server
            .api(&fred_token, "GET", "/api/v1/me", None)
            .expect(200)
            .json()["role"],
        "auditor",
        "a token carries the user's current role"
    );
    server
        .api(&admin_token, "DELETE", "/api/v1/users/fred", None)
        .expect(204);
    server
        .api(&fred_token, "GET", "/api/v1/me", None)
        .expect(401);
    login(localhost, "fred", "fred-password-1").expect(401);

    // Guessing login links is limited per address too.
    let guesser = Ipv4Addr::new(127, 0, 0, 6);
    for attempt in 1..=10 {
        let reply = http(
            server.address,
            Some(guesser),
            "GET",
            &format!("/login?token=guess{attempt}"),
            &[],
            b"",
        );
        assert_eq!(reply.status, 401, "link guess {attempt}: {}", reply.text());
    }
    let limited = http(
        server.address,
        Some(guesser),
        "GET",
        "/login?token=guess11",
        &[],
        b"",
    )
    .expect(429);
    assert!(limited.header("retry-after").is_some());
    // ...and only there: the recovery link still works from elsewhere.
    let output = project.cli(&["admin", "login-link", "--url", &server.url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let fresh = stdout(&output).trim().to_string();
    // Recorded as made on the host (each link so far), without its token.
    let made: Vec<Value> = audit_cli(&project)
        .into_iter()
        .filter(|r| r["action"] == "login_link.create")
        .collect();
    assert!(made.len() >= 2, "{made:#?}");
    let last = made.last().unwrap();
    assert_eq!(last["target"], "user:admin", "{last:#?}");
    let secret = fresh.split("token=").nth(1).unwrap();
    assert!(!last.to_string().contains(secret), "{last:#?}");
    session_cookie(&server.call("GET", &path_of(&fresh), &[], b"").expect(303));

    // 10 wrong passwords from one address: the 11th try is refused with
    // Retry-After, for that user from anywhere and for that address for anyone.
    create_user(&project, "dave", "member", "dave-password-1");
    create_user(&project, "erin", "member", "erin-password-1");
    let attacker = Ipv4Addr::new(127, 0, 0, 7);
    for attempt in 1..=10 {
        let reply = login(attacker, "dave", &format!("guess-number-{attempt}"));
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text());
    }
    let limited = login(attacker, "dave", "guess-number-11").expect(429);
    let wait: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(limited.json()["error"], "rate_limited");
    // Per user: the right password from another address is refused too.
    login(Ipv4Addr::new(127, 0, 0, 8), "dave", "dave-password-1").expect(429);
    // Per address: another user's right password from the attacker's address is refused.
    login(attacker, "erin", "erin-password-1").expect(429);
    // Neither limit reaches others.
    login(Ipv4Addr::new(127, 0, 0, 9), "erin", "erin-password-1").expect(200);
}

/// Item 3: cookies only work from the server's own pages; tokens work from scripts.
#[test]
fn cookie_requests_from_foreign_origins_are_refused() {
    let project = new_project();
    let server = Server::start(&project, "warn");
    let link = server.login_url.clone().unwrap();
    let cookie = session_cookie(&server.call("GET", &path_of(&link), &[], b"").expect(303));
    let origin = server.origin();
    let tokens = |server: &Server| {
        server
            .call("GET", "/api/v1/tokens", &[("Cookie", &cookie)], b"")
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    let body = json!({"name": "from-a-page"}).to_string();
    let post = |origin: Option<&str>| {
        let mut headers = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        server.call("POST", "/api/v1/tokens", &headers, body.as_bytes())
    };
    assert_eq!(tokens(&server), 0);
    let foreign = post(Some(ORIGIN_EVIL)).expect(403);
    assert_eq!(foreign.json()["error"], "bad_origin");
    let missing = post(None).expect(403);
    assert_eq!(missing.json()["error"], "forbidden");
    let lookalike = post(Some(&format!("{origin}.evil.example"))).expect(403);
    assert_eq!(lookalike.json()["error"], "bad_origin");
    assert_eq!(tokens(&server), 0, "nothing was created");
    let made = post(Some(&origin)).expect(201).json();
    assert_eq!(tokens(&server), 1);

    // PUT and DELETE too.
    let id = made["id"].as_str().unwrap();
    let delete = server.call(
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        &[("Cookie", &cookie), ("Origin", ORIGIN_EVIL)],
        b"",
    );
    assert_eq!(delete.status, 403, "{}", delete.text());
    let made_token = made["token"].as_str().unwrap();
    server
        .api(made_token, "GET", "/api/v1/me", None)
        .expect(200);
    let put = server.call(
        "PUT",
        "/api/v1/workspaces/anything/members",
        &[
            ("Cookie", &cookie),
            ("Origin", ORIGIN_EVIL),
            ("Content-Type", "application/json"),
        ],
        b"[]",
    );
    assert_eq!(put.status, 403, "{}", put.text());
    let logout = server.call(
        "POST",
        "/api/v1/auth/logout",
        &[("Cookie", &cookie), ("Origin", ORIGIN_EVIL)],
        b"",
    );
    assert_eq!(logout.status, 403);
    server
        .call("GET", "/api/v1/me", &[("Cookie", &cookie)], b"")
        .expect(200);

    // WebSocket upgrades with the cookie from a foreign page are refused before anything else.
    let upgrade = |origin: &str| {
        server.call(
            "GET",
            "/api/v1/workspaces/anything/terminal",
            &[
                ("Cookie", &cookie),
                ("Origin", origin),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            b"",
        )
    };
    let refused = upgrade(ORIGIN_EVIL);
    assert_eq!(refused.status, 403, "{}", refused.everything());
    assert_eq!(refused.json()["error"], "bad_origin");
    let bare = server.call(
        "GET",
        "/api/v1/workspaces/anything/terminal",
        &[
            ("Cookie", &cookie),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    );
    assert_eq!(
        bare.status,
        403,
        "an upgrade with the cookie and no Origin: {}",
        bare.everything()
    );
    // From its own page the same upgrade passes the origin check (and finds no such workspace).
    let own = upgrade(&origin);
    assert_eq!(own.status, 404, "{}", own.everything());

    // A script with a bearer token and no Origin at all.
    let token = token_for(&project, None);
    server
        .api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({"name": "script"})),
        )
        .expect(201);
    assert_eq!(tokens(&server), 3);
}

/// Item 4: members see only their own and shared workspaces, with the role they were given.
#[test]
fn members_reach_only_what_is_shared_with_them() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    create_user(&project, "alice", "member", "alice-password-1");
    create_user(&project, "bob", "member", "bob-password-1");
    let alice = token_for(&project, Some("alice"));
    let bob = token_for(&project, Some("bob"));
    let admin = token_for(&project, None);
    let name = unique("srv-share");
    create_workspace(&server, &cleanup, &alice, &name);
    exec_ok(&server, &alice, &name, "echo alice > /workspace/mine.txt");
    let base = format!("/api/v1/workspaces/{name}");
    let file = format!("{base}/files?path=mine.txt");

    // Not shared: bob cannot tell it from a workspace that does not exist.
    let names = |token: &str| -> Vec<String> {
        server
            .api(token, "GET", "/api/v1/workspaces", None)
            .expect(200)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!names(&bob).contains(&name));
    assert!(names(&admin).contains(&name), "admins see every workspace");
    let missing = server
        .api(
            &bob,
            "GET",
            "/api/v1/workspaces/no-such-workspace-at-all",
            None,
        )
        .expect(404)
        .json();
    assert_eq!(missing["error"], "not_found");
    for (method, target, body) in [
        ("GET", base.clone(), None),
        ("GET", file.clone(), None),
        ("GET", format!("{base}/members"), None),
        (
            "POST",
            format!("{base}/exec"),
            Some(json!({"command": ["true"]})),
        ),
        ("DELETE", base.clone(), None),
        ("GET", format!("{base}/backup"), None),
        ("GET", format!("{base}/terminal"), None),
    ] {
        let reply = server.api(&bob, method, &target, body.as_ref()).expect(404);
        assert_eq!(
            reply.json(),
            missing,
            "{method} {target}: the body says nothing more"
        );
    }

    // Shared as viewer: read only.
    let share = |role: &str| {
        server
            .api(
                &alice,
                "PUT",
                &format!("{base}/members"),
                Some(&json!([{"user": "bob", "role": role}])),
            )
            .expect(200)
            .json()
    };
    assert_eq!(share("viewer"), json!([{"user": "bob", "role": "viewer"}]));
    let listed = server
        .api(&bob, "GET", "/api/v1/workspaces", None)
        .expect(200)
        .json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(entry["role"], "viewer");
    assert_eq!(entry["owner"], "alice");
    let read = server.api(&bob, "GET", &file, None).expect(200).json();
    assert_eq!(read["content"], "alice\n");
    let version = read["version"].as_str().unwrap().to_string();
    let write = |token: &str, text: &str, version: &str| {
        let auth = format!("Bearer {token}");
        let quoted = format!("\"{version}\"");
        server.call(
            "PUT",
            &file,
            &[("Authorization", &auth), ("If-Match", &quoted)],
            text.as_bytes(),
        )
    };
    write(&bob, "bob was here\n", &version).expect(403);
    exec(&server, &bob, &name, "touch /workspace/bob").expect(403);
    server.api(&bob, "DELETE", &base, None).expect(403);
    server
        .api(
            &bob,
            "PUT",
            &format!("{base}/members"),
            Some(&json!([{"user": "bob", "role": "editor"}])),
        )
        .expect(403);
    server
        .api(&bob, "GET", &format!("{base}/backup"), None)
        .expect(403);
    assert_eq!(
        server.api(&alice, "GET", &file, None).expect(200).json()["content"],
        "alice\n",
        "the viewer changed nothing"
    );

    // Shared as editor: writes and commands, but not delete, share or back up.
    share("editor");
    let written = write(&bob, "bob was here\n", &version).expect(200).json();
    assert_ne!(written["version"], version.as_str());
    let out = exec_ok(&server, &bob, &name, "cat /workspace/mine.txt");
    assert_eq!(out["stdout"], "bob was here\n");
    server.api(&bob, "DELETE", &base, None).expect(403);
    server
        .api(&bob, "PUT", &format!("{base}/members"), Some(&json!([])))
        .expect(403);
    server
        .api(&bob, "GET", &format!("{base}/backup"), None)
        .expect(403);

    // The owner and admins can back up, and delete.
    let backup = server
        .api(&alice, "GET", &format!("{base}/backup"), None)
        .expect(200);
    assert_eq!(&backup.body[..2], &[0x1f, 0x8b], "a gzip archive");
    let backup = server
        .api(&admin, "GET", &format!("{base}/backup"), None)
        .expect(200);
    assert_eq!(&backup.body[..2], &[0x1f, 0x8b], "a gzip archive");
    // Anyone who may create workspaces may restore one from an upload, and owns it.
    let copy = unique("srv-copy");
    cleanup.add(&copy);
    let auth = format!("Bearer {bob}");
    let restored = server
        .call(
            "POST",
            &format!("/api/v1/workspaces/restore?name={copy}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/gzip"),
            ],
            &backup.body,
        )
        .expect(201)
        .json();
    assert_eq!(
        (restored["owner"].as_str(), restored["role"].as_str()),
        (Some("bob"), Some("owner"))
    );
    assert_eq!(
        server
            .api(
                &bob,
                "GET",
                &format!("/api/v1/workspaces/{copy}/files?path=mine.txt"),
                None
            )
            .expect(200)
            .json()["content"],
        "bob was here\n"
    );
    server
        .api(&alice, "GET", &format!("/api/v1/workspaces/{copy}"), None)
        .expect(404);
    server
        .api(
            &bob,
            "DELETE",
            &format!("/api/v1/workspaces/{copy}?purge=true"),
            None,
        )
        .expect(200);
    server.api(&alice, "DELETE", &base, None).expect(200);
    assert!(!names(&alice).contains(&name));
    assert!(!names(&bob).contains(&name));

    // A workspace removed behind the server's back (`aicockpit workspace rm`)
    // leaves no owner or member behind for the next one of that name.
    let reused = unique("srv-reuse");
    create_workspace(&server, &cleanup, &alice, &reused);
    server
        .api(
            &alice,
            "PUT",
            &format!("/api/v1/workspaces/{reused}/members"),
            Some(&json!([{"user": "bob", "role": "editor"}])),
        )
        .expect(200);
    let removed = project.cli(&["workspace", "rm", &reused, "--purge"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    create_user(&project, "cy", "member", "cy-password-01");
    let cy = token_for(&project, Some("cy"));
    let view = create_workspace(&server, &cleanup, &cy, &reused);
    assert_eq!(view["owner"], "cy", "{view}");
    for (who, token) in [("alice", &alice), ("bob", &bob)] {
        let reply = server.api(token, "GET", &format!("/api/v1/workspaces/{reused}"), None);
        assert_eq!(
            reply.status,
            404,
            "{who} reaches cy's new workspace: {}",
            reply.text()
        );
    }
    assert_eq!(
        server
            .api(
                &cy,
                "GET",
                &format!("/api/v1/workspaces/{reused}/members"),
                None
            )
            .expect(200)
            .json(),
        json!([])
    );
}

/// An exec run is a long-lived request like a terminal: when its caller's
/// access ends (here its token is revoked), the command is stopped.
#[test]
fn an_exec_run_stops_when_its_token_is_revoked() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    create_user(&project, "alice", "member", "alice-password-1");
    let alice = token_for(&project, Some("alice"));
    let name = unique("srv-exec-revoke");
    create_workspace(&server, &cleanup, &alice, &name);
    let made = server
        .api(
            &alice,
            "POST",
            "/api/v1/tokens",
            Some(&json!({"name": "script"})),
        )
        .expect(201)
        .json();
    let script_token = made["token"].as_str().unwrap().to_string();
    let address = server.address;
    let target = format!("/api/v1/workspaces/{name}/exec");
    let in_flight = std::thread::spawn(move || {
        let body = json!({"command": ["sleep", "313"], "timeout_secs": 600}).to_string();
        http(
            address,
            None,
            "POST",
            &target,
            &[
                ("Authorization", &format!("Bearer {script_token}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    });
    let running = |server: &Server| sleeping(server, &alice, &name, 313);
    let deadline = Instant::now() + DEADLINE;
    while !running(&server) {
        assert!(Instant::now() < deadline, "the long command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let revoked = Instant::now();
    server
        .api(
            &alice,
            "DELETE",
            &format!("/api/v1/tokens/{}", made["id"].as_str().unwrap()),
            None,
        )
        .expect(204);
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        reply.text().contains("ended while the command ran"),
        "{}",
        reply.text()
    );
    assert!(
        revoked.elapsed() < Duration::from_secs(15),
        "stopped {:?} after the revocation",
        revoked.elapsed()
    );
    // And the command is gone from the container.
    let deadline = Instant::now() + DEADLINE;
    while running(&server) {
        assert!(
            Instant::now() < deadline,
            "the command outlived its caller's access"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that hangs up on a running `exec` stops the command, and the
/// call is still in the audit log, with the command and `client_closed`.
#[test]
fn an_exec_whose_client_hangs_up_is_stopped_and_audited() {
    use std::io::Read;
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    create_user(&project, "alice", "member", "alice-password-1");
    let alice = token_for(&project, Some("alice"));
    let admin = token_for(&project, None);
    let name = unique("srv-exec-hangup");
    create_workspace(&server, &cleanup, &alice, &name);
    let body = json!({"command": ["sleep", "317"], "timeout_secs": 600}).to_string();
    let mut client = TcpStream::connect(server.address).unwrap();
    write!(
        client,
        "POST /api/v1/workspaces/{name}/exec HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {alice}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        server.address,
        body.len()
    )
    .unwrap();
    let running = |server: &Server| sleeping(server, &alice, &name, 317);
    let deadline = Instant::now() + DEADLINE;
    while !running(&server) {
        assert!(Instant::now() < deadline, "the long command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing was answered yet: the command runs for minutes.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut first = [0u8; 1];
    assert!(
        client.read(&mut first).is_err(),
        "the exec answered before its command ended"
    );
    drop(client);
    let deadline = Instant::now() + DEADLINE;
    while running(&server) {
        assert!(
            Instant::now() < deadline,
            "the command outlived the client that ran it"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records = server
            .api(&admin, "GET", "/api/v1/audit?limit=10000", None)
            .expect(200)
            .json();
        let record = records.as_array().unwrap().iter().find(|r| {
            r["action"] == "workspace.exec"
                && r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(r#"["sleep","317"]"#))
        });
        if let Some(record) = record {
            assert_eq!(record["result"], "client_closed", "{record}");
            assert_eq!(record["user"], "alice", "{record}");
            assert_eq!(record["target"], format!("workspace:{name}"), "{record}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no audit record of the abandoned exec: {records}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Item 5: the files API keeps versions honest and never leaves the workspace.
#[test]
fn files_have_versions_and_stay_inside_the_workspace() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    let token = token_for(&project, None);
    let name = unique("srv-files");
    create_workspace(&server, &cleanup, &token, &name);
    let files = format!("/api/v1/workspaces/{name}/files");
    let auth = format!("Bearer {token}");
    let put = |path: &str, precondition: Option<(&str, &str)>, body: &[u8]| {
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(p) = precondition {
            headers.push(p);
        }
        server.call("PUT", &format!("{files}?path={path}"), &headers, body)
    };
    let get = |path: &str| server.api(&token, "GET", &format!("{files}?path={path}"), None);

    // Create, read back with its version, replace it, and refuse a stale version.
    let first = put("notes/a.txt", Some(("If-None-Match", "*")), b"one\n").expect(200);
    let v1 = first.json()["version"].as_str().unwrap().to_string();
    assert_eq!(first.header("etag"), Some(format!("\"{v1}\"").as_str()));
    let read = get("notes/a.txt").expect(200);
    assert_eq!(read.header("etag"), Some(format!("\"{v1}\"").as_str()));
    let view = read.json();
    assert_eq!(
        (view["content"].as_str(), view["version"].as_str()),
        (Some("one\n"), Some(v1.as_str()))
    );
    put("notes/a.txt", Some(("If-None-Match", "*")), b"clobber\n").expect(409);
    let quoted = format!("\"{v1}\"");
    let second = put("notes/a.txt", Some(("If-Match", &quoted)), b"two\n").expect(200);
    let v2 = second.json()["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    let stale = put("notes/a.txt", Some(("If-Match", &quoted)), b"lost update\n").expect(409);
    assert_eq!(stale.json()["error"], "version_conflict");
    let none = put("notes/a.txt", None, b"blind write\n").expect(428);
    assert_eq!(none.json()["error"], "precondition_required");
    assert_eq!(get("notes/a.txt").expect(200).json()["content"], "two\n");
    assert_eq!(
        exec_ok(&server, &token, &name, "cat /workspace/notes/a.txt")["stdout"],
        "two\n"
    );
    // A change made inside the container makes the reader's version stale too.
    exec_ok(
        &server,
        &token,
        &name,
        "echo three > /workspace/notes/a.txt",
    );
    let v2_quoted = format!("\"{v2}\"");
    put("notes/a.txt", Some(("If-Match", &v2_quoted)), b"four\n").expect(409);
    assert_eq!(
        exec_ok(&server, &token, &name, "cat /workspace/notes/a.txt")["stdout"],
        "three\n"
    );

    // Escapes: nothing outside /workspace is read or written.
    let host_dir = PathBuf::from(stdout(&project.cli(&["workspace", "path", &name])).trim());
    assert!(
        host_dir.join("notes/a.txt").exists(),
        "{}",
        host_dir.display()
    );
    let outside = host_dir.parent().unwrap().to_path_buf();
    exec_ok(
        &server,
        &token,
        &name,
        "ln -s /etc /workspace/link && ln -s /etc/passwd /workspace/pw && mkfifo /workspace/fifo",
    );
    for path in [
        "..",
        "../..",
        "/etc/passwd",
        "../../../../etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "notes/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "link/passwd",
        "link",
        "pw",
    ] {
        let reply = get(path);
        assert!(
            (400..500).contains(&reply.status) && !reply.text().contains("root:"),
            "GET {path}: {} {}",
            reply.status,
            reply.text()
        );
        let written = put(path, Some(("If-None-Match", "*")), b"escaped\n");
        assert!(
            (400..500).contains(&written.status),
            "PUT {path}: {} {}",
            written.status,
            written.text()
        );
    }
    for path in [
        "link/escaped.txt",
        "../escaped.txt",
        "%2e%2e%2fescaped.txt",
        "/tmp/escaped.txt",
    ] {
        let written = put(path, Some(("If-None-Match", "*")), b"escaped\n");
        assert!(
            (400..500).contains(&written.status),
            "PUT {path}: {}",
            written.text()
        );
    }
    let json_post = |target: &str, body: Value| server.api(&token, "POST", target, Some(&body));
    for (target, body) in [
        (
            format!("{files}/folder"),
            json!({"path": "link/made-by-api"}),
        ),
        (format!("{files}/folder"), json!({"path": "../made-by-api"})),
        (
            format!("{files}/rename"),
            json!({"from": "notes/a.txt", "to": "link/moved.txt"}),
        ),
        (
            format!("{files}/rename"),
            json!({"from": "link/hostname", "to": "stolen.txt"}),
        ),
        (
            format!("{files}/rename"),
            json!({"from": "notes/a.txt", "to": "../moved.txt"}),
        ),
    ] {
        let reply = json_post(&target, body.clone());
        assert!(
            (400..500).contains(&reply.status),
            "{target} {body}: {}",
            reply.text()
        );
    }
    for path in ["link/hostname", "link", "../notes", "%2e%2e"] {
        let auth = format!("Bearer {token}");
        let reply = server.call(
            "DELETE",
            &format!("{files}?path={path}"),
            &[("Authorization", &auth)],
            b"",
        );
        if path == "link" {
            // Deleting the link itself is fine; what it points at stays.
            assert_eq!(reply.status, 204, "{}", reply.text());
            exec_ok(&server, &token, &name, "ln -s /etc /workspace/link");
        } else {
            assert!(
                (400..500).contains(&reply.status),
                "DELETE {path}: {}",
                reply.text()
            );
        }
    }
    let etc = exec_ok(&server, &token, &name, "test -f /etc/hostname && test ! -e /etc/made-by-api && test ! -e /etc/moved.txt && cat /workspace/notes/a.txt");
    assert_eq!(etc["stdout"], "three\n");
    let traversal = get("%2e%2e%2f%2e%2e%2fetc%2fpasswd");
    assert_eq!(
        traversal.json()["error"],
        "path_escape",
        "{}",
        traversal.text()
    );
    let found = exec(
        &server,
        &token,
        &name,
        "test -e /etc/escaped.txt || test -e /tmp/escaped.txt",
    )
    .expect(200)
    .json();
    assert_eq!(
        found["exit_code"], 1,
        "nothing was written through the link: {found}"
    );
    for dir in [&outside, &outside.parent().unwrap().to_path_buf()] {
        assert!(!dir.join("escaped.txt").exists(), "{}", dir.display());
    }
    assert!(!Path::new("/etc/escaped.txt").exists());
    assert_eq!(
        exec_ok(&server, &token, &name, "readlink /workspace/link")["stdout"],
        "/etc\n",
        "the link itself is left alone"
    );

    // A FIFO is refused at once (a read would otherwise block forever).
    let started = Instant::now();
    let fifo = get("fifo");
    assert_eq!(fifo.status, 422, "{}", fifo.text());
    assert_eq!(fifo.json()["error"], "not_a_file");
    let fifo_write = put("fifo", Some(("If-Match", "\"0000\"")), b"x");
    assert!(
        (400..500).contains(&fifo_write.status),
        "{}",
        fifo_write.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Files over the limit (16 MiB) are neither written nor read.
    let big = vec![b'x'; (16 << 20) + 1];
    let refused = put("big.bin", Some(("If-None-Match", "*")), &big).expect(413);
    assert_eq!(refused.json()["error"], "too_large");
    get("big.bin").expect(404);
    exec_ok(
        &server,
        &token,
        &name,
        "dd if=/dev/zero of=/workspace/big.bin bs=1048576 count=17 2>/dev/null",
    );
    assert_eq!(get("big.bin").expect(413).json()["error"], "too_large");
}

/// Item 6: a service key goes to its 0600 file and nowhere else.
#[test]
fn service_keys_never_leave_the_key_file() {
    use aicockpit_ai::mock::MockServer;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("a + b");
    let project = new_project();
    let server = Server::start(&project, "debug");
    let token = token_for(&project, None);
    let key = format!("sk-test-{}", unique("k").replace('-', ""));
    let new_key = format!("sk-test-{}", unique("n").replace('-', ""));
    let mut seen = String::new();
    let mut call = |method: &str, target: &str, body: Option<&Value>| {
        let reply = server.api(&token, method, target, body);
        seen.push_str(&reply.everything());
        reply
    };
    let added = call(
        "POST",
        "/api/v1/services",
        Some(&json!({
            "name": "mock", "kind": "custom", "base_url": mock.url(),
            "chat_model": "mock-chat", "api_key": key, "activate": true,
        })),
    )
    .expect(201)
    .json();
    assert_eq!(added["key_stored"], true, "{added}");
    assert_eq!(added["active"], true, "{added}");
    let updated = call(
        "PUT",
        "/api/v1/services/mock",
        Some(&json!({"completion_model": "mock-coder"})),
    )
    .expect(200)
    .json();
    assert_eq!(updated["completion_model"], "mock-coder");
    assert_eq!(
        updated["key_stored"], true,
        "an edit that keeps the URL keeps the key"
    );
    let tested = call("POST", "/api/v1/services/mock/test", None)
        .expect(200)
        .json();
    assert_eq!(tested["test"]["ok"], true, "{tested}");
    // The key really was sent to the service it was typed for.
    let requests = mock.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {key}").as_str())),
        "{requests:?}"
    );
    // A service moved to another URL without a new key loses its key.
    let other_key = format!("sk-test-{}", unique("o").replace('-', ""));
    call(
        "POST",
        "/api/v1/services",
        Some(&json!({"name": "other", "kind": "custom", "base_url": mock.url(), "api_key": other_key})),
    )
    .expect(201);
    let moved = call(
        "PUT",
        "/api/v1/services/other",
        Some(&json!({"base_url": "http://127.0.0.1:9/v1"})),
    )
    .expect(200)
    .json();
    assert_eq!(moved["key_stored"], false, "{moved}");
    // A new key replaces it.
    call(
        "PUT",
        "/api/v1/services/mock",
        Some(&json!({"api_key": new_key})),
    )
    .expect(200);
    let listed = call("GET", "/api/v1/services", None).expect(200).json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mock")
        .cloned()
        .unwrap();
    assert_eq!(row["key_stored"], true);
    assert_eq!(row["active"], true);
    let audit = call("GET", "/api/v1/audit?limit=1000", None)
        .expect(200)
        .json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in ["service.add", "service.update", "service.test"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    let cli = audit_cli(&project);
    assert!(cli.iter().any(|r| r["action"] == "service.add"
        && r["target"] == "service:mock"
        && r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("[redacted]"))));
    let cli_text = serde_json::to_string(&cli).unwrap();

    // Stop the server so its log and database are complete on disk.
    let mut server = server;
    assert!(server.stop().success());
    let log = server.log();
    assert!(
        log.contains("DEBUG"),
        "the log is at debug level: {}",
        &log[..log.len().min(500)]
    );
    assert!(log.contains("service"), "the log saw the service calls");
    let config = read_lossy(&project.home.path().join("config.toml"));
    assert!(config.contains("name = \"mock\""), "{config}");
    let data = project.home.path().join("data");
    let key_file = aicockpit_ai::key_file(&data, "mock");
    assert!(
        !aicockpit_ai::key_file(&data, "other").exists(),
        "the moved service's key is gone"
    );
    let stored = read_lossy(&key_file);
    assert!(
        stored.contains(&new_key),
        "the key file holds the current key"
    );
    assert!(!stored.contains(&key), "the replaced key is gone");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", key_file.display());
    // Anywhere else: responses, headers, the log, the audit log, the config, the database.
    let mut elsewhere = vec![
        ("responses".to_string(), seen),
        ("the server log".to_string(), log),
        ("audit --json".to_string(), cli_text),
        ("config.toml".to_string(), config),
    ];
    for entry in walk(&data) {
        if entry.starts_with(key_file.parent().unwrap()) {
            continue;
        }
        elsewhere.push((entry.display().to_string(), read_lossy(&entry)));
    }
    for (place, text) in &elsewhere {
        for secret in [&key, &new_key, &other_key] {
            assert!(
                !text.contains(secret.as_str()),
                "the key appears in {place}"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Items 7 and 9: terminals over WebSockets, and the audit log of what happened.
#[test]
fn terminals_reattach_viewers_watch_and_everything_is_audited() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    let admin = token_for(&project, None);
    create_user(&project, "vic", "member", "vic-password-1");
    let vic = token_for(&project, Some("vic"));
    // A failed and a good password login, for the audit log.
    let login = |password: &str| {
        server.call(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            json!({"name": "vic", "password": password})
                .to_string()
                .as_bytes(),
        )
    };
    login("not-vics-password").expect(401);
    let vic_cookie = session_cookie(&login("vic-password-1").expect(200));

    let name = unique("srv-term");
    create_workspace(&server, &cleanup, &admin, &name);
    let terminal = format!("/api/v1/workspaces/{name}/terminal");
    let mut term = Terminal::open(&server, &admin, &format!("{terminal}?cols=80&rows=24")).unwrap();
    let hello = term.hello();
    assert_eq!(hello["read_only"], false, "{hello}");
    let session = hello["id"].as_str().unwrap().to_string();
    term.type_keys("echo hello-$((6*7))\n");
    term.wait_output("hello-42");
    term.control(json!({"type": "resize", "cols": 100, "rows": 30}));
    term.type_keys("stty size\n");
    term.wait_output("30 100");
    let listed = server
        .api(
            &admin,
            "GET",
            &format!("/api/v1/workspaces/{name}/terminals"),
            None,
        )
        .expect(200)
        .json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["session"] == session.as_str()),
        "{listed}"
    );
    drop(term);

    // Reattach: the earlier output comes first.
    let mut term =
        Terminal::open(&server, &admin, &format!("{terminal}?session={session}")).unwrap();
    let hello = term.hello();
    assert_eq!(hello["id"], session.as_str());
    assert_eq!(hello["replaced"], false, "{hello}");
    match term.next(Instant::now() + DEADLINE) {
        Some(Message::Binary(replay)) => {
            let replay = String::from_utf8_lossy(&replay);
            assert!(
                replay.contains("hello-42") && replay.contains("30 100"),
                "{replay}"
            );
        }
        other => panic!("expected the replay, got {other:?}"),
    }

    // A viewer watches the same session; their keystrokes are dropped.
    server
        .api(
            &admin,
            "PUT",
            &format!("/api/v1/workspaces/{name}/members"),
            Some(&json!([{"user": "vic", "role": "viewer"}])),
        )
        .expect(200);
    match Terminal::open(&server, &vic, &terminal) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a viewer may not open a new shell"),
    }
    let mut watcher =
        Terminal::open(&server, &vic, &format!("{terminal}?session={session}")).unwrap();
    let hello = watcher.hello();
    assert_eq!(hello["read_only"], true, "{hello}");
    watcher.type_keys("touch /workspace/viewer-was-here\n");
    watcher.wait("the read-only notice", |_, controls| {
        controls
            .iter()
            .any(|c| c["type"] == "error" && c["message"].as_str().unwrap().contains("read-only"))
    });
    // In a browser: the session cookie from the server's own page.
    let mut browser = Terminal::open_with(
        &server,
        &[("cookie", &vic_cookie), ("origin", &server.origin())],
        &format!("{terminal}?session={session}"),
    )
    .unwrap();
    assert_eq!(browser.hello()["read_only"], true);
    watcher.control(json!({"type": "resize", "cols": 50, "rows": 10}));
    term.type_keys("echo marker-$((2+3)); stty size\n");
    term.wait_output("marker-5");
    watcher.wait_output("marker-5");
    browser.wait_output("marker-5");
    term.wait("the size after the viewer's resize", |output, _| {
        output
            .rsplit("marker-5")
            .next()
            .is_some_and(|rest| rest.contains("30 100"))
    });
    let found = exec(&server, &admin, &name, "test -e /workspace/viewer-was-here")
        .expect(200)
        .json();
    assert_eq!(found["exit_code"], 1, "the viewer's command never ran");
    assert!(!term.output.contains("viewer-was-here"), "{}", term.output);

    // The shell's exit code reaches every client.
    term.type_keys("exit 3\n");
    for client in [&mut term, &mut watcher] {
        client.wait("the exit message", |_, controls| {
            controls.iter().any(|c| c["type"] == "exit")
        });
        let exit = client
            .controls
            .iter()
            .find(|c| c["type"] == "exit")
            .unwrap();
        assert_eq!(exit, &json!({"type": "exit", "code": 3}));
    }

    // A file write for the audit log.
    let auth = format!("Bearer {admin}");
    let written = server
        .call(
            "PUT",
            &format!("/api/v1/workspaces/{name}/files?path=audited.txt"),
            &[("Authorization", &auth), ("If-None-Match", "*")],
            b"x",
        )
        .expect(200);
    let request_id = written.header("x-request-id").unwrap().to_string();

    // Item 9: the audit log says who did what, from where, with what result.
    let records = audit_cli(&project);
    // What `aicockpit admin` did on the host is there too, by command: no
    // user, address or request id, since no request made it.
    let on_host = |action: &str, target: &str, via: &str| {
        records
            .iter()
            .find(|r| {
                r["action"] == action
                    && r["target"] == target
                    && r["detail"]
                        .as_str()
                        .is_some_and(|d| serde_json::from_str::<Value>(d).unwrap()["via"] == via)
            })
            .unwrap_or_else(|| panic!("no {action} {target} by `{via}` in {records:#?}"))
            .clone()
    };
    let made = on_host("user.create", "user:vic", "aicockpit admin create-user");
    assert!(
        made["user"].is_null() && made["address"].is_null(),
        "{made}"
    );
    let vic_token_id = vic.split('_').nth(1).unwrap();
    let minted = on_host(
        "token.create",
        &format!("token:{vic_token_id}"),
        "aicockpit admin token",
    );
    assert!(
        minted["detail"]
            .as_str()
            .unwrap()
            .contains("\"user\":\"vic\""),
        "{minted}"
    );
    assert!(
        !minted.to_string().contains(&vic),
        "the token's secret is not in its record: {minted}"
    );
    for record in &records {
        assert!(
            record["time_ms"].as_i64().unwrap() > 1_600_000_000_000,
            "{record}"
        );
        if record["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"via\":\"aicockpit admin"))
        {
            continue;
        }
        assert!(
            record["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{record}"
        );
        assert_eq!(record["address"], "127.0.0.1", "{record}");
        assert!(record["result"].is_string(), "{record}");
    }
    let find = |action: &str, user: &str, result: &str, target: Option<&str>| {
        records
            .iter()
            .find(|r| {
                r["action"] == action
                    && r["user"] == user
                    && r["result"] == result
                    && target
                        .is_none_or(|t| r["target"].as_str().is_some_and(|rt| rt.starts_with(t)))
            })
            .unwrap_or_else(|| {
                panic!("no {action} by {user} with {result} ({target:?}) in {records:#?}")
            })
            .clone()
    };
    find("auth.login", "vic", "401", None);
    find("auth.login", "vic", "ok", None);
    find(
        "workspace.create",
        "admin",
        "ok",
        Some(&format!("workspace:{name}")),
    );
    let write_record = find(
        "file.write",
        "admin",
        "ok",
        Some(&format!("workspace:{name}:audited.txt")),
    );
    assert_eq!(
        write_record["request_id"],
        request_id.as_str(),
        "the record names the response's x-request-id"
    );
    find(
        "terminal.open",
        "admin",
        "ok",
        Some(&format!("workspace:{name}:terminal:{session}")),
    );
    let watched = find(
        "terminal.open",
        "vic",
        "ok",
        Some(&format!("workspace:{name}:terminal:{session}")),
    );
    assert!(
        watched["detail"]
            .as_str()
            .unwrap()
            .contains("\"read_only\":true"),
        "{watched}"
    );
    find("terminal.open", "vic", "403", None);
    find(
        "workspace.exec",
        "admin",
        "ok",
        Some(&format!("workspace:{name}")),
    );
    find(
        "workspace.share",
        "admin",
        "ok",
        Some(&format!("workspace:{name}")),
    );
    // The API gives the same records to admins, and refuses members.
    let api = server
        .api(&admin, "GET", "/api/v1/audit?limit=10000", None)
        .expect(200)
        .json();
    assert_eq!(api.as_array().unwrap().len(), records.len());
    server.api(&vic, "GET", "/api/v1/audit", None).expect(403);
    let text = stdout(&project.cli(&["audit"]));
    assert!(
        text.contains("terminal.open") && text.contains("vic"),
        "{text}"
    );
}

/// Item 8: users, tokens, sessions, workspaces and the audit log survive a restart.
#[test]
fn state_survives_a_restart() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let mut server = Server::start(&project, "warn");
    let link = server.login_url.clone().unwrap();
    let cookie = session_cookie(&server.call("GET", &path_of(&link), &[], b"").expect(303));
    create_user(&project, "mo", "member", "mo-password-01");
    create_user(&project, "ned", "auditor", "ned-password-1");
    let admin = token_for(&project, None);
    let mo = token_for(&project, Some("mo"));
    let name = unique("srv-keep");
    create_workspace(&server, &cleanup, &mo, &name);
    server
        .api(
            &mo,
            "PUT",
            &format!("/api/v1/workspaces/{name}/members"),
            Some(&json!([{"user": "ned", "role": "viewer"}])),
        )
        .expect(200);
    exec_ok(&server, &mo, &name, "echo kept > /workspace/kept.txt");
    let users_before = server
        .api(&admin, "GET", "/api/v1/users", None)
        .expect(200)
        .json();
    let audit_before = audit_cli(&project);
    assert!(audit_before.len() >= 4, "{audit_before:?}");

    // An open terminal is told, and does not keep the server from stopping.
    let mut term =
        Terminal::open(&server, &mo, &format!("/api/v1/workspaces/{name}/terminal")).unwrap();
    term.hello();
    term.type_keys("echo up-$((1+1))\n");
    term.wait_output("up-2");
    // Nor does a long command in flight (an exec may be given up to an hour).
    let address = server.address;
    let auth = format!("Bearer {mo}");
    let target = format!("/api/v1/workspaces/{name}/exec");
    let in_flight = std::thread::spawn(move || {
        let body = json!({"command": ["sleep", "300"], "timeout_secs": 600}).to_string();
        std::panic::catch_unwind(|| {
            http(
                address,
                None,
                "POST",
                &target,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
            .status
        })
        .ok()
    });
    // The command is running once the container shows it.
    let deadline = Instant::now() + DEADLINE;
    while !exec(
        &server,
        &mo,
        &name,
        "ps | grep -v grep | grep -q 'sleep 300'",
    )
    .json()["exit_code"]
        .eq(&json!(0))
    {
        assert!(Instant::now() < deadline, "the long command did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopping = Instant::now();
    let status = server.stop();
    // It is stopped and answered, not cut.
    assert_eq!(in_flight.join().unwrap(), Some(503), "{}", server.log());
    assert!(
        status.success(),
        "SIGTERM ends the server with 0: {status:?}\n{}",
        server.log()
    );
    assert!(
        stopping.elapsed() < aicockpit_server::SHUTDOWN_GRACE + Duration::from_secs(8),
        "stopping took {:?}",
        stopping.elapsed()
    );
    term.wait("the shutdown notice", |_, controls| {
        controls.iter().any(|c| c["type"] == "shutdown")
    });
    drop(server);

    let server = Server::start(&project, "warn");
    assert!(
        server.login_url.is_none(),
        "no new login URL: {}",
        server.banner
    );
    assert!(!server.banner.contains("token="), "{}", server.banner);
    assert_eq!(
        server
            .api(&mo, "GET", "/api/v1/me", None)
            .expect(200)
            .json()["name"],
        "mo"
    );
    let me = server
        .call("GET", "/api/v1/me", &[("Cookie", &cookie)], b"")
        .expect(200)
        .json();
    assert_eq!(me["name"], "admin");
    assert_eq!(
        server
            .api(&admin, "GET", "/api/v1/users", None)
            .expect(200)
            .json(),
        users_before
    );
    let view = server
        .api(&mo, "GET", &format!("/api/v1/workspaces/{name}"), None)
        .expect(200)
        .json();
    assert_eq!(view["owner"], "mo");
    assert_eq!(view["role"], "owner");
    let ned = token_for(&project, Some("ned"));
    assert_eq!(
        server
            .api(
                &ned,
                "GET",
                &format!("/api/v1/workspaces/{name}/members"),
                None
            )
            .expect(200)
            .json(),
        json!([{"user": "ned", "role": "viewer"}])
    );
    assert_eq!(
        server
            .api(
                &ned,
                "GET",
                &format!("/api/v1/workspaces/{name}/files?path=kept.txt"),
                None
            )
            .expect(200)
            .json()["content"],
        "kept\n"
    );
    let audit_after = audit_cli(&project);
    assert!(audit_after.len() >= audit_before.len());
    assert_eq!(
        &audit_after[..audit_before.len()],
        &audit_before[..],
        "the old records are unchanged"
    );
    // The command the stop ended is recorded as such, and is gone.
    assert!(
        audit_after.iter().any(|r| {
            r["action"] == "workspace.exec"
                && r["result"] == "503"
                && r["detail"].as_str().is_some_and(|d| {
                    d.contains(r#"["sleep","300"]"#) && d.contains("server stopping")
                })
        }),
        "{audit_after:?}"
    );
    let left = exec(
        &server,
        &mo,
        &name,
        "ps | grep -v grep | grep -c 'sleep 300'",
    )
    .expect(200)
    .json();
    assert_eq!(left["stdout"], "0\n", "{left}");
}

#[test]
fn admins_create_workspaces_from_host_folders_with_their_devcontainer() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "warn");
    let admin = token_for(&project, None);
    create_user(&project, "mona", "member", "mona-password-1");
    let member = token_for(&project, Some("mona"));
    let folder = project.dir.path().join("app");
    std::fs::create_dir_all(folder.join(".devcontainer")).unwrap();
    std::fs::write(
        folder.join(".devcontainer/devcontainer.json"),
        format!(
            "{{ // a comment, as devcontainer.json allows\n \"image\": \"{}\",\n \"containerEnv\": {{ \"GREETING\": \"from-devcontainer\" }} }}",
            crate::workspace::TEST_IMAGE
        ),
    )
    .unwrap();
    // The folder belongs to the person whose files these are, never root.
    for path in [
        folder.clone(),
        folder.join(".devcontainer"),
        folder.join(".devcontainer/devcontainer.json"),
    ] {
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    }
    let dir = folder.to_str().unwrap().to_string();

    // A member may never name a folder of the server's host.
    let name = unique("srv-dc");
    let refused = server.api(
        &member,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": name, "dir": dir})),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    // Nor a relative one, even an admin.
    let relative = server.api(
        &admin,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": name, "dir": "app"})),
    );
    assert_eq!(relative.status, 400, "{}", relative.text());

    // An admin may, and the folder's devcontainer.json sets the environment.
    cleanup.add(&name);
    let view = server
        .api(
            &admin,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({"name": name, "dir": dir})),
        )
        .expect(201)
        .json();
    assert_eq!(view["state"], "running", "{view}");
    assert!(
        view["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "GREETING"),
        "{view}"
    );
    let result = exec_ok(&server, &admin, &name, "echo \"$GREETING\"");
    assert_eq!(
        result["stdout"].as_str().unwrap().trim(),
        "from-devcontainer"
    );
    // The member never got to see it.
    let listed = server
        .api(&member, "GET", "/api/v1/workspaces", None)
        .expect(200)
        .json();
    assert!(listed.as_array().unwrap().is_empty(), "{listed}");
}
