//! What one user may hold: workspaces they own (`workspaces.max_per_user`,
//! admins not limited) and open WebSocket connections
//! (`workspaces.max_connections_per_user`), each refused with an error that
//! names the setting, and given back when the workspace or connection goes.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::{upgrade, TestServer, DEADLINE};

fn create(server: &TestServer, token: &str, name: &str) -> support::Reply {
    server.create_workspace(token, name, false)
}

#[test]
fn a_user_owns_at_most_max_per_user_workspaces_and_admins_are_not_limited() {
    let server = TestServer::start_with(|options| options.config.workspaces.max_per_user = 2);
    let member = server.user("mia", "mia-password-1", SiteRole::Member);
    let member_token = server.token(&member);
    let admin = server.user("root", "root-password-1", SiteRole::Admin);
    let admin_token = server.token(&admin);

    create(&server, &member_token, "one").expect(201);
    create(&server, &member_token, "two").expect(201);
    let refused = create(&server, &member_token, "three");
    assert_eq!(refused.status, 403, "{}", refused.text());
    let body = refused.json();
    assert_eq!(body["error"], "workspace_quota");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("you own 2 workspaces") && message.contains("workspaces.max_per_user = 2"),
        "{message}"
    );
    // Nothing of it was made.
    server
        .api(&member_token, "GET", "/api/v1/workspaces/three", None)
        .expect(404);

    // A restore is a creation too, refused before the archive is read.
    let restore = server.call(
        "POST",
        "/api/v1/workspaces/restore?name=four",
        &[("Authorization", &format!("Bearer {member_token}"))],
        b"not even an archive",
    );
    assert_eq!(restore.status, 403, "{}", restore.text());
    assert_eq!(restore.json()["error"], "workspace_quota");

    // Admins are not limited; the member's quota is the member's own.
    for name in ["a1", "a2", "a3"] {
        create(&server, &admin_token, name).expect(201);
    }
    // Removing one keeps its files on the server: they still count.
    server
        .api(&member_token, "DELETE", "/api/v1/workspaces/one", None)
        .expect(200);
    let refused = create(&server, &member_token, "three");
    assert_eq!(refused.status, 403, "{}", refused.text());
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("you own 1 workspaces and the kept files of 1 you removed"),
        "{message}"
    );
    // Removing with its files gives the place back.
    server
        .api(
            &member_token,
            "DELETE",
            "/api/v1/workspaces/two?purge=true",
            None,
        )
        .expect(200);
    create(&server, &member_token, "three").expect(201);
    create(&server, &member_token, "four").expect(403);
    // Once an admin deletes the kept files on the host, they count no more.
    std::fs::remove_dir_all(server.paths.data_dir.join("workspaces/one")).unwrap();
    create(&server, &member_token, "four").expect(201);
}

#[test]
fn a_user_has_at_most_max_terminals_per_user_shells_even_with_no_window_open() {
    // The local backend's terminals are an admin's shells on the host.
    let server = TestServer::start_with(|options| {
        options.config.workspaces.max_terminals_per_user = 1;
    });
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let token = server.token(&root);
    server.create_workspace(&token, "shop", true).expect(201);
    let terminal = "/api/v1/workspaces/shop/terminal";
    let (status, body, first) = upgrade(&server, &token, terminal);
    assert_eq!(status, 101, "{body}");
    // The window closes; the shell lives on, and still counts.
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let (status, body, _) = upgrade(&server, &token, terminal);
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too_many_terminals") && body.contains("max_terminals_per_user"),
        "{body}"
    );
    // Reattaching to it is no new shell.
    let listed = server
        .api(&token, "GET", "/api/v1/workspaces/shop/terminals", None)
        .expect(200)
        .json();
    let id = listed[0]["session"].as_str().unwrap().to_string();
    let (status, body, again) = upgrade(&server, &token, &format!("{terminal}?session={id}"));
    assert_eq!(status, 101, "{body}");
    // Once the shell ends, its place is given back.
    let mut again = again.unwrap();
    let keys = b"exit\n";
    let mut frame = vec![0x82, 0x80 | keys.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(keys);
    std::io::Write::write_all(&mut again, &frame).unwrap();
    upgrade_once_free(&server, &token, terminal, "the ended shell's place");
}

