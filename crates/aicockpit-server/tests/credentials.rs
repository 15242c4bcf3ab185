//! What ends with a password change, a reset and a deletion (security
//! review of `aicockpit serve`, "server lows"): played over real HTTP
//! against a real server and its SQLite file.
//!
//! The rules: an admin resetting someone's password (API or `aicockpit
//! admin reset-password`) ends every session, API token and login link of
//! that user, since a reset is what one does to a compromised account and
//! nothing an intruder made may survive it; a user setting their own
//! password ends their other sessions and login links but keeps the session
//! they did it from and their API tokens; a deleted user's credentials stop
//! at once. Each is in the audit log with what it ended.

mod support;

use aicockpit_server::db::{self, SiteRole};
use serde_json::{json, Value};
use support::TestServer;

const OLD: &str = "old-password-1";
const NEW: &str = "new-password-2";

/// The `revoked` counts of an audit record's detail.
fn revoked(detail: Option<&str>) -> Value {
    let detail: Value = serde_json::from_str(detail.expect("the record has a detail")).unwrap();
    detail["revoked"].clone()
}

#[test]
fn an_admin_reset_ends_every_session_token_and_login_link_of_the_user() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let admin = server.token(&root);
    let ada = server.user("ada", OLD, SiteRole::Member);
    let laptop = server.login("ada", OLD);
    let phone = server.login("ada", OLD);
    let ada_token = server.token(&ada);
    let ada_link = server.link(&ada);
    server
        .api(&ada_token, "GET", "/api/v1/me", None)
        .expect(200);

    server
        .api(
            &admin,
            "PATCH",
            "/api/v1/users/ada",
            Some(&json!({ "password": NEW })),
        )
        .expect(200);

    for cookie in [&laptop, &phone] {
        let reply = server
            .browser(cookie, "GET", "/api/v1/me", None)
            .expect(401);
        assert_eq!(reply.json()["error"], "session_expired");
    }
    server
        .api(&ada_token, "GET", "/api/v1/me", None)
        .expect(401);
    let link = server.use_link(&ada_link).expect(401);
    assert_eq!(link.json()["error"], "bad_link");
    server.try_login("ada", OLD).expect(401);
    server.login("ada", NEW);
    // The admin's own credentials are untouched.
    server.api(&admin, "GET", "/api/v1/me", None).expect(200);

    let record = server
        .audit("user.update")
        .pop()
        .expect("the reset is audited");
    assert_eq!(record.user.as_deref(), Some("root"));
    assert_eq!(record.target.as_deref(), Some("user:ada"));
    assert_eq!(
        revoked(record.detail.as_deref()),
        json!({"sessions": 2, "tokens": 1, "login_links": 1}),
        "{record:?}"
    );
}

#[test]
fn setting_your_own_password_signs_out_everywhere_but_this_browser() {
    let server = TestServer::start(None);
    let ada = server.user("ada", OLD, SiteRole::Member);
    let here = server.login("ada", OLD);
    let elsewhere = server.login("ada", OLD);
    let token = server.token(&ada);
    let link = server.link(&ada);

    let changed = server
        .browser(
            &here,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": OLD, "new_password": NEW })),
        )
        .expect(204);
    // This browser goes on with a new session; every old one ends, a
    // thief's copy of this browser's cookie included.
    let renewed = changed.cookie();
    assert_ne!(renewed, here);
    server
        .browser(&renewed, "GET", "/api/v1/me", None)
        .expect(200);
    for cookie in [&here, &elsewhere] {
        let ended = server
            .browser(cookie, "GET", "/api/v1/me", None)
            .expect(401);
        assert_eq!(ended.json()["error"], "session_expired");
    }
    server.api(&token, "GET", "/api/v1/me", None).expect(200);
    server.use_link(&link).expect(401);
    server.try_login("ada", OLD).expect(401);
    let record = server.audit("user.password").pop().unwrap();
    assert_eq!(record.user.as_deref(), Some("ada"));
    assert_eq!(record.target.as_deref(), Some("user:ada"));
    assert_eq!(
        revoked(record.detail.as_deref()),
        json!({"sessions": 2, "tokens": 0, "login_links": 1}),
        "{record:?}"
    );

    // Done with a token: every session ends, no new one is made, the
    // tokens stay unless asked.
    let again = server.login("ada", NEW);
    let by_token = server
        .api(
            &token,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": NEW, "new_password": OLD })),
        )
        .expect(204);
    assert!(by_token.header("set-cookie").is_none());
    for cookie in [&renewed, &again] {
        server
            .browser(cookie, "GET", "/api/v1/me", None)
            .expect(401);
    }
    server.api(&token, "GET", "/api/v1/me", None).expect(200);

    // Asked, the tokens end too: one a thief minted with a stolen session
    // does not outlive the owner's change.
    let minted = server.token(&ada);
    let cookie = server.login("ada", OLD);
    let ended = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": OLD, "new_password": NEW, "end_tokens": true })),
        )
        .expect(204);
    for token in [&token, &minted] {
        server.api(token, "GET", "/api/v1/me", None).expect(401);
    }
    server
        .browser(&ended.cookie(), "GET", "/api/v1/me", None)
        .expect(200);
    let record = server.audit("user.password").pop().unwrap();
    assert_eq!(
        revoked(record.detail.as_deref()),
        json!({"sessions": 1, "tokens": 2, "login_links": 0}),
        "{record:?}"
    );
}

