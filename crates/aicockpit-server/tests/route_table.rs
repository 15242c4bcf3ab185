//! The route × role table: every route of the server, called by every kind
//! of caller through the real guard and authorisation function, with each
//! handler replaced by a stub so destructive routes can be walked safely.
//! The expected minimum role of each route is written out here, apart from
//! the code's own `Need` values, so a changed requirement fails this test.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use aicockpit_config::{Config, Paths};
use aicockpit_server::auth;
use aicockpit_server::db::{self, SiteRole, WorkspaceRole};
use aicockpit_server::routes::{self, Route};
use aicockpit_server::state::{AppState, StateInner};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// The name the fixture's server answers to (requests under others are refused).
const HOST: &str = "127.0.0.1:1";

/// Who may call each route, as the specification says (docs/api.md).
fn specification() -> BTreeMap<(&'static str, &'static str), &'static str> {
    let rows: &[(&str, &str, &str)] = &[
        ("GET", "/healthz", "public"),
        ("GET", "/metrics", "audit"),
        ("GET", "/api/v1/openapi.json", "public"),
        ("GET", "/api/v1/status", "user"),
        ("GET", "/", "public"),
        ("POST", "/api/v1/auth/login", "public"),
        ("GET", "/login", "public"),
        ("POST", "/api/v1/auth/logout", "user"),
        ("POST", "/api/v1/auth/confirm", "user"),
        ("GET", "/api/v1/me", "user"),
        ("POST", "/api/v1/me/password", "user"),
        ("GET", "/api/v1/tokens", "user"),
        ("POST", "/api/v1/tokens", "user"),
        ("DELETE", "/api/v1/tokens/{token_id}", "user"),
        ("GET", "/api/v1/users", "admin"),
        ("POST", "/api/v1/users", "admin"),
        ("PATCH", "/api/v1/users/{name}", "admin"),
        ("DELETE", "/api/v1/users/{name}", "admin"),
        ("GET", "/api/v1/workspaces", "user"),
        ("POST", "/api/v1/workspaces", "creator"),
        ("GET", "/api/v1/workspaces/{id}", "viewer"),
        ("DELETE", "/api/v1/workspaces/{id}", "owner"),
        ("POST", "/api/v1/workspaces/{id}/start", "editor"),
        ("POST", "/api/v1/workspaces/{id}/stop", "editor"),
        ("POST", "/api/v1/workspaces/{id}/restart", "editor"),
        ("GET", "/api/v1/workspaces/{id}/stats", "viewer"),
        ("POST", "/api/v1/workspaces/{id}/exec", "editor"),
        ("GET", "/api/v1/workspaces/{id}/backup", "owner"),
        ("POST", "/api/v1/workspaces/restore", "creator"),
        ("GET", "/api/v1/workspaces/{id}/members", "viewer"),
        ("PUT", "/api/v1/workspaces/{id}/members", "owner"),
        ("GET", "/api/v1/workspaces/{id}/files", "viewer"),
        ("PUT", "/api/v1/workspaces/{id}/files", "editor"),
        ("DELETE", "/api/v1/workspaces/{id}/files", "editor"),
        ("POST", "/api/v1/workspaces/{id}/files/rename", "editor"),
        ("POST", "/api/v1/workspaces/{id}/files/folder", "editor"),
        ("GET", "/api/v1/workspaces/{id}/terminal", "viewer"),
        ("GET", "/api/v1/workspaces/{id}/terminals", "viewer"),
        ("GET", "/api/v1/workspaces/{id}/lsp", "viewer"),
        ("GET", "/api/v1/workspaces/{id}/search", "viewer"),
        ("POST", "/api/v1/workspaces/{id}/chat", "viewer"),
        ("GET", "/api/v1/services", "user"),
        ("POST", "/api/v1/services", "admin"),
        ("PUT", "/api/v1/services/{name}", "admin"),
        ("DELETE", "/api/v1/services/{name}", "admin"),
        ("POST", "/api/v1/services/{name}/test", "admin"),
        ("POST", "/api/v1/services/{name}/activate", "admin"),
        ("GET", "/api/v1/audit", "audit"),
        ("GET", "/assets/{file}", "public"),
    ];
    rows.iter().map(|(m, p, who)| ((*m, *p), *who)).collect()
}

/// The callers: a name, their site role, their role in the workspace `w1`.
const CALLERS: &[(&str, SiteRole, Option<WorkspaceRole>)] = &[
    ("root", SiteRole::Admin, None),
    ("olga", SiteRole::Member, Some(WorkspaceRole::Owner)),
    ("ed", SiteRole::Member, Some(WorkspaceRole::Editor)),
    ("vic", SiteRole::Member, Some(WorkspaceRole::Viewer)),
    ("oscar", SiteRole::Member, None),
    ("audrey", SiteRole::Auditor, None),
];

