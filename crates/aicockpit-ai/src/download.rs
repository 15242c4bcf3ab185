//! Downloading one file over HTTPS, for `aicockpit model install` (the only
//! download AiCockpit does, and only when a user asks for it).
//!
//! Bounded on every side, whatever the server (or a mirror named by
//! `AICOCKPIT_MODEL_HUB_URL`) does:
//!
//! - HTTPS only; plain HTTP only to a loopback host (`127.0.0.0/8`, `::1`,
//!   `localhost`), for a local mirror;
//! - redirects (at most [`MAX_REDIRECTS`]) followed only to HTTPS, or from a
//!   loopback host to a loopback host: never from HTTPS down to HTTP;
//! - at most [`Limits::max_bytes`] read: a larger `Content-Length` is
//!   refused before the body, a longer body where it passes the cap;
//! - all within [`Limits::deadline`], so a server that sends a byte now and
//!   then (each within the 60 s read timeout) cannot hold it forever;
//! - written to a file with an unpredictable name beside `dest` (created
//!   anew, never through a symlink) that replaces `dest` only once complete;
//!   on any error it is removed.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use tokio::io::AsyncWriteExt;

use crate::AiError;

/// The most redirects one download follows.
pub const MAX_REDIRECTS: usize = 10;

/// How much one file may be, and how long it may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes written; a file past it is refused and not kept.
    pub max_bytes: u64,
    /// The longest the whole download (connection, redirects, body) may take.
    pub deadline: Duration,
}

impl Limits {
    /// The limits of one of the default model's files, by its name:
    /// `config.json` (about 600 bytes) at most 1 MiB in 2 minutes,
    /// `tokenizer.json` (about 450 KiB) 32 MiB in 10 minutes, and the
    /// weights, `model.safetensors` (about 90 MB), or any other file,
    /// 512 MiB in an hour (about 150 KiB/s).
    pub fn for_file(name: &str) -> Limits {
        let (max_bytes, minutes) = match name {
            "config.json" => (1 << 20, 2),
            "tokenizer.json" => (32 << 20, 10),
            _ => (512 << 20, 60),
        };
        Limits {
            max_bytes,
            deadline: Duration::from_secs(minutes * 60),
        }
    }
}

/// Fetch `url` into `dest` within the [`Limits::for_file`] of `dest`'s file
/// name, returning the bytes written. Errors are [`AiError`]s naming
/// `source` (e.g. "the Hugging Face hub").
pub async fn download(source: &str, url: &str, dest: &Path) -> Result<u64, AiError> {
    let name = dest
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    download_with(source, url, dest, Limits::for_file(name)).await
}

/// Fetch `url` into `dest` within `limits`, returning the bytes written.
pub async fn download_with(
    source: &str,
    url: &str,
    dest: &Path,
    limits: Limits,
) -> Result<u64, AiError> {
    let fail = |message: String| AiError::Download {
        service: source.to_string(),
        url: url.to_string(),
        message,
    };
    let parsed = Url::parse(url).map_err(|error| fail(format!("not a URL: {error}")))?;
    allowed(&parsed).map_err(fail)?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = dest
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Created with O_EXCL and a random name: nothing planted beside `dest`
    // is written through, and a partial file is never seen as `dest`.
    let staged = tempfile::Builder::new()
        .prefix(&format!(".{name}.part-"))
        .tempfile_in(parent)
        .map_err(|error| fail(format!("{}: {error}", parent.display())))?;
    let file = staged
        .as_file()
        .try_clone()
        .map_err(|error| fail(format!("{}: {error}", staged.path().display())))?;
    let mut file = tokio::fs::File::from_std(file);
    let fetched = tokio::time::timeout(
        limits.deadline,
        fetch(parsed, &mut file, limits.max_bytes, staged.path()),
    )
    .await;
    let written = match fetched {
        Ok(Ok(written)) => written,
        Ok(Err(message)) => return Err(fail(message)),
        Err(_) => {
            return Err(fail(format!(
                "not finished within {} (the deadline for one file), so it was abandoned",
                duration(limits.deadline)
            )))
        }
    };
    drop(file);
    staged
        .persist(dest)
        .map_err(|error| fail(format!("{}: {}", dest.display(), error.error)))?;
    Ok(written)
}

