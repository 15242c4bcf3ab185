//! `aicockpit serve` over HTTPS: `--tls-cert/--tls-key` with a throw-away
//! certificate made by `openssl`, spoken to by `curl` (both Debian
//! packages, installed by `.ci/run`): the server listens on https, the login
//! link's cookie is `Secure` and named `__Host-aicockpit_session`, a
//! non-loopback bind is allowed with TLS, and plain HTTP to the TLS port
//! gets no answer.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Project, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_aicockpit");

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn serve_speaks_https_with_a_given_certificate() {
    for name in ["openssl", "curl"] {
        if !tool(name) && std::env::var_os("AICOCKPIT_SKIP_TLS_TESTS").is_none() {
            panic!("`{name}` is needed for this test: apt-get install {name} (or set AICOCKPIT_SKIP_TLS_TESTS=1)");
        }
    }
    if std::env::var_os("AICOCKPIT_SKIP_TLS_TESTS").is_some() {
        return;
    }
    let project = Project::new(&[]);
    let home = project.home.path();
    let (cert, key) = (home.join("cert.pem"), home.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(
        home.join("config.toml"),
        "[workspaces]\nbackend = \"local\"\n",
    )
    .unwrap();
    let mut child = project
        .command(BIN)
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--public-url",
            "https://127.0.0.1",
            "--tls-cert",
        ])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(home.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    // With --public-url the printed URL is the public one; the port comes from `ss`-free means: the log line.
    let started = Instant::now();
    let mut login = None;
    while login.is_none() {
        let line = lines
            .recv_timeout(DEADLINE.saturating_sub(started.elapsed()))
            .expect("the server printed its login URL");
        if line.contains("/login?token=") {
            login = Some(line.trim().to_string());
        }
    }
    let login = login.unwrap();
    let token = login.split("token=").nth(1).unwrap().to_string();
    // The listening port: the public URL has none, so ask the kernel which one the child holds.
    let port = listening_port(child.id()).expect("the server listens on a TCP port");
    let url = format!("https://127.0.0.1:{port}");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .unwrap()
    };
    let health = curl(&[&format!("{url}/healthz")]);
    assert_eq!(
        String::from_utf8_lossy(&health.stdout),
        "ok",
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let exchange = curl(&["-i", &format!("{url}/login?token={token}")]);
    let head = String::from_utf8_lossy(&exchange.stdout).to_lowercase();
    assert!(
        head.starts_with("http/1.1 303") || head.starts_with("http/2 303"),
        "{head}"
    );
    // Over https the cookie is Secure and `__Host-` named (the head is lower-cased here).
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: __host-aicockpit_session="))
        .unwrap_or_else(|| panic!("no __Host- session cookie: {head}"));
    assert!(
        cookie.contains("secure"),
        "over https the cookie is Secure: {cookie}"
    );
    assert!(
        cookie.contains("path=/") && !cookie.contains("domain"),
        "{cookie}"
    );
    // Plain HTTP to the TLS port is not served.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "ok");
    // SIGTERM stops it cleanly.
    // SAFETY: kill has no memory preconditions; the pid is our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The TCP port a process listens on, from /proc (no `ss` or `lsof` needed).
fn listening_port(pid: u32) -> Option<u16> {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let mut inodes = Vec::new();
        if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for entry in entries.flatten() {
                if let Ok(target) = std::fs::read_link(entry.path()) {
                    if let Some(inode) = target
                        .to_str()
                        .and_then(|t| t.strip_prefix("socket:["))
                        .and_then(|t| t.strip_suffix(']'))
                    {
                        inodes.push(inode.to_string());
                    }
                }
            }
        }
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // state 0A = LISTEN
                if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                    let port = fields[1].rsplit(':').next()?;
                    return u16::from_str_radix(port, 16).ok();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