/// Whether the specification lets a caller in.
fn allowed(who: &str, site: SiteRole, role: Option<WorkspaceRole>) -> bool {
    let admin = site == SiteRole::Admin;
    let at_least = |want: WorkspaceRole| admin || role.is_some_and(|r| r >= want);
    match who {
        "public" | "user" => true,
        "creator" => site != SiteRole::Auditor,
        "admin" => admin,
        "audit" => matches!(site, SiteRole::Admin | SiteRole::Auditor),
        "viewer" => at_least(WorkspaceRole::Viewer),
        "editor" => at_least(WorkspaceRole::Editor),
        "owner" => at_least(WorkspaceRole::Owner),
        other => panic!("unknown requirement {other}"),
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "w1")
        .replace("{name}", "someone")
        .replace("{token_id}", "0123456789ab")
}

async fn fixture(dir: &std::path::Path) -> (AppState, BTreeMap<&'static str, String>) {
    let paths = Paths::from_vars(|name| match name {
        "AICOCKPIT_CONFIG" => Some(dir.join("config.toml")),
        "AICOCKPIT_CACHE_DIR" => Some(dir.join("cache")),
        "AICOCKPIT_DATA_DIR" => Some(dir.join("data")),
        _ => None,
    })
    .unwrap();
    let mut config = Config::default();
    config.workspaces.backend = "local".into();
    let mut warnings = Vec::new();
    let manager = aicockpit_server::open_manager(&config, &paths, &mut warnings)
        .await
        .unwrap();
    let w1 = manager
        .create(aicockpit_workspace::CreateRequest {
            name: "w1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let db = aicockpit_server::open_db(&paths).unwrap();
    let tokens = db
        .call_blocking(|c| {
            let mut tokens = BTreeMap::new();
            let mut owner = None;
            let mut members = Vec::new();
            for (name, site, role) in CALLERS {
                let user = db::create_user(c, name, None, *site)?;
                let token = auth::create_token(c, user.id, "test", auth::TOKEN_DAYS_DEFAULT)?.token;
                tokens.insert(*name, token);
                match role {
                    Some(WorkspaceRole::Owner) => owner = Some(user.id),
                    Some(role) => members.push((user.id, *role)),
                    None => {}
                }
            }
            db::insert_workspace(c, "w1", owner.unwrap(), &w1.id)?;
            db::set_members(c, "w1", &members)?;
            Ok(tokens)
        })
        .unwrap();
    let state = AppState(Arc::new(StateInner {
        db,
        manager: Arc::new(manager),
        paths: paths.clone(),
        config: RwLock::new(config.clone()),
        limiter: auth::LoginLimiter::default(),
        allowed_origins: vec!["http://127.0.0.1:1".into()],
        allowed_hosts: auth::AllowedHosts {
            names: vec![HOST.into()],
            literals_at_port: None,
        },
        public_url: "http://127.0.0.1:1".into(),
        secure_cookies: false,
        body_idle_timeout: routes::BODY_IDLE_TIMEOUT,
        reauth_after: auth::RECENT_PASSWORD,
        socket_idle_timeout: routes::SOCKET_IDLE_TIMEOUT,
        warnings,
        metrics: Default::default(),
        shutdown: Default::default(),
        started: Instant::now(),
        sessions: aicockpit_server::engines::Engines::new(config, paths),
        connections: Default::default(),
        detached: Default::default(),
        terminal_shells: aicockpit_server::quota::Connections::new(
            aicockpit_server::quota::Kind::Terminals,
        ),
    }));
    (state, tokens)
}

/// The real table with every handler replaced by a stub that says it was reached.
fn stubbed(state: AppState) -> axum::Router {
    let table: Vec<Route> = routes::table()
        .into_iter()
        .map(|mut route| {
            route.handler = axum::routing::on(
                axum::routing::MethodFilter::try_from(route.method.clone()).unwrap(),
                || async { (StatusCode::IM_A_TEAPOT, "reached") },
            );
            route
        })
        .collect();
    routes::app_from(state, table)
}

/// The routes a browser session may call only with a recently proved
/// password (docs/api.md, "Recent password"): they make credentials or
/// users, or change where code and keys are sent.
#[test]
fn the_routes_that_ask_for_a_recent_password_are_the_specified_ones() {
    let expected = [
        ("POST", "/api/v1/tokens"),
        ("POST", "/api/v1/users"),
        ("PATCH", "/api/v1/users/{name}"),
        ("DELETE", "/api/v1/users/{name}"),
        ("POST", "/api/v1/services"),
        ("PUT", "/api/v1/services/{name}"),
        ("DELETE", "/api/v1/services/{name}"),
        ("POST", "/api/v1/services/{name}/activate"),
        ("PUT", "/api/v1/workspaces/{id}/members"),
    ];
    let in_code: std::collections::BTreeSet<(String, String)> = routes::table()
        .iter()
        .filter(|r| r.recent_password)
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let expected: std::collections::BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(in_code, expected);
}

#[tokio::test]
async fn every_route_by_every_role_matches_the_specification() {
    let dir = tempfile::tempdir().unwrap();
    let (state, tokens) = fixture(dir.path()).await;
    let spec = specification();
    let table = routes::table();
    // The specification and the code list the same routes.
    let in_code: Vec<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    for (method, path) in &in_code {
        assert!(
            spec.contains_key(&(method.as_str(), path.as_str())),
            "{method} {path} is in the code but not in this test's specification"
        );
    }
    assert_eq!(
        in_code.len(),
        spec.len(),
        "routes in the specification but not in the code"
    );
    let app = stubbed(state);
    let (checked, failures) = walk(&app, &tokens, |role| role).await;
    assert!(checked > 300, "{checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A workspace removed and made again under its name outside the API (with
/// `aicockpit workspace rm` and `create`, the server not told) is another
/// workspace: the owner, editors and viewers of the old one have no role in
/// it, on any route.
#[tokio::test]
async fn a_workspace_made_again_outside_the_api_owes_its_predecessors_members_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (state, tokens) = fixture(dir.path()).await;
    let old = state.manager.get("w1").unwrap().id;
    state.manager.remove("w1", true).await.unwrap();
    let new = state
        .manager
        .create(aicockpit_workspace::CreateRequest {
            name: "w1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    assert_ne!(old, new);
    let app = stubbed(state);
    let (checked, failures) = walk(&app, &tokens, |_| None).await;
    assert!(checked > 300, "{checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every route of the specification by every caller, whose role in `w1`
/// is `role_now(their role in the fixture)`; the failures.
async fn walk(
    app: &axum::Router,
    tokens: &BTreeMap<&'static str, String>,
    role_now: impl Fn(Option<WorkspaceRole>) -> Option<WorkspaceRole>,
) -> (usize, Vec<String>) {
    let spec = specification();
    let mut failures = Vec::new();
    let mut checked = 0;
    for ((method, path), who) in &spec {
        let callers = CALLERS.iter().map(|(n, s, r)| (Some(*n), *s, *r)).chain([(
            None,
            SiteRole::Member,
            None,
        )]);
        for (name, site, role) in callers {
            let role = role_now(role);
            let mut request = Request::builder()
                .method(*method)
                .uri(concrete(path))
                .header("host", HOST);
            if let Some(name) = name {
                request = request.header("authorization", format!("Bearer {}", tokens[name]));
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let expected = match name {
                None => *who == "public",
                Some(_) => allowed(who, site, role),
            };
            let reached = status == StatusCode::IM_A_TEAPOT;
            checked += 1;
            if reached != expected {
                failures.push(format!(
                    "{method} {path} as {}: expected {}, got {status}",
                    name.unwrap_or("anonymous"),
                    if expected { "allowed" } else { "refused" }
                ));
            }
            if !reached {
                let wanted = match name {
                    None => vec![StatusCode::UNAUTHORIZED],
                    // Outsiders learn nothing about other people's workspaces.
                    Some(_)
                        if path.contains("{id}") && role.is_none() && site != SiteRole::Admin =>
                    {
                        vec![StatusCode::NOT_FOUND]
                    }
                    Some(_) => vec![StatusCode::FORBIDDEN],
                };
                if !wanted.contains(&status) {
                    failures.push(format!(
                        "{method} {path} as {}: refused with {status}, expected {wanted:?}",
                        name.unwrap_or("anonymous")
                    ));
                }
            }
        }
    }
    (checked, failures)
}

#[tokio::test]
async fn a_wrong_or_revoked_token_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (state, tokens) = fixture(dir.path()).await;
    let app = stubbed(state.clone());
    let good = tokens["root"].clone();
    let mut wrong = good.clone();
    wrong.pop();
    wrong.push(if good.ends_with('x') { 'y' } else { 'x' });
    let id = good.split('_').nth(1).unwrap().to_string();
    let user_id = state
        .db
        .call_blocking(|c| Ok(db::user_by_name(c, "root")?.unwrap().id))
        .unwrap();
    state
        .db
        .call_blocking(|c| db::revoke_token(c, user_id, &id))
        .unwrap();
    for token in [wrong, good, "acp_zz".into(), "garbage".into()] {
        for route in routes::table()
            .iter()
            .filter(|r| r.need != aicockpit_server::authz::Need::Public)
        {
            let request = Request::builder()
                .method(route.method.clone())
                .uri(concrete(route.path))
                .header("host", HOST)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {token:?}",
                route.method,
                route.path
            );
        }
    }
}
