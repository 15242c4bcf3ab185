//! A real `aicockpit serve` for the crate's tests: `aicockpit_server::serve`
//! on a free 127.0.0.1 port, over a real SQLite file in a temp folder, with
//! the local workspace backend, on a runtime of its own; spoken to over
//! real TCP by a small HTTP/1.1 client on `std::net`, so the bytes on the
//! wire are exactly the test's (a chosen or missing `Host`, a cookie of
//! another name, a WebSocket upgrade's head).

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use aicockpit_config::{Config, Paths};
use aicockpit_server::db::{self, Db, SiteRole, User};
use aicockpit_server::{auth, CancellationToken, ServeOptions};
use serde_json::Value;

/// How long any one step may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

#[path = "../../../../tests/support/http1.rs"]
mod http1;
pub use http1::Reply;

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
        let head = http1::request_head(address, method, target, headers, body.len());
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
    http1::read_reply(stream, false)
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
    let head = http1::request_head(address, method, target, headers, body.len());
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
        })
        .unwrap();
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
            socket_idle_timeout: aicockpit_server::routes::SOCKET_IDLE_TIMEOUT,
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

    /// `POST /api/v1/workspaces` as `token`'s user, started or not.
    pub fn create_workspace(&self, token: &str, name: &str, start: bool) -> Reply {
        self.api(
            token,
            "POST",
            "/api/v1/workspaces",
            Some(&serde_json::json!({ "name": name, "start": start })),
        )
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
            .call_blocking(|c| auth::create_token(c, user.id, "test", auth::TOKEN_DAYS_DEFAULT))
            .unwrap()
            .token
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

/// Start a WebSocket upgrade; the status and, on 101, the open connection.
pub fn upgrade(server: &TestServer, token: &str, target: &str) -> (u16, String, Option<TcpStream>) {
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let host = server.address;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut status_line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut status_line).unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    if status == 101 {
        return (status, String::new(), Some(stream));
    }
    let mut body = vec![0; content_length];
    std::io::Read::read_exact(&mut reader, &mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), None)
}
