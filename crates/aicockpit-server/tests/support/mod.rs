//! A real `aicockpit serve` for the crate's tests: `aicockpit_server::serve`
//! on a free 127.0.0.1 port, over a real SQLite file in a temp folder, with
//! the local workspace backend, on a runtime of its own; spoken to over
//! real TCP by a small HTTP/1.1 client on `std::net`, so the bytes on the
//! wire are exactly the test's (a chosen or missing `Host`, a cookie of
//! another name, a WebSocket upgrade's head).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use aicockpit_config::{Config, Paths};
use aicockpit_server::db::{self, Db, SiteRole, User};
use aicockpit_server::{auth, CancellationToken, ServeOptions};
use serde_json::Value;

/// How long any one step may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A response: status, headers (names lower-cased) and the whole body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        for (name, value) in &self.headers {
            write!(f, "\n{name}: {value}")?;
        }
        write!(f, "\n\n{}", self.text())
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "{self:?}");
        self
    }

    /// The `name=value` of the response's one `Set-Cookie`.
    #[track_caller]
    pub fn cookie(&self) -> String {
        let set = self
            .header("set-cookie")
            .unwrap_or_else(|| panic!("no Set-Cookie: {self:?}"));
        set.split(';').next().unwrap().trim().to_string()
    }
}

/// Send raw bytes (a whole request) and read the response.
pub fn raw(address: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).expect("connect to the server");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request).unwrap();
    read_reply(stream)
}

/// A request whose head is sent but whose body is held back: the server
/// has its headers (and has authenticated them) and waits for the body.
pub struct HeldRequest {
    stream: TcpStream,
    body: Vec<u8>,
}

impl HeldRequest {
    /// Send the head of a request with `Content-Length` for `body`, not the body.
    pub fn start(
        address: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HeldRequest {
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut stream = TcpStream::connect(address).expect("connect to the server");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        HeldRequest {
            stream,
            body: body.to_vec(),
        }
    }

    /// Send part of the body only, and read the response the server gives
    /// when it stops waiting for the rest.
    pub fn stall(mut self, part: usize) -> Reply {
        self.stream.write_all(&self.body[..part]).unwrap();
        self.stream.flush().unwrap();
        read_reply(self.stream)
    }

    /// Send the body now and read the response.
    pub fn finish(mut self) -> Reply {
        self.stream.write_all(&self.body).unwrap();
        read_reply(self.stream)
    }
}

/// Read one response from a connection.
pub fn read_reply(stream: TcpStream) -> Reply {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header");
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if status == 101 || status == 204 || status == 304 {
        // No body follows.
    } else if let Some(length) = find("content-length") {
        body.resize(length.parse().unwrap(), 0);
        reader.read_exact(&mut body).unwrap();
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One HTTP/1.1 request. `Host` is the server's address unless `headers`
/// has one; `Connection: close` and `Content-Length` are added.
pub fn http(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {address}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    raw(address, &request)
}

/// A running server; stopped (and waited for) when dropped.
pub struct TestServer {
    pub address: SocketAddr,
    pub url: String,
    pub login_url: Option<String>,
    pub paths: Paths,
    /// A second connection to the server's database, as `aicockpit admin` has.
    pub db: Db,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server on 127.0.0.1, with `--public-url` when given.
    pub fn start(public_url: Option<&str>) -> TestServer {
        let public_url = public_url.map(str::to_string);
        TestServer::start_with(move |options| options.public_url = public_url)
    }

    /// A server on 127.0.0.1 with options adjusted by the test.
    pub fn start_with(adjust: impl FnOnce(&mut ServeOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let paths = Paths::from_vars(|name| match name {
            "AICOCKPIT_CONFIG" => Some(root.join("config.toml")),
            "AICOCKPIT_CACHE_DIR" => Some(root.join("cache")),
            "AICOCKPIT_DATA_DIR" => Some(root.join("data")),
            _ => None,
        });
        let mut config = Config::default();
        config.workspaces.backend = "local".into();
        let mut options = ServeOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            paths: paths.clone(),
            config,
            tls: None,
            insecure_bind_public: false,
            public_url: None,
            metrics_bind: None,
            body_idle_timeout: aicockpit_server::routes::BODY_IDLE_TIMEOUT,
            reauth_after: aicockpit_server::auth::RECENT_PASSWORD,
        };
        adjust(&mut options);
        let stop = CancellationToken::new();
        let (started, on_start) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                let result = runtime.block_on(aicockpit_server::serve(options, stop, |s| {
                    let _ = started.send(s);
                }));
                if let Err(error) = result {
                    panic!("the server failed: {error}");
                }
            })
        };
        let started = on_start
            .recv_timeout(DEADLINE)
            .expect("the server started within the deadline");
        let db = aicockpit_server::open_db(&paths).unwrap();
        TestServer {
            address: started.address,
            url: started.url,
            login_url: started.login_url,
            paths,
            db,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn call(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http(self.address, method, target, headers, body)
    }

    /// A call with an API token.
    pub fn api(&self, token: &str, method: &str, target: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {token}");
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.call(method, target, &headers, text.as_bytes())
    }

    /// A call with a session cookie (`name=value`) from one of the server's
    /// own pages (`Origin` set, as a browser does).
    pub fn browser(&self, cookie: &str, method: &str, target: &str, body: Option<&Value>) -> Reply {
        let origin = format!("http://{}", self.address);
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![("Cookie", cookie), ("Origin", origin.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.call(method, target, &headers, text.as_bytes())
    }

    /// Log in by password: the session cookie's `name=value`.
    #[track_caller]
    pub fn login(&self, name: &str, password: &str) -> String {
        self.try_login(name, password).expect(200).cookie()
    }

    pub fn try_login(&self, name: &str, password: &str) -> Reply {
        let body = serde_json::json!({"name": name, "password": password}).to_string();
        self.call(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// Exchange a login link's token for a session (`POST /api/v1/auth/login`).
    pub fn use_link(&self, token: &str) -> Reply {
        let body = serde_json::json!({ "token": token }).to_string();
        self.call(
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// A user with a password, as `aicockpit admin create-user` makes one.
    pub fn user(&self, name: &str, password: &str, role: SiteRole) -> User {
        let hash = auth::hash_password(password).unwrap();
        let name = name.to_string();
        self.db
            .call_blocking(|c| db::create_user(c, &name, Some(&hash), role))
            .unwrap()
    }

    /// A new API token of a user, as `aicockpit admin token` makes one.
    pub fn token(&self, user: &User) -> String {
        self.db
            .call_blocking(|c| auth::create_token(c, user.id, "test"))
            .unwrap()
            .0
    }

    /// A new one-time login link's token, as `aicockpit admin login-link` makes one.
    pub fn link(&self, user: &User) -> String {
        self.db
            .call_blocking(|c| auth::create_login_link(c, user.id))
            .unwrap()
    }

    /// The audit records of one action, oldest first.
    pub fn audit(&self, action: &str) -> Vec<db::AuditRecord> {
        let query = db::AuditQuery {
            action: Some(action.to_string()),
            limit: 1000,
            ..db::AuditQuery::default()
        };
        self.db
            .call_blocking(|c| db::read_audit(c, &query))
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