/// The request and the body, into `file`: at most `max_bytes`.
async fn fetch(
    url: Url,
    file: &mut tokio::fs::File,
    max_bytes: u64,
    path: &Path,
) -> Result<u64, String> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                let error = format!("more than {MAX_REDIRECTS} redirects");
                return attempt.error(error);
            }
            match redirect_allowed(attempt.previous(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(why),
            }
        }))
        .build()
        .map_err(|error| error.to_string())?;
    let response = http.get(url.clone()).send().await.map_err(|error| {
        let cause = crate::client::root_cause(&error);
        if error.is_redirect() {
            format!("refused to follow a redirect: {cause}")
        } else {
            cause
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let too_large = || {
        format!(
            "the file is larger than {}, the most accepted for it; nothing was kept",
            size(max_bytes)
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes)
    {
        return Err(too_large());
    }
    let mut written = 0u64;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|error| crate::client::root_cause(&error))?;
        if written + piece.len() as u64 > max_bytes {
            return Err(too_large());
        }
        file.write_all(&piece)
            .await
            .map_err(|error| format!("{}: {error}", path.display()))?;
        written += piece.len() as u64;
    }
    file.flush()
        .await
        .map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(written)
}

/// Whether a download may start at `url`: HTTPS, or HTTP to a loopback host.
fn allowed(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(
            "plain HTTP is refused (anyone on the way could change the model); use an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)"
                .into(),
        ),
        other => Err(format!("`{other}:` URLs are refused; use an https:// URL")),
    }
}

/// Whether a redirect to `next` may be followed after `previous` (the first
/// URL and the redirects so far): to HTTPS, or to plain HTTP on a loopback
/// host when every URL before was on one too.
fn redirect_allowed(previous: &[Url], next: &Url) -> Result<(), String> {
    match next.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(next) && previous.iter().all(is_loopback) => Ok(()),
        _ => Err(format!(
            "a redirect to {next} is refused: downloads follow redirects only to https:// URLs"
        )),
    }
}

