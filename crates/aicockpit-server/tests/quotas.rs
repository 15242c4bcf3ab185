//! What one user may hold: workspaces they own (`workspaces.max_per_user`,
//! admins not limited) and open WebSocket connections
//! (`workspaces.max_connections_per_user`), each refused with an error that
//! names the setting, and given back when the workspace or connection goes.

mod support;

use std::time::{Duration, Instant};

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::{upgrade, TestServer, DEADLINE};

fn create(server: &TestServer, token: &str, name: &str) -> support::Reply {
    server.api(
        token,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({ "name": name, "start": false })),
    )
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
    // Removing one gives its place back.
    server
        .api(&member_token, "DELETE", "/api/v1/workspaces/one", None)
        .expect(200);
    create(&server, &member_token, "three").expect(201);
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
    // Another user's budget is their own.
    let (status, _, _ben_session) = upgrade(&server, &ben_token, "/api/v1/workspaces/lab/lsp");
    assert_eq!(status, 101);

    // Closing one gives its place back (once the server has seen it close).
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body, open) = upgrade(&server, &mia_token, lsp);
        if status == 101 {
            drop(open);
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            Instant::now() < deadline,
            "the closed session was never given back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