/// Upgrade `target`, trying again while it is refused with 429 (a place not
/// given back yet), until the deadline; the open connection.
fn upgrade_once_free(server: &TestServer, token: &str, target: &str, what: &str) -> TcpStream {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body, open) = upgrade(server, token, target);
        if let (101, Some(open)) = (status, open) {
            return open;
        }
        assert_eq!(status, 429, "{target}: {body}");
        assert!(
            Instant::now() < deadline,
            "{target}: {what} was never given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_user_holds_at_most_max_connections_per_user_websockets() {
    let server =
        TestServer::start_with(|options| options.config.workspaces.max_connections_per_user = 2);
    let mia = server.user("mia", "mia-password-1", SiteRole::Member);
    let mia_token = server.token(&mia);
    let ben = server.user("ben", "ben-password-1", SiteRole::Member);
    let ben_token = server.token(&ben);
    create(&server, &mia_token, "shop").expect(201);
    create(&server, &ben_token, "lab").expect(201);

    let lsp = "/api/v1/workspaces/shop/lsp";
    let (status, _, first) = upgrade(&server, &mia_token, lsp);
    assert_eq!(status, 101);
    let (status, _, _second) = upgrade(&server, &mia_token, lsp);
    assert_eq!(status, 101);
    let (status, body, _) = upgrade(&server, &mia_token, lsp);
    assert_eq!(status, 429, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "too_many_connections");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("workspaces.max_connections_per_user"),
        "{body}"
    );
    // A browser cannot read a refused upgrade's answer: over plain HTTP,
    // the same route says why.
    let probe = server.api(&mia_token, "GET", lsp, None);
    assert_eq!(probe.status, 429, "{}", probe.text());
    assert_eq!(probe.json()["error"], "too_many_connections");
    // A chat stream (and an exec run) is one of them too.
    let chat = server.api(
        &mia_token,
        "POST",
        "/api/v1/workspaces/shop/chat",
        Some(&json!({ "messages": [{ "role": "user", "content": "hi" }] })),
    );
    assert_eq!(chat.status, 429, "{}", chat.text());
    assert_eq!(chat.json()["error"], "too_many_connections");
    // Another user's budget is their own.
    let (status, _, _ben_session) = upgrade(&server, &ben_token, "/api/v1/workspaces/lab/lsp");
    assert_eq!(status, 101);

    // Closing one gives its place back (once the server has seen it close).
    drop(first);
    drop(upgrade_once_free(
        &server,
        &mia_token,
        lsp,
        "the closed session's place",
    ));
    // With a place free, plain HTTP is told to upgrade (and opens nothing).
    let deadline = Instant::now() + DEADLINE;
    let probe = loop {
        let probe = server.api(&mia_token, "GET", lsp, None);
        if probe.status != 429 || Instant::now() > deadline {
            break probe;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(probe.status, 400, "{}", probe.text());
    assert_eq!(probe.json()["error"], "not_a_websocket");
}

#[test]
fn a_client_that_answers_no_ping_is_dropped_and_gives_its_place_back() {
    let server = TestServer::start_with(|options| {
        options.config.workspaces.max_connections_per_user = 1;
        options.socket_idle_timeout = Duration::from_secs(1);
    });
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let token = server.token(&root);
    server.create_workspace(&token, "shop", true).expect(201);
    // A raw socket answers no ping: a client that went away without a word.
    for target in [
        "/api/v1/workspaces/shop/lsp",
        "/api/v1/workspaces/shop/terminal",
    ] {
        // (Once the last connection of the loop before has given its place back.)
        let _silent = upgrade_once_free(&server, &token, target, "a first place");
        let started = Instant::now();
        let (status, body, _) = upgrade(&server, &token, target);
        assert_eq!(status, 429, "{target}: {body}");
        drop(upgrade_once_free(
            &server,
            &token,
            target,
            "the silent client's place",
        ));
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{target}: dropped before the idle timeout"
        );
    }
}
