//! API tokens expire: 90 days unless their maker chooses 1 to 3650, an
//! expired token is refused like a revoked one (and ends the connections it
//! opened), and tokens made before expiry existed keep working.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use aicockpit_server::db::{self, SiteRole};
use serde_json::json;
use support::{upgrade, TestServer, DEADLINE};

const DAY: i64 = 24 * 60 * 60;

fn expire(server: &TestServer, id: &str, at: Option<i64>) {
    let id = id.to_string();
    server
        .db
        .call_blocking(move |c| {
            c.execute(
                "UPDATE tokens SET expires_at = ?1 WHERE id = ?2",
                rusqlite::params![at, id],
            )?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn tokens_expire_when_their_maker_said_and_are_refused_after() {
    let server = TestServer::start(None);
    let mia = server.user("mia", "mia-password-1", SiteRole::Member);
    let token = server.token(&mia);

    // The default is 90 days; a maker may choose 1 to 3650.
    let made = server
        .api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "ci" })),
        )
        .expect(201)
        .json();
    let now = db::now();
    let expires_at = made["expires_at"].as_i64().unwrap();
    assert!((expires_at - (now + 90 * DAY)).abs() < 60, "{made}");
    let week = server
        .api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "week", "expires_in_days": 7 })),
        )
        .expect(201)
        .json();
    assert!((week["expires_at"].as_i64().unwrap() - (now + 7 * DAY)).abs() < 60);
    for days in [0, 3651] {
        let refused = server.api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "x", "expires_in_days": days })),
        );
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert!(refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("1 to 3650 days"));
    }
    let listed = server
        .api(&token, "GET", "/api/v1/tokens", None)
        .expect(200)
        .json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == week["id"])
        .cloned()
        .unwrap();
    assert_eq!(row["expires_at"], week["expires_at"]);

    // Past its time the token is refused like a revoked one.
    let week_token = week["token"].as_str().unwrap();
    let week_id = week["id"].as_str().unwrap();
    server
        .api(week_token, "GET", "/api/v1/me", None)
        .expect(200);
    expire(&server, week_id, Some(now - 1));
    assert_eq!(
        server.api(week_token, "GET", "/api/v1/me", None).status,
        401
    );

    // A token from before tokens expired (no time) keeps working.
    expire(&server, week_id, None);
    server
        .api(week_token, "GET", "/api/v1/me", None)
        .expect(200);
}

#[test]
fn a_token_made_with_a_token_expires_no_later_than_its_maker() {
    let server = TestServer::start(None);
    let mia = server.user("mia", "mia-password-1", SiteRole::Member);
    let token = server.token(&mia);
    let ask = |token: &str, days: u32| {
        server
            .api(
                token,
                "POST",
                "/api/v1/tokens",
                Some(&json!({ "name": "next", "expires_in_days": days })),
            )
            .expect(201)
            .json()
    };
    let week = ask(&token, 7);
    let week_end = week["expires_at"].as_i64().unwrap();
    // A leaked week-long token cannot renew itself for ten years.
    let renewed = ask(week["token"].as_str().unwrap(), 3650);
    assert_eq!(
        renewed["expires_at"].as_i64().unwrap(),
        week_end,
        "{renewed}"
    );
    // A shorter one is as asked.
    let day = ask(week["token"].as_str().unwrap(), 1);
    assert!(day["expires_at"].as_i64().unwrap() < week_end);
    // A token from before tokens expired makes tokens of the default time at most.
    expire(&server, week["id"].as_str().unwrap(), None);
    let from_old = ask(week["token"].as_str().unwrap(), 3650);
    let default_end = db::now() + 90 * DAY;
    assert!((from_old["expires_at"].as_i64().unwrap() - default_end).abs() < 60);
    // Signed in with the password, the user may choose any time.
    let cookie = server.login("mia", "mia-password-1");
    let long = server
        .browser(
            &cookie,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": "long", "expires_in_days": 3650 })),
        )
        .expect(201)
        .json();
    assert!((long["expires_at"].as_i64().unwrap() - (db::now() + 3650 * DAY)).abs() < 60);
}

/// A member owning the workspace `shop`, and a second token of hers named
/// `name` (the answer to making it: `id`, `token`, `expires_at`).
fn owner_with_a_second_token(server: &TestServer, name: &str) -> serde_json::Value {
    let mia = server.user("mia", "mia-password-1", SiteRole::Member);
    let token = server.token(&mia);
    server.create_workspace(&token, "shop", false).expect(201);
    server
        .api(
            &token,
            "POST",
            "/api/v1/tokens",
            Some(&json!({ "name": name })),
        )
        .expect(201)
        .json()
}

#[test]
fn a_connection_opened_with_a_token_ends_when_the_token_expires() {
    let server = TestServer::start(None);
    let made = owner_with_a_second_token(&server, "editor");
    let editor_token = made["token"].as_str().unwrap();
    let (status, body, stream) = upgrade(&server, editor_token, "/api/v1/workspaces/shop/lsp");
    assert_eq!(status, 101, "{body}");
    let mut stream = stream.unwrap();
    expire(&server, made["id"].as_str().unwrap(), Some(db::now() - 1));
    // The server closes it (a close frame, then the end of the stream).
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(
            Instant::now() < deadline,
            "the connection outlived its token"
        );
    }
}

#[test]
fn a_chat_answer_stops_when_its_token_expires() {
    // A service that takes the question and never answers: the answer's
    // stream would stay open until the AI request's own timeout.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(aicockpit_ai::mock::MockServer::start());
    mock.set_behavior(aicockpit_ai::mock::Behavior::Hang);
    let url = mock.url();
    let server = TestServer::start_with(move |options| {
        options.config.ai.active = Some("local".into());
        options.config.ai.services = vec![aicockpit_config::ServiceConfig {
            name: "local".into(),
            kind: aicockpit_config::ServiceKind::Lmstudio,
            base_url: url,
            chat_model: Some("m".into()),
            completion_model: None,
            api_key_env: None,
            deployment: None,
            api_version: None,
        }];
    });
    // Its config file says the same (a service gets a client only as the
    // file describes it).
    std::fs::write(
        &server.paths.config_file,
        format!(
            "[ai]\nactive = \"local\"\n\n[[ai.services]]\nname = \"local\"\nkind = \"lmstudio\"\n\
             base_url = \"{}\"\nchat_model = \"m\"\n",
            mock.url()
        ),
    )
    .unwrap();
    let made = owner_with_a_second_token(&server, "chat");
    let chat_token = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            expire(&server, &id, Some(db::now() - 1));
        });
        let started = Instant::now();
        let body = json!({ "messages": [{ "role": "user", "content": "Why?" }] }).to_string();
        let reply = server.call(
            "POST",
            "/api/v1/workspaces/shop/chat",
            &[
                ("Authorization", &format!("Bearer {chat_token}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text = reply.text();
        assert!(text.contains("access_withdrawn"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the answer went on after its token expired"
        );
    });
}
