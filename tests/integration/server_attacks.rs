//! Regression tests from the attacker-seat review of `aicockpit serve`:
//! each plays one finding's request sequence against the real binary and
//! asserts what the server must do instead. They were written to fail on
//! the code as reviewed (the fixes are the lead's).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{create_user, create_workspace, http, new_project, token_for, Cleanup, Server};
use crate::server_lsp::WsLsp;
use crate::support::{stderr, DEADLINE};
use crate::workspace::{docker_ready, unique};

/// The per-name and per-address login budget (docs/api.md, rate limiting).
const LOGIN_BUDGET: usize = 10;

fn login(server: &Server, name: &str, password: &str) -> u16 {
    let body = json!({"name": name, "password": password}).to_string();
    http(
        server.address,
        None,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .status
}

/// The whole audit log through the API, as text.
fn audit_text(server: &Server, admin: &str) -> String {
    server
        .api(admin, "GET", "/api/v1/audit?limit=10000", None)
        .expect(200)
        .text()
}

/// Finding: the login limiter is checked before the password is verified
/// and charged only after, so guesses sent at once all pass the check.
/// Forty concurrent wrong passwords for one name must not get more than
/// the budget's worth of verdicts (the rest: 429).
#[test]
fn concurrent_guesses_get_no_more_verdicts_than_the_budget() {
    let project = new_project();
    let server = Server::start(&project, "info");
    create_user(&project, "ada", "member", "correct horse battery staple");
    let server = Arc::new(server);
    let start = Arc::new(Barrier::new(40));
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let (server, start) = (server.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                login(&server, "ada", &format!("wrong password number {i}"))
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let verdicts = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        verdicts <= LOGIN_BUDGET,
        "{verdicts} of 40 concurrent guesses were checked against the password (budget \
         {LOGIN_BUDGET}): the limit is bypassed by sending guesses at once; {statuses:?}"
    );
    // The name is locked now, whatever the password.
    assert_eq!(login(&server, "ada", "correct horse battery staple"), 429);
}

/// Finding: a failed login records the name it tried in the audit log,
/// whatever its length, and refused (429) attempts are recorded too, so
/// anyone who reaches the port can write megabytes per request into the
/// append-only audit table.
#[test]
fn a_login_attempt_cannot_write_megabytes_into_the_audit_log() {
    let project = new_project();
    let server = Server::start(&project, "info");
    let admin = token_for(&project, None);
    let huge_name = "n".repeat(1 << 20);
    let before = audit_text(&server, &admin).len();
    for _ in 0..3 {
        let status = login(&server, &huge_name, "not the password at all");
        assert!([400, 401, 413, 429].contains(&status), "{status}");
    }
    let grown = audit_text(&server, &admin).len().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "three anonymous login attempts added {grown} bytes to the audit log: the attempted \
         name goes in unbounded (auth_routes.rs login, AuditNote.user)"
    );
}

/// Sends one request and waits for its answer: `Some(result)` when the
/// session still serves it, `None` when the socket closed or the request
/// was refused.
fn still_served(lsp: &mut WsLsp, method: &str, params: Value) -> Option<Value> {
    let id = lsp.send_request(method, params)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let message = lsp.next(deadline)?;
        if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
            return message
                .get("error")
                .is_none()
                .then(|| message["result"].clone());
        }
        if let (Some(server_id), Some(_)) = (message.get("id"), message.get("method")) {
            // A request from the server (progress tokens): say yes.
            let server_id = server_id.clone();
            lsp.send_response(json!({"jsonrpc": "2.0", "id": server_id, "result": null}))?;
        }
    }
}

/// Finding: authorisation is decided once, at the WebSocket upgrade. A
/// member removed from a workspace keeps an open language-server session
/// (and terminals) with the role they had, for as long as they keep it
/// open: they go on reading the shared index and, as editors, editing the
/// documents everybody sees.
#[test]
fn removing_a_member_ends_their_open_language_server_session() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "info");
    create_user(&project, "olga", "member", "olga's long password");
    create_user(&project, "bob", "member", "bob's long password!");
    let olga = token_for(&project, Some("olga"));
    let bob = token_for(&project, Some("bob"));
    let name = unique("srv-revoke");
    create_workspace(&server, &cleanup, &olga, &name);
    let members = format!("/api/v1/workspaces/{name}/members");
    server
        .api(
            &olga,
            "PUT",
            &members,
            Some(&json!([{"user": "bob", "role": "editor"}])),
        )
        .expect(200);

    let mut lsp = WsLsp::connect(&server, &bob, &name);
    lsp.initialize();
    assert!(
        still_served(&mut lsp, "workspace/symbol", json!({"query": "x"})).is_some(),
        "the session works while bob is an editor"
    );

    server
        .api(&olga, "PUT", &members, Some(&json!([])))
        .expect(200);
    server
        .api(&bob, "GET", &format!("/api/v1/workspaces/{name}"), None)
        .expect(404);

    // Whatever the fix (the session is closed, or each request is
    // re-authorised), bob's next request must not be served.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served = still_served(&mut lsp, "workspace/symbol", json!({"query": "x"}));
    while served.is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        served = still_served(&mut lsp, "workspace/symbol", json!({"query": "x"}));
    }
    assert!(
        served.is_none(),
        "bob was removed from {name}, but his open language-server session still answers \
         10 s later"
    );
}

