//! The route table and the request guard.
//!
//! Invariant: [`table`] is the only place a route is defined. The axum
//! router, the authorisation requirement of each route and the OpenAPI
//! description (`/api/v1/openapi.json`) are all generated from it, so no
//! route can exist undescribed or unguarded. Every request first passes
//! the `Host` check ([`host_guard`], a layer over the whole router); then
//! the guard ([`guard`]) authenticates, checks `Origin` for cookie requests that change state and
//! for every WebSocket upgrade, calls [`crate::authz::authorize`], records
//! metrics, and appends the audit record of every state-changing call.

pub mod audit;
pub mod auth_routes;
pub mod files;
pub mod lsp;
pub mod meta;
pub mod services;
pub mod terminal;
pub mod users;
pub mod web;
pub mod workspaces;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use crate::auth::{self, Credential};
use crate::authz::{authorize, Access, Need};
use crate::db::{self, AuditRecord, WorkspaceRole};
use crate::error::ApiError;
use crate::state::AppState;

/// One route: where, what it needs, what it does.
pub struct Route {
    pub method: Method,
    /// The axum path template, e.g. `/api/v1/workspaces/{id}`.
    pub path: &'static str,
    pub need: Need,
    /// Called with the session cookie, the user must have proved their
    /// password in that session within the last few minutes
    /// ([`crate::auth::RECENT_PASSWORD`]): routes that make credentials or
    /// users, or point the AI at another endpoint, so a stolen cookie alone
    /// cannot keep or widen its hold. API tokens are not asked.
    pub recent_password: bool,
    /// The audit action name, for routes whose calls are recorded.
    pub audit: Option<&'static str>,
    pub summary: &'static str,
    /// Tag in the OpenAPI description.
    pub tag: &'static str,
    /// Query parameters: (name, required, description).
    pub query: &'static [(&'static str, bool, &'static str)],
    pub body: Body,
    pub response: Body,
    pub handler: MethodRouter<AppState>,
}

/// What a request or response carries, for the OpenAPI description.
#[derive(Clone, Copy)]
pub enum Body {
    None,
    /// JSON of a type with a schema.
    Json(fn(&mut Schemas) -> String),
    /// Any JSON object (described in docs/api.md).
    AnyJson,
    /// Raw bytes (file contents, archives).
    Binary,
    /// Server-sent events.
    EventStream,
    /// A WebSocket upgrade.
    WebSocket,
    Text,
}

/// Named schemas collected for the OpenAPI description.
pub type Schemas = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

/// Register the schema of `T` (and the types it refers to), for [`Body::Json`].
pub fn schema<T: utoipa::ToSchema>(out: &mut Schemas) -> String {
    out.push((T::name().to_string(), T::schema()));
    T::schemas(out);
    T::name().to_string()
}

/// Something for the audit record, set by a handler on its response.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// The user the call was about when nobody is signed in (a login attempt).
    pub user: Option<String>,
    pub target: Option<String>,
    /// Redacted detail: never a password, key or token.
    pub detail: Option<serde_json::Value>,
    /// Overrides the route's action name (a login by link vs by password).
    pub action: Option<&'static str>,
}

/// A response with an audit note attached.
pub fn noted(response: impl IntoResponse, note: AuditNote) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(note);
    response
}

/// The audit note of a call still running, in the request's extensions: a
/// handler that may run long (an `exec`) sets it before it starts, so the
/// record names what ran even when the client hangs up before the answer.
#[derive(Clone, Debug, Default)]
pub struct AuditDraft(Arc<std::sync::Mutex<Option<AuditNote>>>);

