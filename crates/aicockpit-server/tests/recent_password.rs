//! The recent-password rule, over real HTTP against a real server: a
//! browser session may make API tokens, create, change or delete users and
//! add or change AI services only within `--reauth-after` of proving its
//! user's password (logging in, or `POST /api/v1/auth/confirm`), so a
//! stolen cookie alone cannot mint a lasting credential or a second admin.
//! API tokens are never asked.

mod support;

use std::time::Duration;

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::TestServer;

const PASSWORD: &str = "root-password-1";

fn server(window: Duration) -> TestServer {
    TestServer::start_with(move |options| options.reauth_after = window)
}

#[test]
fn a_session_past_the_window_confirms_its_password_before_making_credentials() {
    let window = Duration::from_secs(2);
    let server = server(window);
    let root = server.user("root", PASSWORD, SiteRole::Admin);
    let cookie = server.login("root", PASSWORD);
    let token = server.token(&root);
    // Fresh from the login: allowed.
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "a" })),
        )
        .expect(201);

    std::thread::sleep(window + Duration::from_millis(1200));
    let asked = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "b" })),
        )
        .expect(403);
    assert_eq!(asked.json()["error"], "reauth_required", "{}", asked.text());
    for (method, target, body) in [
        (
            "POST",
            "/api/v1/users",
            Some(json!({ "name": "evil", "password": "evil-password-1", "role": "admin" })),
        ),
        (
            "PATCH",
            "/api/v1/users/root",
            Some(json!({ "role": "member" })),
        ),
        ("DELETE", "/api/v1/users/admin", None),
        (
            "POST",
            "/api/v1/services",
            Some(json!({ "name": "x", "kind": "openai", "base_url": "http://127.0.0.1:9" })),
        ),
    ] {
        let reply = server
            .browser(&cookie, method, target, body.as_ref())
            .expect(403);
        assert_eq!(
            reply.json()["error"],
            "reauth_required",
            "{method} {target}"
        );
    }
    // Reading, and everything else, goes on.
    server
        .browser(&cookie, "GET", "/api/v1/users", None)
        .expect(200);
    // An API token is never asked.
    server
        .api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "c" })),
        )
        .expect(201);

    let wrong = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/auth/confirm",
            Some(&json!({ "password": "not-the-password" })),
        )
        .expect(403);
    assert_eq!(wrong.json()["error"], "wrong_password");
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "b" })),
        )
        .expect(403);
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/auth/confirm",
            Some(&json!({ "password": PASSWORD })),
        )
        .expect(204);
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "b" })),
        )
        .expect(201);
    // The refusals, the failed and the good confirmation are audited.
    let results: Vec<String> = server
        .audit("auth.confirm")
        .into_iter()
        .map(|r| r.result)
        .collect();
    assert_eq!(results, ["403", "ok"]);
    // A refusal by the guard names whose session was refused.
    assert!(
        server
            .audit("token.create")
            .iter()
            .any(|r| r.result == "403" && r.user.as_deref() == Some("root")),
        "{:?}",
        server.audit("token.create")
    );
}

#[test]
fn only_a_session_with_a_password_confirms_one() {
    let server = server(Duration::ZERO);
    let root = server.user("root", PASSWORD, SiteRole::Admin);
    let token = server.token(&root);
    let by_token = server
        .api(
            &token,
            "POST",
            "/api/v1/auth/confirm",
            Some(&json!({ "password": PASSWORD })),
        )
        .expect(400);
    assert!(
        by_token.text().contains("API tokens"),
        "{}",
        by_token.text()
    );

    // The first admin, signed in by its login link, has no password yet.
    let url = server
        .login_url
        .clone()
        .expect("a first start prints a link");
    let link = url.split("token=").nth(1).unwrap();
    let cookie = server.use_link(link).expect(200).cookie();
    // With a window of zero, a session is asked once its second is over.
    std::thread::sleep(Duration::from_millis(1200));
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "a" })),
        )
        .expect(403);
    let none = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/auth/confirm",
            Some(&json!({ "password": "anything-at-all" })),
        )
        .expect(403);
    assert_eq!(none.json()["error"], "no_password", "{}", none.text());
}

#[test]
fn sessions_from_before_the_rule_are_asked() {
    // A session row written before the rule (no proof recorded) is past
    // any window.
    let server = server(aicockpit_server::auth::RECENT_PASSWORD);
    server.user("root", PASSWORD, SiteRole::Admin);
    let cookie = server.login("root", PASSWORD);
    server
        .db
        .call_blocking(|c| {
            c.execute("UPDATE sessions SET confirmed_at = 0", [])?;
            Ok(())
        })
        .unwrap();
    let asked = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "a" })),
        )
        .expect(403);
    assert_eq!(asked.json()["error"], "reauth_required");
}

#[test]
fn a_first_password_is_set_only_right_after_a_login_link() {
    let window = Duration::from_secs(1);
    let server = server(window);
    let url = server
        .login_url
        .clone()
        .expect("a first start prints a link");
    let link = url.split("token=").nth(1).unwrap();
    let cookie = server.use_link(link).expect(200).cookie();
    // A stale (or stolen) link session cannot give the account a password,
    // which would prove the session again.
    std::thread::sleep(window + Duration::from_millis(1200));
    let refused = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": "first-password-1" })),
        )
        .expect(403);
    assert_eq!(
        refused.json()["error"],
        "link_required",
        "{}",
        refused.text()
    );
    server.try_login("admin", "first-password-1").expect(401);
    // Nor can a token of that account.
    let admin = server
        .db
        .call_blocking(|c| aicockpit_server::db::user_by_name(c, "admin"))
        .unwrap()
        .unwrap();
    let token = server.token(&admin);
    server
        .api(
            &token,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": "first-password-1" })),
        )
        .expect(403);
    // A new link, used now, can.
    let fresh = server.link(&admin);
    let cookie = server.use_link(&fresh).expect(200).cookie();
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": "first-password-1" })),
        )
        .expect(204);
    server.login("admin", "first-password-1");
}

#[test]
fn on_the_local_backend_terminals_and_commands_need_a_recent_password() {
    // The test server runs the local backend: a terminal there is a shell
    // on the server's host.
    let window = Duration::from_secs(2);
    let server = server(window);
    let root = server.user("root", PASSWORD, SiteRole::Admin);
    let token = server.token(&root);
    server
        .api(
            &token,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": "here" })),
        )
        .expect(201);
    let cookie = server.login("root", PASSWORD);
    let exec = json!({ "command": ["true"] });
    std::thread::sleep(window + Duration::from_millis(1200));
    for (method, target, body) in [
        ("POST", "/api/v1/workspaces/here/exec", Some(&exec)),
        ("GET", "/api/v1/workspaces/here/terminal", None),
    ] {
        let reply = server.browser(&cookie, method, target, body).expect(403);
        assert_eq!(reply.json()["error"], "reauth_required", "{target}");
    }
    // So does mounting a folder of the host (any backend).
    let host_dir = tempfile::tempdir().unwrap();
    let mounted = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": "mounted", "dir": host_dir.path(), "start": false })),
        )
        .expect(403);
    assert_eq!(mounted.json()["error"], "reauth_required");
    // Other workspace routes go on; a token is never asked.
    server
        .browser(&cookie, "GET", "/api/v1/workspaces/here", None)
        .expect(200);
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": "plain", "start": false })),
        )
        .expect(201);
    let by_token = server.api(&token, "POST", "/api/v1/workspaces/here/exec", Some(&exec));
    assert_ne!(
        by_token.json()["error"],
        "reauth_required",
        "{}",
        by_token.text()
    );
}