/// `127.0.0.0/8`, `::1` or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `1 MiB`, `512 MiB`, or bytes below a MiB.
fn size(bytes: u64) -> String {
    // Whole MiB: no bit below 2^20 set.
    if bytes != 0 && bytes.trailing_zeros() >= 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// `2 minutes`, `an hour`, `500 ms`.
fn duration(time: Duration) -> String {
    let secs = time.as_secs();
    match (secs, secs / 60, secs % 60) {
        (0, _, _) => format!("{} ms", time.as_millis()),
        (60, _, _) => "a minute".into(),
        (3600, _, _) => "an hour".into(),
        (_, minutes, 0) => format!("{minutes} minutes"),
        _ => format!("{secs} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// How the test server answers one path.
    #[derive(Clone)]
    enum Reply {
        /// 200 with this body, with `Content-Length` when `declared`
        /// (else until the connection closes).
        Body { bytes: Vec<u8>, declared: bool },
        /// 302 to this URL (`{root}` is the server's own `http://127.0.0.1:PORT`).
        Redirect(String),
        /// 200, then one byte every 20 ms until the client goes away.
        Drip,
    }

    /// An HTTP/1.1 server on 127.0.0.1 answering each path as told; stops
    /// when dropped.
    struct Server {
        root: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        async fn start(routes: &[(&str, Reply)]) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let root = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            let routes: Arc<HashMap<String, Reply>> = Arc::new(
                routes
                    .iter()
                    .map(|(path, reply)| {
                        let reply = match reply {
                            Reply::Redirect(to) => Reply::Redirect(to.replace("{root}", &root)),
                            other => other.clone(),
                        };
                        (path.to_string(), reply)
                    })
                    .collect(),
            );
            let task = tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(answer(socket, routes.clone()));
                }
            });
            Server { root, task }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.root)
        }
    }

    async fn answer(mut socket: TcpStream, routes: Arc<HashMap<String, Reply>>) {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let path = head.split(' ').nth(1).unwrap_or_default();
        let _ = match routes.get(path) {
            None => {
                socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await
            }
            Some(Reply::Redirect(to)) => {
                let head = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                socket.write_all(head.as_bytes()).await
            }
            Some(Reply::Body { bytes, declared }) => {
                let length = if *declared {
                    format!("Content-Length: {}\r\n", bytes.len())
                } else {
                    String::new()
                };
                let head = format!("HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for piece in bytes.chunks(64 * 1024) {
                    if socket.write_all(piece).await.is_err() {
                        return;
                    }
                }
                socket.shutdown().await
            }
            Some(Reply::Drip) => {
                if socket
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            }
        };
    }

    fn body(bytes: impl Into<Vec<u8>>, declared: bool) -> Reply {
        Reply::Body {
            bytes: bytes.into(),
            declared,
        }
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[tokio::test]
    async fn a_file_arrives_whole_under_its_name_and_nothing_else_is_left() {
        let server = Server::start(&[
            ("/config.json", body("{\"hidden_size\": 384}", true)),
            ("/tokenizer.json", body(vec![b'a'; 300_000], false)),
            (
                "/hop/config.json",
                Reply::Redirect("{root}/config.json".into()),
            ),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("config.json");
        let written = download("the test hub", &server.url("/config.json"), &dest)
            .await
            .unwrap();
        assert_eq!(written, 20);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "{\"hidden_size\": 384}"
        );
        // Without a Content-Length too; and a loopback redirect to loopback is followed.
        let tokenizer = dir.path().join("tokenizer.json");
        assert_eq!(
            download("the test hub", &server.url("/tokenizer.json"), &tokenizer)
                .await
                .unwrap(),
            300_000
        );
        std::fs::remove_file(&dest).unwrap();
        download("the test hub", &server.url("/hop/config.json"), &dest)
            .await
            .unwrap();
        assert_eq!(names(dir.path()), ["config.json", "tokenizer.json"]);
        // A missing file is its HTTP status.
        let error = download("the test hub", &server.url("/nope"), &dir.path().join("x"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("HTTP 404"), "{error}");
        assert_eq!(names(dir.path()), ["config.json", "tokenizer.json"]);
    }

    #[tokio::test]
    async fn plain_http_is_refused_except_to_a_loopback_host() {
        let dir = tempfile::tempdir().unwrap();
        for refused in [
            "http://huggingface.co/model/config.json",
            "http://10.0.0.1:8080/config.json",
            "ftp://127.0.0.1/config.json",
            "file:///etc/passwd",
        ] {
            let error = download("the test hub", refused, &dir.path().join("config.json"))
                .await
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("the test hub") && error.contains("https://"),
                "{refused}: {error}"
            );
        }
        assert!(names(dir.path()).is_empty());
        for (text, allowed_) in [
            ("https://huggingface.co/x", true),
            ("http://127.0.0.1:1/x", true),
            ("http://127.8.9.10/x", true),
            ("http://[::1]:8080/x", true),
            ("http://LOCALHOST/x", true),
            ("http://localhost.attacker.example/x", false),
            ("http://128.0.0.1/x", false),
            ("http://[::2]/x", false),
        ] {
            assert_eq!(allowed(&url(text)).is_ok(), allowed_, "{text}");
        }
    }

    #[test]
    fn redirects_go_only_to_https_or_from_loopback_to_loopback() {
        let hub = url("https://huggingface.co/m/resolve/main/model.safetensors");
        let local = url("http://127.0.0.1:8000/model.safetensors");
        // To HTTPS from anywhere (the hub's CDN).
        assert!(
            redirect_allowed(std::slice::from_ref(&hub), &url("https://cdn-lfs.hf.co/x")).is_ok()
        );
        assert!(redirect_allowed(std::slice::from_ref(&local), &url("https://mirror/x")).is_ok());
        // Loopback to loopback.
        assert!(
            redirect_allowed(std::slice::from_ref(&local), &url("http://localhost:9/x")).is_ok()
        );
        // Never down to plain HTTP from HTTPS, even to loopback.
        for next in ["http://cdn-lfs.hf.co/x", "http://127.0.0.1/x", "ftp://a/x"] {
            let error = redirect_allowed(std::slice::from_ref(&hub), &url(next)).unwrap_err();
            assert!(error.contains("only to https://"), "{next}: {error}");
        }
        // Nor to a remote plain-HTTP host from loopback, nor back to
        // loopback HTTP once an HTTPS host came between.
        assert!(redirect_allowed(
            std::slice::from_ref(&local),
            &url("http://mirror.example/x")
        )
        .is_err());
        assert!(redirect_allowed(&[local.clone(), hub.clone()], &local).is_err());
    }

    #[tokio::test]
    async fn refused_and_endless_redirects_are_errors_that_say_so() {
        let server = Server::start(&[
            (
                "/away",
                Reply::Redirect("http://mirror.example/config.json".into()),
            ),
            ("/loop", Reply::Redirect("{root}/loop".into())),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("config.json");
        let error = download("the test hub", &server.url("/away"), &dest)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refused to follow a redirect")
                && error.contains("http://mirror.example/config.json"),
            "{error}"
        );
        let error = download("the test hub", &server.url("/loop"), &dest)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("more than 10 redirects"), "{error}");
        assert!(names(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_file_over_its_cap_is_refused_declared_or_not_and_not_kept() {
        let big = vec![b'{'; (1 << 20) + 1];
        let server = Server::start(&[
            ("/declared/config.json", body(big.clone(), true)),
            ("/undeclared/config.json", body(big, false)),
            ("/exact/config.json", body(vec![b' '; 1 << 20], false)),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        // config.json's cap is 1 MiB.
        let dest = dir.path().join("config.json");
        for path in ["/declared/config.json", "/undeclared/config.json"] {
            let error = download("the test hub", &server.url(path), &dest)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("larger than 1 MiB") && error.contains("nothing was kept"),
                "{path}: {error}"
            );
            assert!(names(dir.path()).is_empty(), "{path}");
        }
        assert_eq!(
            download("the test hub", &server.url("/exact/config.json"), &dest)
                .await
                .unwrap(),
            1 << 20
        );
        // A caller's own cap.
        let small = Limits {
            max_bytes: 1000,
            deadline: Duration::from_secs(60),
        };
        let error = download_with(
            "the test hub",
            &server.url("/exact/config.json"),
            &dir.path().join("other"),
            small,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("larger than 1000 bytes"), "{error}");
        assert_eq!(names(dir.path()), ["config.json"]);
    }

    #[tokio::test]
    async fn a_server_that_drips_bytes_is_abandoned_at_the_deadline() {
        let server = Server::start(&[("/model.safetensors", Reply::Drip)]).await;
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_bytes: 1 << 20,
            deadline: Duration::from_millis(500),
        };
        let started = Instant::now();
        let error = download_with(
            "the test hub",
            &server.url("/model.safetensors"),
            &dir.path().join("model.safetensors"),
            limits,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(error.contains("not finished within 500 ms"), "{error}");
        assert!(names(dir.path()).is_empty());
        // The default deadlines.
        assert_eq!(
            Limits::for_file("model.safetensors").deadline,
            Duration::from_secs(3600)
        );
        assert_eq!(Limits::for_file("config.json").max_bytes, 1 << 20);
        assert_eq!(Limits::for_file("tokenizer.json").max_bytes, 32 << 20);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_planted_at_the_destination_is_replaced_not_written_through() {
        let server = Server::start(&[("/config.json", body("{}", true))]).await;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dest = dir.path().join("config.json");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        download("the test hub", &server.url("/config.json"), &dest)
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(&dest).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "{}");
    }
}
