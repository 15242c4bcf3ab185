//! Workspace names come back: a workspace removed (over the API, or with
//! `aicockpit workspace rm` behind the server's back) and made again under
//! its name is another workspace. Nothing of the old one may reach whoever
//! uses the new one: not its index (symbols, signatures with constants'
//! values, chunk words), not its owner's and members' roles.

mod support;

use std::time::{Duration, Instant};

use aicockpit_server::db::SiteRole;
use serde_json::{json, Value};
use support::TestServer;

const SECRET: &str = "AWS_SECRET_ACCESS_KEY = \"wJalrXUtnFEMIxK7MDENGbPxRfiCYEXAMPLEKEY\"\n";

fn create(server: &TestServer, token: &str, name: &str) {
    server
        .api(
            token,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": name, "start": false })),
        )
        .expect(201);
}

fn write(server: &TestServer, token: &str, name: &str, path: &str, text: &str) {
    let put = server.call(
        "PUT",
        &format!("/api/v1/workspaces/{name}/files?path={path}"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("If-None-Match", "*"),
        ],
        text.as_bytes(),
    );
    assert!(put.status < 300, "{}", put.text());
}

fn search(server: &TestServer, token: &str, name: &str, query: &str) -> Vec<Value> {
    let reply = server
        .api(
            token,
            "GET",
            &format!("/api/v1/workspaces/{name}/search?q={query}&mode=text"),
            None,
        )
        .expect(200);
    reply.json().as_array().cloned().unwrap_or_default()
}

/// Index `secrets.py` in `name` as `token`'s user: searched until it is found.
fn index_a_secret(server: &TestServer, token: &str, name: &str) {
    write(server, token, name, "secrets.py", SECRET);
    let deadline = Instant::now() + Duration::from_secs(60);
    while search(server, token, name, "AWS_SECRET_ACCESS_KEY").is_empty() {
        assert!(Instant::now() < deadline, "the secret was never indexed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn index_folders(server: &TestServer) -> Vec<String> {
    match std::fs::read_dir(server.paths.cache_dir.join("index")) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The new workspace's first searches (before and while its first index
/// runs) find nothing of the old one's files.
fn assert_no_secret(server: &TestServer, token: &str, name: &str) {
    for _ in 0..10 {
        let hits = search(server, token, name, "AWS_SECRET_ACCESS_KEY");
        assert!(
            hits.is_empty(),
            "the new {name} answers from its predecessor's index: {hits:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_purged_workspaces_index_goes_with_it() {
    let server = TestServer::start(None);
    let ada = server.user("ada", "ada-password-1", SiteRole::Member);
    let bob = server.user("bob", "bob-password-1", SiteRole::Member);
    let (ada, bob) = (server.token(&ada), server.token(&bob));
    create(&server, &ada, "proj");
    index_a_secret(&server, &ada, "proj");
    assert_eq!(index_folders(&server).len(), 1, "one index, proj's");

    server
        .api(&ada, "DELETE", "/api/v1/workspaces/proj?purge=true", None)
        .expect(200);
    assert_eq!(
        index_folders(&server),
        Vec::<String>::new(),
        "proj's index is deleted"
    );

    create(&server, &bob, "proj");
    assert_no_secret(&server, &bob, "proj");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_made_again_behind_the_servers_back_gets_neither_index_nor_members() {
    let server = tokio::task::spawn_blocking(|| TestServer::start(None))
        .await
        .unwrap();
    let (root, ada, vic) = tokio::task::block_in_place(|| {
        let root = server.user("root", "root-password-1", SiteRole::Admin);
        let ada = server.user("ada", "ada-password-1", SiteRole::Member);
        let vic = server.user("vic", "vic-password-1", SiteRole::Member);
        let tokens = (server.token(&root), server.token(&ada), server.token(&vic));
        create(&server, &tokens.1, "proj");
        server
            .api(
                &tokens.1,
                "PUT",
                "/api/v1/workspaces/proj/members",
                Some(&json!([{ "user": "vic", "role": "viewer" }])),
            )
            .expect(200);
        index_a_secret(&server, &tokens.1, "proj");
        tokens
    });

    // What `aicockpit workspace rm --purge` and `create` do on the host.
    let mut config = aicockpit_config::Config::default();
    config.workspaces.backend = "local".into();
    let manager = aicockpit_server::open_manager(&config, &server.paths, &mut Vec::new())
        .await
        .unwrap();
    manager.remove("proj", true).await.unwrap();
    manager
        .create(aicockpit_workspace::CreateRequest {
            name: "proj".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    tokio::task::block_in_place(|| {
        // The admin's first searches are not answered from ada's index.
        assert_no_secret(&server, &root, "proj");
        // Ada owned the old one and vic viewed it: the new one is not theirs.
        for token in [&ada, &vic] {
            let listed = server
                .api(token, "GET", "/api/v1/workspaces", None)
                .expect(200)
                .json();
            assert_eq!(listed, json!([]), "{listed}");
            server
                .api(token, "GET", "/api/v1/workspaces/proj", None)
                .expect(404);
            server
                .api(token, "GET", "/api/v1/workspaces/proj/files?path=.", None)
                .expect(404);
        }
        let owner = server
            .api(&root, "GET", "/api/v1/workspaces/proj", None)
            .expect(200)
            .json()["owner"]
            .clone();
        assert_ne!(owner, json!("ada"), "ada is shown as the new proj's owner");
        let members = server
            .api(&root, "GET", "/api/v1/workspaces/proj/members", None)
            .expect(200)
            .json();
        assert_eq!(
            members,
            json!([]),
            "the old proj's members are listed: {members}"
        );
    });
}