#[test]
fn your_own_password_changes_only_with_the_current_one() {
    let server = TestServer::start(None);
    let root = server.user("root", OLD, SiteRole::Admin);
    let here = server.login("root", OLD);
    let elsewhere = server.login("root", OLD);
    let token = server.token(&root);

    // A stolen session or token alone cannot set a password the owner
    // does not know, nor sign the owner out.
    let wrong = server
        .browser(
            &here,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": "not-the-password", "new_password": NEW })),
        )
        .expect(403);
    assert_eq!(wrong.json()["error"], "wrong_password");
    let missing = server
        .api(
            &token,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": NEW })),
        )
        .expect(400);
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap()
            .contains("current_password"),
        "{}",
        missing.text()
    );
    // Nor through the admin route, even an admin's own.
    for (who, reply) in [
        (
            "session",
            server.browser(
                &here,
                "PATCH",
                "/api/v1/users/root",
                Some(&json!({ "password": NEW })),
            ),
        ),
        (
            "token",
            server.api(
                &token,
                "PATCH",
                "/api/v1/users/root",
                Some(&json!({ "password": NEW })),
            ),
        ),
    ] {
        let reply = reply.expect(400);
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/me/password"),
            "{who}: {}",
            reply.text()
        );
    }
    // A new password outside the rules is refused before anything is checked.
    server
        .browser(
            &here,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": OLD, "new_password": "short" })),
        )
        .expect(400);
    server.try_login("root", NEW).expect(401);
    server.login("root", OLD);
    server
        .browser(&elsewhere, "GET", "/api/v1/me", None)
        .expect(200);
    // Every refusal is in the audit log as one.
    let results: Vec<String> = server
        .audit("user.password")
        .into_iter()
        .map(|r| r.result)
        .collect();
    assert_eq!(results, ["403", "400", "400"], "{results:?}");
}

#[test]
fn guessing_the_current_password_is_rate_limited_like_a_login() {
    let server = TestServer::start(None);
    server.user("ada", OLD, SiteRole::Member);
    let cookie = server.login("ada", OLD);
    let mut limited = None;
    for attempt in 0..20 {
        let reply = server.browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(
                &json!({ "current_password": format!("guess-{attempt:04}"), "new_password": NEW }),
            ),
        );
        match reply.status {
            403 => continue,
            429 => {
                limited = Some((attempt, reply));
                break;
            }
            other => panic!("attempt {attempt}: {other} {}", reply.text()),
        }
    }
    let (attempt, reply) = limited.expect("wrong current passwords are never limited");
    assert!(attempt <= 10, "limited only after {attempt} guesses");
    assert!(reply.header("retry-after").is_some(), "{}", reply.text());
    // Even the right one waits now: the guesses cannot be told apart from it.
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "current_password": OLD, "new_password": NEW })),
        )
        .expect(429);
    // Logins are another budget: the owner can still sign in. (This
    // address's budget for password checks is spent too; a session from
    // elsewhere has its own: tests/limiter.rs.)
    server.login("ada", OLD);
}