impl AuditDraft {
    pub fn set(&self, note: AuditNote) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
    }

    fn take(&self) -> Option<AuditNote> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The record of an audited call that ended without an answer (the
/// handler's future was dropped): written when dropped unless
/// [`Unanswered::answered`] was called, with `result` `"client_closed"`
/// (the client hung up), `"server_stopped"` (cut at the end of a stop's
/// grace) or `"500"` (the handler panicked).
struct Unanswered {
    state: AppState,
    draft: AuditDraft,
    /// Everything but the note and the result; `None` once answered.
    record: Option<(AuditRecord, &'static str)>,
}

impl Unanswered {
    fn answered(mut self) {
        self.record = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some((mut record, action)) = self.record.take() else {
            return;
        };
        let note = self.draft.take().unwrap_or_default();
        record.action = note.action.unwrap_or(action).to_string();
        if let Some(target) = note.target {
            record.target = Some(bounded(target, 512));
        }
        record.detail = note.detail.map(|d| bounded(d.to_string(), 4096));
        record.result = if std::thread::panicking() {
            "500"
        } else if self.state.shutdown.is_cancelled() {
            "server_stopped"
        } else {
            "client_closed"
        }
        .to_string();
        let db = self.state.db.clone();
        let action = record.action.clone();
        // On the server's runtime, which waits for it before it exits.
        let spawned = self.state.detached.spawn(async move {
            if let Err(error) = db.call(move |c| db::append_audit(c, &record)).await {
                tracing::error!(%error, "cannot append to the audit log");
            }
        });
        if !spawned {
            tracing::error!(
                action,
                "a call ended without an answer after the server stopped: not audited"
            );
        }
    }
}

/// The request's id, also returned in `x-request-id`.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The caller's address (the socket peer).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub Option<SocketAddr>);

/// Every route of the server.
pub fn table() -> Vec<Route> {
    let mut routes = Vec::new();
    routes.extend(meta::routes());
    routes.extend(auth_routes::routes());
    routes.extend(users::routes());
    routes.extend(workspaces::routes());
    routes.extend(files::routes());
    routes.extend(terminal::routes());
    routes.extend(lsp::routes());
    routes.extend(services::routes());
    routes.extend(audit::routes());
    routes.extend(web::routes());
    routes
}

/// The application: every route of [`table`] behind [`guard`].
pub fn app(state: AppState) -> Router {
    app_from(state, table())
}

/// The application over a given table (tests swap handlers for stubs).
pub fn app_from(state: AppState, table: Vec<Route>) -> Router {
    let mut router: Router<AppState> = Router::new();
    for route in table {
        router = router.route(route.path, route.handler);
    }
    let hosts = std::sync::Arc::new(state.allowed_hosts.clone());
    router
        .fallback(|| async {
            ApiError::not_found("no such route; the API is described at /api/v1/openapi.json")
        })
        // A route layer runs after routing, so the guard sees the matched route.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .layer(axum::middleware::from_fn_with_state(
            state.body_idle_timeout,
            body_timeout,
        ))
        // Outermost: every request, matched or not, WebSocket upgrades
        // included, passes the Host check before anything else.
        .layer(axum::middleware::from_fn_with_state(hosts, host_guard))
        .with_state(state)
}

/// How long a request body may stall: at most this long between two of
/// its pieces (not for the whole body, so a large upload that keeps moving
/// is fine). A body held back is refused rather than waited for forever.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A WebSocket on which nothing arrives for this long (not even the pong
/// to a ping, sent every third of it) is closed: its client is gone (a
/// laptop asleep, a dropped network), and it would hold its user's
/// connection slot until the kernel gave up on it.
pub const SOCKET_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Give every request body an idle timeout ([`BODY_IDLE_TIMEOUT`] unless
/// the server was started with another). A WebSocket upgrade has no body
/// (its frames come over the upgraded connection, not through this), and
/// server-sent event streams are response bodies, so neither is cut.
async fn body_timeout(
    State(timeout): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    let request = request
        .map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(timeout, body)));
    next.run(request).await
}

