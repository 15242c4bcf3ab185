//! The `Host` check, the DNS-rebinding defence (security review of
//! `aicockpit serve`, "server lows"): a page that points its own DNS name
//! at 127.0.0.1 talks to the server same-origin under that name. Our
//! cookies do not go with it, but the public routes (login, the login link,
//! health, the web page and its assets, the OpenAPI description) would
//! answer it; every request under a name that is not the server's is
//! refused before it reaches any route, WebSocket upgrades included.

mod support;

use std::net::SocketAddr;

use aicockpit_server::db::SiteRole;
use support::{http, raw, Reply, TestServer};

/// Every kind of route a foreign page could reach without our cookies.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/"),
    ("GET", "/assets/app.js"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/login?token=guess"),
    ("GET", "/no/such/route"),
];

fn under(server: &TestServer, host: &str, method: &str, target: &str) -> Reply {
    let body = if method == "POST" {
        &br#"{"name":"root","password":"root-password-1"}"#[..]
    } else {
        b""
    };
    http(
        server.address,
        method,
        target,
        &[("Host", host), ("Content-Type", "application/json")],
        body,
    )
}

#[track_caller]
fn assert_wrong_host(reply: Reply, what: &str) {
    assert_eq!(reply.status, 421, "{what}: {reply:?}");
    let body = reply.json();
    assert_eq!(body["error"], "wrong_host", "{what}: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("--public-url"), "{what}: {message}");
    // The refused name is never part of the advice (the command to run).
    assert!(!message.contains("://"), "{what}: {message}");
    let advice = message.split("--public-url").nth(1).unwrap_or_default();
    assert!(!advice.contains("attacker"), "{what}: {message}");
    assert!(reply.header("set-cookie").is_none(), "{what}");
}

#[test]
fn requests_under_a_foreign_name_are_refused_everywhere() {
    let server = TestServer::start(None);
    server.user("root", "root-password-1", SiteRole::Admin);
    let port = server.address.port();
    let rebound = format!("attacker.example:{port}");
    let other_port = format!("127.0.0.1:{}", port.wrapping_add(1));
    for (method, target) in PUBLIC {
        for host in [rebound.as_str(), other_port.as_str(), "attacker.example"] {
            assert_wrong_host(
                under(&server, host, method, target),
                &format!("{method} {target} as {host}"),
            );
        }
    }
    // Under its own names everything answers as before.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        under(&server, &host, "GET", "/healthz").expect(200);
        under(&server, &host, "GET", "/").expect(200);
        under(&server, &host, "POST", "/api/v1/auth/login").expect(200);
    }
}

#[test]
fn a_websocket_upgrade_under_a_foreign_name_is_refused_before_anything_else() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let token = server.token(&root);
    let upgrade = |host: &str| {
        raw(
            server.address,
            format!(
                "GET /api/v1/workspaces/nowhere/lsp HTTP/1.1\r\nHost: {host}\r\n\
                 Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://{host}\r\n\
                 Authorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let port = server.address.port();
    assert_wrong_host(
        upgrade(&format!("attacker.example:{port}")),
        "WebSocket upgrade",
    );
    // Under the right name the same upgrade gets as far as the route (no such workspace).
    let reply = upgrade(&format!("127.0.0.1:{port}"));
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[test]
fn a_request_without_a_host_or_with_two_is_refused() {
    let server = TestServer::start(None);
    let none = raw(server.address, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(none.status, 400, "{none:?}");
    assert_eq!(none.json()["error"], "no_host");
    let own = server.address.to_string();
    let two = raw(
        server.address,
        format!("GET /healthz HTTP/1.1\r\nHost: {own}\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(two.status, 400, "{two:?}");
    // An absolute request target names its host too, and it must be ours.
    let absolute = raw(
        server.address,
        format!("GET http://attacker.example/healthz HTTP/1.1\r\nHost: {own}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(absolute.status, 421, "{absolute:?}");
}

#[test]
fn the_public_url_names_the_server_too() {
    let server = TestServer::start(Some("https://Cockpit.Example.com"));
    let port = server.address.port();
    for host in [
        "cockpit.example.com",
        "cockpit.example.com:443",
        "COCKPIT.example.com",
    ] {
        under(&server, host, "GET", "/healthz").expect(200);
    }
    // Behind a proxy on the same host, the loopback names still work.
    under(&server, &format!("127.0.0.1:{port}"), "GET", "/healthz").expect(200);
    for host in [
        "cockpit.example.com:8443",
        "other.example.com",
        "cockpit.example.com.attacker.example",
    ] {
        assert_wrong_host(under(&server, host, "GET", "/healthz"), host);
    }
}

#[test]
fn a_public_url_with_its_default_port_accepts_the_origin_browsers_send() {
    // Browsers never put the default port in `Origin`: a `--public-url`
    // written with `:443` must still let its own pages use the cookie.
    let server = TestServer::start(Some("https://cockpit.example.com:443/"));
    server.user("root", "root-password-1", SiteRole::Admin);
    let login = http(
        server.address,
        "POST",
        "/api/v1/auth/login",
        &[
            ("Host", "cockpit.example.com"),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"root","password":"root-password-1"}"#,
    )
    .expect(200);
    let cookie = login.cookie();
    // A state-changing cookie request: the Origin rule applies.
    let make_token = |origin: &str| {
        http(
            server.address,
            "POST",
            "/api/v1/tokens",
            &[
                ("Host", "cockpit.example.com"),
                ("Cookie", cookie.as_str()),
                ("Origin", origin),
                ("Content-Type", "application/json"),
            ],
            br#"{"name":"ci"}"#,
        )
    };
    make_token("https://cockpit.example.com").expect(201);
    for foreign in [
        "https://cockpit.example.com.attacker.example",
        "http://cockpit.example.com",
        "https://cockpit.example.com:8443",
    ] {
        let refused = make_token(foreign).expect(403);
        assert_eq!(refused.json()["error"], "bad_origin", "{foreign}");
    }
}

#[test]
fn the_metrics_listener_checks_the_host_too() {
    // A free port for the metrics listener (it reports none of its own).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _server = TestServer::start_with(|options| options.metrics_bind = Some(metrics));
    let get = |host: &str| http(metrics, "GET", "/metrics", &[("Host", host)], b"");
    get(&format!("127.0.0.1:{port}")).expect(200);
    get(&format!("localhost:{port}")).expect(200);
    assert_wrong_host(get(&format!("attacker.example:{port}")), "metrics");
}