#[test]
fn a_user_without_a_password_sets_a_first_one_without_a_current_one() {
    let server = TestServer::start(None);
    // The first start made `admin` with no password and a login link.
    let url = server
        .login_url
        .clone()
        .expect("a first start prints a login link");
    let link = url.split("token=").nth(1).expect("the link has a token");
    let cookie = server.use_link(link).expect(200).cookie();
    let set = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": NEW })),
        )
        .expect(204);
    server.login("admin", NEW);
    // The link's session ended with the change; this browser has a new one.
    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(401);
    let cookie = set.cookie();
    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(200);
    // From now on the current one is needed.
    server
        .browser(
            &cookie,
            "POST",
            "/api/v1/me/password",
            Some(&json!({ "new_password": OLD })),
        )
        .expect(400);
}

#[test]
fn a_reset_on_the_host_ends_everything_too_and_is_audited() {
    let server = TestServer::start(None);
    let ada = server.user("ada", OLD, SiteRole::Member);
    let cookie = server.login("ada", OLD);
    let token = server.token(&ada);
    let link = server.link(&ada);

    // What `aicockpit admin reset-password ada` does, on its own connection.
    let hash = aicockpit_server::auth::hash_password(NEW).unwrap();
    let ended = server
        .db
        .call_blocking(|c| aicockpit_server::routes::users::reset_password_on_host(c, "ada", &hash))
        .unwrap()
        .expect("ada exists");
    assert_eq!((ended.sessions, ended.tokens, ended.login_links), (1, 1, 1));

    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(401);
    server.api(&token, "GET", "/api/v1/me", None).expect(401);
    server.use_link(&link).expect(401);
    server.login("ada", NEW);
    let record = server.audit("user.update").pop().expect("audited");
    assert_eq!(record.target.as_deref(), Some("user:ada"));
    assert_eq!(
        revoked(record.detail.as_deref()),
        json!({"sessions": 1, "tokens": 1, "login_links": 1})
    );
    let none = server
        .db
        .call_blocking(|c| {
            aicockpit_server::routes::users::reset_password_on_host(c, "nobody", &hash)
        })
        .unwrap();
    assert!(none.is_none());
}

#[test]
fn a_deleted_user_is_signed_out_everywhere_at_once() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let admin = server.token(&root);
    let gone = server.user("gone", OLD, SiteRole::Member);
    let cookie = server.login("gone", OLD);
    let token = server.token(&gone);
    let link = server.link(&gone);

    server
        .api(&admin, "DELETE", "/api/v1/users/gone", None)
        .expect(204);

    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(401);
    server.api(&token, "GET", "/api/v1/me", None).expect(401);
    server.use_link(&link).expect(401);
    let record = server.audit("user.delete").pop().expect("audited");
    assert_eq!(
        revoked(record.detail.as_deref()),
        json!({"sessions": 1, "tokens": 1, "login_links": 1})
    );

    // SQLite may give the next user the deleted one's id: nothing of the
    // old user's carries over to them.
    let next = server.user("next", NEW, SiteRole::Member);
    assert_eq!(
        next.id, gone.id,
        "the id is reused (else this part proves nothing)"
    );
    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(401);
    server.api(&token, "GET", "/api/v1/me", None).expect(401);
    server.use_link(&link).expect(401);
}

#[test]
fn a_role_change_refused_for_the_last_admin_changes_no_password() {
    let server = TestServer::start(None);
    let root = server.user("root", OLD, SiteRole::Admin);
    // Without the first start's `admin`, root is the last admin.
    server
        .db
        .call_blocking(|c| {
            let first = db::user_by_name(c, "admin")?.unwrap();
            db::delete_user(c, first.id)
        })
        .unwrap();
    let token = server.token(&root);
    let cookie = server.login("root", OLD);
    let refused = server
        .api(
            &token,
            "PATCH",
            "/api/v1/users/root",
            Some(&json!({ "role": "member", "password": NEW })),
        )
        .expect(409);
    assert_eq!(refused.json()["error"], "conflict");
    server.login("root", OLD);
    server.try_login("root", NEW).expect(401);
    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(200);
}