/// Refuse a request sent under a name that is not the server's own
/// ([`auth::check_host`]): the DNS-rebinding defence. A layer over a whole
/// router (the API's and the metrics listener's), so no route can miss it.
pub async fn host_guard(
    State(allowed): State<std::sync::Arc<auth::AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match auth::check_host(request.headers(), request.uri(), &allowed) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::debug!(code = error.code, "refused a request under a foreign Host");
            let mut response = error.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

/// Find the table entry of a matched route. A `HEAD` is the route's `GET`:
/// axum runs the `GET` handler for it, so it must meet the same requirement.
fn find(method: &Method, path: &str) -> Option<(Need, Option<&'static str>, bool)> {
    let method = if *method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    // Built once: the table's handlers are not needed here.
    type Spec = (Method, &'static str, Need, Option<&'static str>, bool);
    static SPECS: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
    SPECS
        .get_or_init(|| {
            table()
                .into_iter()
                .map(|r| (r.method, r.path, r.need, r.audit, r.recent_password))
                .collect()
        })
        .iter()
        .find(|(m, p, _, _, _)| m == method && *p == path)
        .map(|(_, _, need, audit, recent)| (*need, *audit, *recent))
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Authenticate, authorise, measure and audit every request.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = auth::random_string(9);
    let method = request.method().clone();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address);
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let route_label = matched.clone().unwrap_or_else(|| "unmatched".to_string());
    let mut handler_draft = None;
    let (mut response, audit_action, access) =
        match decide(&state, &mut request, &method, matched.as_deref(), peer).await {
            Ok((audit_action, access)) => {
                let draft = AuditDraft::default();
                handler_draft = Some(draft.clone());
                request
                    .extensions_mut()
                    .insert(RequestId(request_id.clone()));
                request.extensions_mut().insert(Peer(peer));
                request.extensions_mut().insert(access.clone());
                request.extensions_mut().insert(draft.clone());
                let unanswered = Unanswered {
                    state: state.clone(),
                    draft,
                    record: audit_action.map(|action| {
                        let record = AuditRecord {
                            user: access
                                .principal
                                .as_ref()
                                .map(|p| bounded(p.user.name.clone(), 128)),
                            address: peer.map(|p| p.ip().to_string()),
                            target: Some(bounded(route_label.clone(), 512)),
                            request_id: Some(request_id.clone()),
                            ..AuditRecord::default()
                        };
                        (record, action)
                    }),
                };
                let response = next.run(request).await;
                unanswered.answered();
                (response, audit_action, Some(access))
            }
            Err((refusal, audit_action)) => (refusal, audit_action, None),
        };
    let status = response.status();
    // Labels from a fixed set: a client cannot make new series with odd methods.
    let method_label = match method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD => method.as_str(),
        _ => "OTHER",
    };
    state.metrics.record(
        method_label,
        &route_label,
        status.as_u16(),
        started.elapsed(),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    // No framing (clickjacking), no type sniffing, no referrer, and API
    // answers (file contents, tokens) never cached.
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if route_label.starts_with("/api/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // Every state-changing call is recorded, refused or not, and so is every
    // route flagged for audit (terminal opens, logins).
    if let Some(action) = audit_action {
        let note = response
            .extensions()
            .get::<AuditNote>()
            .cloned()
            .or_else(|| handler_draft.and_then(|d| d.take()))
            .unwrap_or_default();
        let user = access
            .as_ref()
            .and_then(|a| a.principal.as_ref())
            .map(|p| p.user.name.clone())
            .or(note.user);
        // Bounded: an anonymous caller cannot write megabytes into the
        // append-only log (a login with a huge "name").
        let record = AuditRecord {
            user: user.map(|u| bounded(u, 128)),
            address: peer.map(|p| p.ip().to_string()),
            action: note.action.unwrap_or(action).to_string(),
            target: note
                .target
                .or_else(|| Some(route_label.clone()))
                .map(|t| bounded(t, 512)),
            result: if status.is_success() || status.is_redirection() || status.as_u16() == 101 {
                "ok".to_string()
            } else {
                format!("{}", status.as_u16())
            },
            request_id: Some(request_id.clone()),
            detail: note.detail.map(|d| bounded(d.to_string(), 4096)),
            ..AuditRecord::default()
        };
        if let Err(error) = state.db.call(move |c| db::append_audit(c, &record)).await {
            tracing::error!(%error, "cannot append to the audit log");
        }
    }
    tracing::debug!(%method, route = %route_label, status = status.as_u16(), request_id, "request");
    response
}

/// `text` cut to at most `max` bytes (on a character boundary), marked when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The routes that run a shell or a command in a workspace: on the local
/// backend, on the server's own host.
const HOST_SHELL_ROUTES: [&str; 2] = [
    "/api/v1/workspaces/{id}/terminal",
    "/api/v1/workspaces/{id}/exec",
];

/// The decision for one request: the audit action to record and the access granted.
async fn decide(
    state: &AppState,
    request: &mut Request,
    method: &Method,
    matched: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<(Option<&'static str>, Access), (Response, Option<&'static str>)> {
    let Some(path) = matched else {
        // No route matched: the fallback answers 404 to anyone.
        return Ok((
            None,
            Access {
                principal: None,
                workspace_role: None,
            },
        ));
    };
    let Some((need, audit, recent_password)) = find(method, path) else {
        // Fail closed: a method the table does not list never reaches a handler.
        return Err((
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}; see /api/v1/openapi.json"),
            )
            .into_response(),
            None,
        ));
    };
    let audit_action = audit.or(auth::is_state_changing(method).then_some("request"));
    let fail = |error: ApiError| (error.into_response(), audit_action);
    let principal =
        match auth::authenticate(&state.db, request.headers(), state.secure_cookies).await {
            Ok(principal) => principal,
            // A public route (logging in above all) works with an ended
            // session's cookie or a revoked token still in the browser: there
            // the caller is simply anonymous, or nobody could log in again.
            Err(error) if need == Need::Public && error.status == StatusCode::UNAUTHORIZED => None,
            Err(error) => return Err(fail(error)),
        };
    // Refused from here on, the record names who was refused (a stolen
    // cookie's use shows under its user).
    let who = principal.as_ref().map(|p| p.user.name.clone());
    let fail = |error: ApiError| {
        let note = AuditNote {
            user: who.clone(),
            ..AuditNote::default()
        };
        (noted(error, note), audit_action)
    };
    let websocket = is_websocket_upgrade(request);
    if let Some(principal) = &principal {
        if matches!(principal.credential, Credential::Session(_))
            && (websocket || auth::is_state_changing(method))
        {
            auth::check_origin(request.headers(), &state.allowed_origins).map_err(fail)?;
        }
    } else if websocket && need != Need::Public {
        // Browsers cannot set headers on a WebSocket; but an upgrade from a
        // foreign page must never ride on anything, so check it anyway.
        auth::check_origin(request.headers(), &state.allowed_origins).map_err(fail)?;
    }
    let (workspace_role, exists) = match need {
        Need::Workspace(_) => {
            let name = workspace_param(request)
                .await
                .ok_or_else(|| fail(ApiError::internal(format!("route {path} has no {{id}}"))))?;
            let record_id = state.manager.get(&name).ok().map(|w| w.id);
            let exists = record_id.is_some();
            let role = match (&principal, record_id) {
                (Some(principal), Some(record_id)) => {
                    let user_id = principal.user.id;
                    state
                        .db
                        .call(move |c| db::workspace_role(c, &name, &record_id, user_id))
                        .await
                        .map_err(|e| fail(e.into()))?
                }
                _ => None,
            };
            (role, exists)
        }
        _ => (None::<WorkspaceRole>, false),
    };
    let _ = peer;
    let access = authorize(principal, need, workspace_role, exists).map_err(fail)?;
    // On the local backend a terminal or a command runs on the server's
    // host, as the server's user (its database and `aicockpit admin` in
    // reach): as much as any credential, so the same rule.
    let host_shell = HOST_SHELL_ROUTES.contains(&path)
        && state.manager.backend().kind() == aicockpit_workspace::BackendKind::Local;
    if recent_password || host_shell {
        if let Some(principal) = &access.principal {
            auth::require_recent_password(&state.db, principal, state.reauth_after)
                .await
                .map_err(fail)?;
        }
    }
    Ok((audit_action, access))
}