/// Finding: the server keeps one language-server engine per workspace
/// *name* and drops it only when the API deletes the workspace. A
/// workspace removed behind the server's back (`aicockpit workspace rm`,
/// which `db::claim_workspace` expects) and created again under the same
/// name by another member is served by its predecessor's engine: the new
/// owner sees the old owner's unsaved text, and the old owner's session
/// still open on it reads the new owner's files.
#[test]
fn a_workspace_made_again_under_an_old_name_gets_none_of_its_predecessors_text() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let cleanup = Cleanup::new(&project);
    let server = Server::start(&project, "info");
    create_user(&project, "olga", "member", "olga's long password");
    create_user(&project, "bob", "member", "bob's long password!");
    let olga = token_for(&project, Some("olga"));
    let bob = token_for(&project, Some("bob"));
    let name = unique("srv-reuse");
    create_workspace(&server, &cleanup, &olga, &name);

    let mut old = WsLsp::connect(&server, &olga, &name);
    let init = old.initialize();
    let root = init["capabilities"]["experimental"]["aicockpit"]["rootUri"]
        .as_str()
        .expect("a shared session names its root")
        .to_string();
    old.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": format!("{root}/src/draft.rs"), "languageId": "rust", "version": 1, "text": "pub fn olga_private_draft() {}\n"}}),
    );
    assert!(
        old.find_symbol("olga_private_draft", DEADLINE),
        "olga's unsaved draft is in her workspace's index"
    );

    // The workspace goes behind the server's back; bob makes one of that name.
    let output = project.cli(&["workspace", "rm", &name, "--purge"]);
    assert!(output.status.success(), "{}", stderr(&output));
    create_workspace(&server, &cleanup, &bob, &name);

    let mut new = WsLsp::connect(&server, &bob, &name);
    new.initialize();
    assert!(
        !new.find_symbol("olga_private_draft", Duration::from_secs(5)),
        "bob's new workspace {name} is served by the engine of olga's removed one: her unsaved \
         text reaches him (engines.rs keys engines by name only)"
    );
    drop(old);
}

/// Finding: `/metrics` labels each request with its method as sent. Any
/// method token reaches the guard on a matched path (and is answered 405),
/// so anyone who reaches the port adds a new series per request, kept for
/// the server's lifetime: unbounded memory and an unbounded scrape.
#[test]
fn unknown_methods_do_not_make_new_metric_series() {
    let project = new_project();
    let server = Server::start(&project, "info");
    let admin = token_for(&project, None);
    let methods: Vec<String> = (0..3)
        .map(|i| format!("SPRAY{i}{}", "X".repeat(2000)))
        .collect();
    for method in &methods {
        let reply = http(server.address, None, method, "/healthz", &[], b"");
        assert_eq!(reply.status, 405, "{}", reply.text());
    }
    let metrics = server
        .api(&admin, "GET", "/metrics", None)
        .expect(200)
        .text();
    for method in &methods {
        assert!(
            !metrics.contains(&method[..10]),
            "an anonymous request with method {}… made its own series in /metrics (metrics.rs \
             record keys by the raw method); the scrape is now {} bytes",
            &method[..10],
            metrics.len()
        );
    }
}

/// Finding: `axum::serve` runs without a header read timeout, so a client
/// that sends half a request head holds its connection (and a file
/// descriptor) forever; a few thousand of them exhaust the server's
/// descriptors (1024 by default under systemd) and nobody can connect.
#[test]
fn a_request_head_that_never_ends_is_cut_off() {
    use std::io::{Read, Write};
    let project = new_project();
    let server = Server::start(&project, "info");
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let limit = Duration::from_secs(30);
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    let outcome = stream.read(&mut buffer);
    assert!(
        outcome.is_ok(),
        "a connection with an unfinished request head was still open {:?} later ({outcome:?}): \
         slow clients can hold every connection the server has",
        started.elapsed()
    );
}

/// Finding: a config file the services API cannot parse is reported with
/// the TOML parser's excerpt of the offending line, so a key pasted into
/// the wrong place of `config.toml` comes back in the API's error body
/// (against the invariant that no service key is ever returned).
#[test]
fn a_config_parse_error_does_not_echo_the_file() {
    let project = new_project();
    let server = Server::start(&project, "info");
    let admin = token_for(&project, None);
    let config = project.home.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[ai]\napi_key = \"sk-live-pasted-in-the-wrong-place\"\n");
    std::fs::write(&config, text).unwrap();
    let reply = server.api(
        &admin,
        "POST",
        "/api/v1/services",
        Some(&json!({"name": "cloud", "kind": "openai", "base_url": "https://api.example.com/v1"})),
    );
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert_eq!(
        reply.json()["error"],
        "config_unreadable",
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains("sk-live-pasted"),
        "the error body quotes the config file's line, key and all: {}",
        reply.text()
    );
}
