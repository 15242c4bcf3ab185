//! The session cookie's name (security review of `aicockpit serve`,
//! "server lows"): over https it is `__Host-aicockpit_session`, which
//! browsers accept only with `Secure`, `Path=/` and no `Domain`, set by the
//! host itself, so a sibling subdomain can neither set nor shadow it. Over
//! plain http on loopback it stays `aicockpit_session` (browsers refuse
//! `__Host-` without `Secure`). The server reads only the name of its mode.

mod support;

use aicockpit_server::db::SiteRole;
use support::{Reply, TestServer};

const PUBLIC: &str = "cockpit.example.com";

/// A call as a browser at the public URL, through the TLS proxy in front.
fn proxied(
    server: &TestServer,
    method: &str,
    target: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Reply {
    let origin = format!("https://{PUBLIC}");
    let mut headers = vec![
        ("Host", PUBLIC),
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    server.call(method, target, &headers, body)
}

#[test]
fn over_https_the_cookie_is_host_prefixed_and_only_that_name_is_read() {
    let server = TestServer::start(Some(&format!("https://{PUBLIC}")));
    server.user("ada", "ada-password-1", SiteRole::Member);
    let login = proxied(
        &server,
        "POST",
        "/api/v1/auth/login",
        None,
        br#"{"name":"ada","password":"ada-password-1"}"#,
    )
    .expect(200);
    let set = login.header("set-cookie").unwrap().to_string();
    assert!(set.starts_with("__Host-aicockpit_session="), "{set}");
    let attributes: Vec<String> = set
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for needed in ["path=/", "secure", "httponly", "samesite=strict"] {
        assert!(attributes.iter().any(|a| a == needed), "{needed} in {set}");
    }
    assert!(!attributes.iter().any(|a| a.starts_with("domain")), "{set}");
    let cookie = login.cookie();
    let value = cookie.split_once('=').unwrap().1;

    let me = proxied(&server, "GET", "/api/v1/me", Some(&cookie), b"").expect(200);
    assert_eq!(me.json()["name"], "ada");
    // The same session under the plain name (as a sibling subdomain could
    // set it for the parent domain) is not read: the caller is anonymous.
    let plain = format!("aicockpit_session={value}");
    let refused = proxied(&server, "GET", "/api/v1/me", Some(&plain), b"").expect(401);
    assert_eq!(refused.json()["error"], "unauthorized");
    // A shadowing plain cookie next to the real one changes nothing.
    let both = format!("aicockpit_session=forged-by-a-sibling; {cookie}");
    proxied(&server, "GET", "/api/v1/me", Some(&both), b"").expect(200);

    // A login link sets the same name.
    let root = server.user("root", "root-password-1", SiteRole::Admin);
    let link = server.link(&root);
    let exchanged = proxied(&server, "GET", &format!("/login?token={link}"), None, b"").expect(303);
    assert!(exchanged.cookie().starts_with("__Host-aicockpit_session="));

    // Logout clears that name, with the same attributes.
    let out = proxied(&server, "POST", "/api/v1/auth/logout", Some(&cookie), b"").expect(204);
    let cleared = out.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("__Host-aicockpit_session=;"),
        "{cleared}"
    );
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Secure"),
        "{cleared}"
    );
}

#[test]
fn over_http_the_cookie_keeps_its_plain_name_and_the_prefixed_one_is_ignored() {
    let server = TestServer::start(None);
    server.user("ada", "ada-password-1", SiteRole::Member);
    let login = server.try_login("ada", "ada-password-1").expect(200);
    let set = login.header("set-cookie").unwrap();
    assert!(set.starts_with("aicockpit_session="), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    let cookie = login.cookie();
    server
        .browser(&cookie, "GET", "/api/v1/me", None)
        .expect(200);
    let value = cookie.split_once('=').unwrap().1;
    let prefixed = format!("__Host-aicockpit_session={value}");
    server
        .browser(&prefixed, "GET", "/api/v1/me", None)
        .expect(401);
}
