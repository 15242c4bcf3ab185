//! A key variable of the server's environment is sent only where the host
//! said: the services API can neither name a variable nor point a service
//! that reads one at another URL. An admin credential used from afar (a
//! token never asked for a password) must not turn into
//! `Authorization: Bearer $AWS_SECRET_ACCESS_KEY` at a host of its choosing.

mod support;

use aicockpit_server::db::SiteRole;
use serde_json::json;
use support::TestServer;

const CONFIG: &str = "[ai]\nactive = \"cloud\"\n\n[[ai.services]]\nname = \"cloud\"\nkind = \"openai\"\n\
                      base_url = \"https://api.openai.com/v1\"\nchat_model = \"gpt-4o-mini\"\napi_key_env = \"CLOUD_KEY\"\n";

#[test]
fn the_api_never_chooses_where_a_host_key_variable_goes() {
    let server = TestServer::start(None);
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let root = server.token(&root);
    std::fs::write(&server.paths.config_file, CONFIG).unwrap();
    let config = || std::fs::read_to_string(&server.paths.config_file).unwrap();

    // A new service may not name a variable.
    let refused = server
        .api(
            &root,
            "POST",
            "/api/v1/services",
            Some(
                &json!({"name": "x", "kind": "custom", "base_url": "https://evil.example/v1",
                         "api_key_env": "AWS_SECRET_ACCESS_KEY"}),
            ),
        )
        .expect(400);
    assert_eq!(refused.json()["error"], "key_variable_on_host");
    assert!(!config().contains("AWS_SECRET_ACCESS_KEY"));

    // Nor may an existing one be given another variable, or be moved while
    // it reads one.
    for change in [
        json!({"api_key_env": "AWS_SECRET_ACCESS_KEY"}),
        json!({"base_url": "https://evil.example/v1"}),
        json!({"kind": "custom"}),
        json!({"base_url": "https://evil.example/v1", "api_key_env": "CLOUD_KEY"}),
    ] {
        let refused = server
            .api(&root, "PUT", "/api/v1/services/cloud", Some(&change))
            .expect(400);
        assert_eq!(refused.json()["error"], "key_variable_on_host", "{change}");
        assert_eq!(config(), CONFIG, "{change} changed the config file");
    }

    // What stays possible: other fields (the same variable sent back, as a
    // form does), and a move with a key typed for the new URL, which
    // replaces the variable.
    server
        .api(
            &root,
            "PUT",
            "/api/v1/services/cloud",
            Some(&json!({"chat_model": "gpt-4.1-mini", "api_key_env": "CLOUD_KEY"})),
        )
        .expect(200);
    assert!(config().contains("gpt-4.1-mini") && config().contains("CLOUD_KEY"));
    let moved = server
        .api(
            &root,
            "PUT",
            "/api/v1/services/cloud",
            Some(&json!({"base_url": "https://other.example/v1", "api_key": "sk-typed-for-other"})),
        )
        .expect(200)
        .json();
    assert_eq!(moved["api_key_env"], json!(null), "{moved}");
    assert_eq!(moved["key_stored"], json!(true), "{moved}");
    assert!(!config().contains("CLOUD_KEY"), "{}", config());
    assert!(!config().contains("sk-typed-for-other"));
}
