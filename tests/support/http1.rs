//! A small HTTP/1.1 client on `std::net` for the server's tests, shared by
//! the crate's own harness (`crates/aicockpit-server/tests/support`) and the
//! end-to-end one (`tests/integration/server.rs`), both through `#[path]`:
//! the bytes on the wire are exactly the test's (a chosen or missing
//! `Host`, a cookie of another name, a WebSocket upgrade's head).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

/// A response: status, headers (names lower-cased) and the whole body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.status, self.everything())
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

    /// Everything the client saw (headers and body), for "does this secret
    /// appear anywhere".
    pub fn everything(&self) -> String {
        let mut all = String::new();
        for (name, value) in &self.headers {
            all.push_str(&format!("{name}: {value}\n"));
        }
        all.push('\n');
        all.push_str(&self.text());
        all
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

/// The head of a request: `Host` is `address` unless `headers` has one,
/// `Connection: close` unless `headers` says otherwise, and the body's
/// `Content-Length`.
pub fn request_head(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {address}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        head.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {body_len}\r\n\r\n"));
    head
}

/// Read one response from a connection (by `Content-Length`, chunks, or to
/// the end); the answer to a `HEAD` has no body whatever its headers say.
pub fn read_reply(stream: TcpStream, head: bool) -> Reply {
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
    if head || status == 101 || status == 204 || status == 304 {
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