/// Tokens of a user, revoked or not, straight from the database.
fn tokens_of(server: &TestServer, name: &str) -> usize {
    let name = name.to_string();
    server
        .db
        .call_blocking(|c| {
            let user = db::user_by_name(c, &name)?.expect("the user exists");
            db::list_tokens(c, user.id)
        })
        .unwrap()
        .len()
}

/// The guard checks a credential when the headers arrive; the handler reads
/// the body later. A request begun with a stolen session, its body held back
/// until after an admin's reset, must not mint a token then.
#[test]
fn a_token_request_begun_before_a_reset_is_refused_after_it() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let admin = server.token(&root);
    server.user("ada", OLD, SiteRole::Member);
    let stolen = server.login("ada", OLD);

    let origin = format!("http://{}", server.address);
    let body = json!({ "name": "backdoor" }).to_string();
    let held = support::HeldRequest::start(
        server.address,
        "POST",
        "/api/v1/tokens",
        &[
            ("Cookie", stolen.as_str()),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    // Let the guard authenticate the headers before the reset.
    std::thread::sleep(std::time::Duration::from_millis(500));
    server
        .api(
            &admin,
            "PATCH",
            "/api/v1/users/ada",
            Some(&json!({ "password": NEW })),
        )
        .expect(200);

    let reply = held.finish().expect(401);
    assert_eq!(reply.json()["error"], "session_expired");
    assert_eq!(tokens_of(&server, "ada"), 0, "no token was minted");
    let refused = server.audit("token.create").pop().expect("audited");
    assert_eq!(refused.result, "401", "{refused:?}");
}

/// A body held back is not waited for: the request is refused once the
/// body has stalled for the idle timeout, and nothing is made.
#[test]
fn a_stalled_body_is_refused_after_the_idle_timeout() {
    let idle = std::time::Duration::from_secs(1);
    let server = TestServer::start_with(|options| options.body_idle_timeout = idle);
    let ada = server.user("ada", OLD, SiteRole::Member);
    let token = server.token(&ada);
    let body = json!({ "name": "slow" }).to_string();
    let auth = format!("Bearer {token}");
    let started = std::time::Instant::now();
    let reply = support::HeldRequest::start(
        server.address,
        "POST",
        "/api/v1/tokens",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .stall(3);
    let waited = started.elapsed();
    assert!(
        waited >= idle && waited < idle * 10,
        "answered after {waited:?} (idle timeout {idle:?})"
    );
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert_eq!(reply.json()["error"], "body_timeout", "{}", reply.text());
    assert_eq!(tokens_of(&server, "ada"), 1, "only the test's own token");
    // The server is fine afterwards.
    server.api(&token, "GET", "/api/v1/me", None).expect(200);
}

/// The same with a stolen admin token and `POST /api/v1/users`: no backdoor
/// admin once the token's owner has been reset.
#[test]
fn a_user_creation_begun_before_a_reset_is_refused_after_it() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let admin = server.token(&root);
    let eve = server.user("eve", OLD, SiteRole::Admin);
    let stolen = server.token(&eve);

    let auth = format!("Bearer {stolen}");
    let body =
        json!({ "name": "backdoor", "password": "backdoor-password", "role": "admin" }).to_string();
    let held = support::HeldRequest::start(
        server.address,
        "POST",
        "/api/v1/users",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    // The guard marks a token used when it authenticates it: wait for that.
    let started = std::time::Instant::now();
    while server
        .db
        .call_blocking(|c| db::list_tokens(c, eve.id))
        .unwrap()
        .iter()
        .all(|t| t.last_used_at.is_none())
    {
        assert!(started.elapsed() < support::DEADLINE, "the guard never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server
        .api(
            &admin,
            "PATCH",
            "/api/v1/users/eve",
            Some(&json!({ "password": NEW })),
        )
        .expect(200);

    held.finish().expect(401);
    let backdoor = server
        .db
        .call_blocking(|c| db::user_by_name(c, "backdoor"))
        .unwrap();
    assert!(backdoor.is_none(), "{backdoor:?}");
}