async fn workspace_param(request: &mut Request) -> Option<String> {
    use axum::RequestExt as _;
    let params = request.extract_parts::<RawPathParams>().await.ok()?;
    params
        .iter()
        .find(|(key, _)| *key == "id")
        .map(|(_, value)| value.to_string())
}

/// How often a long-lived connection (an LSP or terminal WebSocket)
/// re-checks that its caller may still use it.
pub const REVALIDATE_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Watch a long-lived connection's access: the returned token is cancelled
/// as soon as the credential is revoked or expires, the user loses their
/// role in the workspace (or, for a writable connection, drops below
/// editor), or the workspace is gone. Stops when `done` is cancelled.
pub fn watch_access(
    state: AppState,
    access: &Access,
    workspace: String,
    done: tokio_util::sync::CancellationToken,
) -> tokio_util::sync::CancellationToken {
    let revoked = tokio_util::sync::CancellationToken::new();
    let Some(principal) = access.principal.clone() else {
        revoked.cancel();
        return revoked;
    };
    let writable = access.can_write();
    let signal = revoked.clone();
    // The workspace record the connection was made for: one made again
    // under the name is another workspace.
    let Ok(record_id) = state.manager.get(&workspace).map(|w| w.id) else {
        revoked.cancel();
        return revoked;
    };
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REVALIDATE_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = every.tick() => {}
            }
            match still_allowed(&state, &principal, &workspace, &record_id, writable).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(user = %principal.user.name, %workspace, "access withdrawn: closing the connection");
                    signal.cancel();
                    return;
                }
                // A database hiccup is not a revocation; try again next time.
                Err(error) => tracing::warn!(%error, "cannot re-check a connection's access"),
            }
        }
    });
    revoked
}

async fn still_allowed(
    state: &AppState,
    principal: &auth::Principal,
    workspace: &str,
    record_id: &str,
    writable: bool,
) -> Result<bool, ApiError> {
    if state.manager.get(workspace).map(|w| w.id).ok().as_deref() != Some(record_id) {
        return Ok(false);
    }
    let credential = principal.credential.clone();
    let (user_id, name, record_id) = (
        principal.user.id,
        workspace.to_string(),
        record_id.to_string(),
    );
    let verdict = state
        .db
        .call(move |c| {
            let user = match &credential {
                Credential::Session(hash) => db::session_user(c, hash)?,
                Credential::Token(id) => db::token_lookup(c, id)?.map(|(_, user)| user),
            };
            let Some(user) = user.filter(|u| u.id == user_id) else {
                return Ok(false);
            };
            if user.role == db::SiteRole::Admin {
                return Ok(true);
            }
            let role = db::workspace_role(c, &name, &record_id, user.id)?;
            Ok(match role {
                None => false,
                Some(role) => !writable || role >= WorkspaceRole::Editor,
            })
        })
        .await?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_request_needs_what_its_get_needs() {
        for route in table().into_iter().filter(|r| r.method == Method::GET) {
            assert_eq!(
                find(&Method::HEAD, route.path).map(|(need, _, _)| need),
                Some(route.need),
                "HEAD {}",
                route.path
            );
        }
        assert!(find(&Method::HEAD, "/api/v1/tokens/{token_id}").is_none());
    }
}
