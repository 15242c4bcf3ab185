//! The files API's conflict rules under concurrent writers: of two writes
//! with the same `If-Match` exactly one wins however each spells the path,
//! and a rename never replaces what is at its target.

mod support;

use std::sync::{Arc, Barrier};

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::TestServer;

fn put(
    server: &TestServer,
    token: &str,
    path: &str,
    precondition: (&str, &str),
    body: &[u8],
) -> u16 {
    server
        .call(
            "PUT",
            &format!("/api/v1/workspaces/w/files?path={path}"),
            &[("Authorization", &format!("Bearer {token}")), precondition],
            body,
        )
        .status
}

fn setup() -> (TestServer, String) {
    let server = TestServer::start(None);
    let ada = server.user("ada", "ada-password-1", SiteRole::Member);
    let token = server.token(&ada);
    server
        .api(
            &token,
            "POST",
            "/api/v1/workspaces",
            Some(&json!({ "name": "w", "start": false })),
        )
        .expect(201);
    (server, token)
}

#[test]
fn two_spellings_of_a_path_are_one_file_for_if_match() {
    let (server, token) = setup();
    let server = Arc::new(server);
    // Spellings of the same file; the body is large enough that the check
    // and the write of one request overlap the other's without the lock.
    let spellings = ["./f{n}.txt", "f{n}.txt/", ".//f{n}.txt"];
    let body = vec![b'x'; 4 << 20];
    for round in 0..6 {
        let path = format!("f{round}.txt");
        assert_eq!(
            put(&server, &token, &path, ("If-None-Match", "*"), b"v1"),
            200
        );
        let version = {
            let read = server
                .api(
                    &token,
                    "GET",
                    &format!("/api/v1/workspaces/w/files?path={path}"),
                    None,
                )
                .expect(200);
            read.json()["version"].as_str().unwrap().to_string()
        };
        let other = spellings[round % spellings.len()].replace("{n}", &round.to_string());
        let barrier = Arc::new(Barrier::new(2));
        let writers: Vec<_> = [path.clone(), other]
            .into_iter()
            .map(|spelling| {
                let (server, token, barrier, body, version) = (
                    server.clone(),
                    token.clone(),
                    barrier.clone(),
                    body.clone(),
                    version.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    put(
                        &server,
                        &token,
                        &spelling,
                        ("If-Match", &format!("\"{version}\"")),
                        &body,
                    )
                })
            })
            .collect();
        let mut statuses: Vec<u16> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: both writers won or both lost"
        );
    }
}

#[test]
fn a_rename_never_replaces_its_target() {
    let (server, token) = setup();
    let server = Arc::new(server);
    for round in 0..8 {
        let (a, b, target) = (
            format!("a{round}"),
            format!("b{round}"),
            format!("t{round}"),
        );
        for name in [&a, &b] {
            assert_eq!(
                put(
                    &server,
                    &token,
                    name,
                    ("If-None-Match", "*"),
                    name.as_bytes()
                ),
                200
            );
        }
        let barrier = Arc::new(Barrier::new(2));
        let renames: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|from| {
                let (server, token, barrier, target) = (
                    server.clone(),
                    token.clone(),
                    barrier.clone(),
                    target.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    server
                        .api(
                            &token,
                            "POST",
                            "/api/v1/workspaces/w/files/rename",
                            Some(&json!({ "from": from, "to": target })),
                        )
                        .status
                })
            })
            .collect();
        let mut statuses: Vec<u16> = renames.into_iter().map(|r| r.join().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, [204, 409], "round {round}");
        // Both files are still there, one under its old name.
        let listing = server
            .api(&token, "GET", "/api/v1/workspaces/w/files?path=.", None)
            .expect(200)
            .json();
        let names: Vec<&str> = listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .filter(|n| n.ends_with(&round.to_string()))
            .collect();
        assert_eq!(names.len(), 2, "round {round}: {names:?}");
    }
}

/// A folder the container filled with entries is listed in part, and the
/// answer says so.
#[test]
fn a_huge_folder_is_listed_in_part() {
    let (server, token) = setup();
    let folder = server.paths.data_dir.join("workspaces/w/files/many");
    std::fs::create_dir_all(&folder).unwrap();
    let limit = aicockpit_server::routes::files::MAX_LISTING;
    for n in 0..limit + 5 {
        std::fs::write(folder.join(format!("f{n}")), b"").unwrap();
    }
    let listing = server
        .api(&token, "GET", "/api/v1/workspaces/w/files?path=many", None)
        .expect(200)
        .json();
    assert_eq!(listing["entries"].as_array().unwrap().len(), limit);
    assert_eq!(listing["truncated"], json!(true));
    let small = server
        .api(&token, "GET", "/api/v1/workspaces/w/files?path=.", None)
        .expect(200)
        .json();
    assert_eq!(small.get("truncated"), None, "{small}");
}

/// A file over the size limit is refused, and nothing is written.
#[test]
fn a_file_over_the_limit_is_refused() {
    let (server, token) = setup();
    let body = vec![b'x'; (16 << 20) + 1];
    let reply = server.call(
        "PUT",
        "/api/v1/workspaces/w/files?path=big.bin",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("If-None-Match", "*"),
        ],
        &body,
    );
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["error"], "too_large");
    server
        .api(
            &token,
            "GET",
            "/api/v1/workspaces/w/files?path=big.bin",
            None,
        )
        .expect(404);
    assert_eq!(
        put(
            &server,
            &token,
            "ok.bin",
            ("If-None-Match", "*"),
            &body[..16 << 20]
        ),
        200
    );
}
