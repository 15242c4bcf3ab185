//! A workspace removed without purge keeps its files on the server; the
//! next workspace of that name would take them up. Over the API that is
//! for admins only: another member creating the name must not read the
//! previous owner's files.

mod support;

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::TestServer;

#[test]
fn kept_files_are_not_handed_to_the_next_creator_of_the_name() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let ada = server.user("ada", "ada-password-1", SiteRole::Member);
    let bob = server.user("bob", "bob-password-1", SiteRole::Member);
    let (root, ada, bob) = (server.token(&root), server.token(&ada), server.token(&bob));
    let create = |token: &str| {
        server.api(
            token,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": "notes", "start": false })),
        )
    };
    create(&ada).expect(201);
    let put = server.call(
        "PUT",
        "/api/v1/workspaces/notes/files?path=secret.txt",
        &[
            ("Authorization", &format!("Bearer {ada}")),
            ("If-None-Match", "*"),
        ],
        b"ada's secret",
    );
    assert!(put.status < 300, "{}", put.text());
    server
        .api(&ada, "DELETE", "/api/v1/workspaces/notes", None)
        .expect(200);

    let refused = create(&bob).expect(409);
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("kept"), "{message}");
    // Nothing of ada's reached bob.
    server
        .api(
            &bob,
            "GET",
            "/api/v1/workspaces/notes/files?path=secret.txt",
            None,
        )
        .expect(404);

    // An admin may take the files up.
    create(&root).expect(201);
    let read = server
        .api(
            &root,
            "GET",
            "/api/v1/workspaces/notes/files?path=secret.txt",
            None,
        )
        .expect(200);
    assert_eq!(read.json()["content"], "ada's secret");
}
