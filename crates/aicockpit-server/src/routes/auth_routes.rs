//! Signing in and out, the caller's own identity, API tokens, and the
//! one-time login link's exchange for a session cookie.

use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::{noted, schema, AuditNote, Body, Peer, Route};
use crate::auth::{self, Credential};
use crate::authz::{Access, Need};
use crate::db::{self, TokenInfo, User};
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::POST,
            path: "/api/v1/auth/login",
            need: Need::Public,
            recent_password: false,
            audit: Some("auth.login"),
            summary: "Log in with a name and password, or a one-time login token; sets the session cookie.",
            tag: "auth",
            query: &[],
            body: Body::Json(schema::<LoginRequest>),
            response: Body::Json(schema::<User>),
            // A login body is small: a few KiB is plenty.
            handler: post(login).layer(axum::extract::DefaultBodyLimit::max(8 * 1024)),
        },
        Route {
            method: Method::GET,
            path: "/login",
            need: Need::Public,
            recent_password: false,
            audit: Some("auth.login_link"),
            summary: "Exchange a one-time login link for a session cookie and go to the home page.",
            tag: "auth",
            query: &[("token", true, "the one-time token printed at first start or by `aicockpit admin login-link`")],
            body: Body::None,
            response: Body::Text,
            handler: get(login_link),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/auth/logout",
            need: Need::User,
            recent_password: false,
            audit: Some("auth.logout"),
            summary: "End the current browser session (its cookie stops working at once).",
            tag: "auth",
            query: &[],
            body: Body::None,
            response: Body::None,
            handler: post(logout),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/auth/confirm",
            need: Need::User,
            recent_password: false,
            audit: Some("auth.confirm"),
            summary: "Prove your password again in this browser session, for the routes that ask for a recent one (403 reauth_required).",
            tag: "auth",
            query: &[],
            body: Body::Json(schema::<ConfirmRequest>),
            response: Body::None,
            handler: post(confirm).layer(axum::extract::DefaultBodyLimit::max(8 * 1024)),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/me",
            need: Need::User,
            recent_password: false,
            audit: None,
            summary: "The signed-in user.",
            tag: "auth",
            query: &[],
            body: Body::None,
            response: Body::Json(schema::<User>),
            handler: get(me),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/me/password",
            need: Need::User,
            recent_password: false,
            audit: Some("user.password"),
            summary: "Change your own password; needs the current one. Every session and login link of yours ends (this browser gets a new session cookie); your API tokens too with end_tokens.",
            tag: "auth",
            query: &[],
            body: Body::Json(schema::<OwnPasswordChange>),
            response: Body::None,
            // Two passwords: a few KiB is plenty.
            handler: post(change_own_password).layer(axum::extract::DefaultBodyLimit::max(8 * 1024)),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/tokens",
            need: Need::User,
            recent_password: false,
            audit: None,
            summary: "Your API tokens (ids and names; the secrets are never shown again).",
            tag: "auth",
            query: &[],
            body: Body::None,
            response: Body::Json(schema::<Vec<TokenInfo>>),
            handler: get(list_tokens),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/tokens",
            need: Need::User,
            recent_password: true,
            audit: Some("token.create"),
            summary: "Create an API token; the response is the only time its secret is shown.",
            tag: "auth",
            query: &[],
            body: Body::Json(schema::<NewToken>),
            response: Body::Json(schema::<CreatedToken>),
            handler: post(create_token),
        },
        Route {
            method: Method::DELETE,
            path: "/api/v1/tokens/{token_id}",
            need: Need::User,
            recent_password: false,
            audit: Some("token.revoke"),
            summary: "Revoke one of your API tokens.",
            tag: "auth",
            query: &[],
            body: Body::None,
            response: Body::None,
            handler: delete(revoke_token),
        },
    ]
}

/// Either `name` and `password`, or `token` (a one-time login token).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// Your password, to confirm it in this session.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub password: String,
}

/// A change of one's own password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnPasswordChange {
    /// The password you sign in with now. Left out only by a user who has
    /// none yet (the first `admin`, signed in by a login link).
    pub current_password: Option<String>,
    /// The new password (the same rules as any password).
    pub new_password: String,
    /// End all your API tokens too (default: they stay).
    #[serde(default)]
    pub end_tokens: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. `ci`.
    pub name: String,
    /// How many days it works: 1 to 3650 (default 90).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// `acp_<id>_<secret>`: shown once, store it now.
    pub token: String,
}

fn with_cookie(state: &AppState, response: impl IntoResponse, cookie: &str) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    let _ = state;
    response
}

async fn login(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    Json(request): Json<LoginRequest>,
) -> Response {
    let address = peer.0.map(|a| a.ip());
    // Only a well-formed name is recorded (and counted): an anonymous caller
    // cannot write arbitrary text into the audit log or the limiter.
    let attempted = request
        .name
        .clone()
        .filter(|name| auth::check_user_name(name).is_ok());
    let note = |detail: serde_json::Value| AuditNote {
        user: attempted.clone(),
        detail: Some(detail),
        ..AuditNote::default()
    };
    let session_address = peer.0.map(|a| a.ip().to_string());
    // The user and the new session's id.
    let result: Result<(User, String), ApiError> = async {
        match (request.name, request.password, request.token) {
            (Some(name), Some(password), None) => {
                if auth::check_user_name(&name).is_err() || password.len() > 1024 {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "bad_credentials",
                        "wrong name or password",
                    ));
                }
                if let Err(wait) = state.limiter.begin(&name, address) {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("too many failed logins; try again in {wait} s"),
                    )
                    .with_retry_after(wait));
                }
                let lookup = name.clone();
                let found = state
                    .db
                    .call(move |c| {
                        Ok(match db::user_by_name(c, &lookup)? {
                            Some(user) => {
                                let hash = db::password_hash(c, user.id)?;
                                Some((user, hash))
                            }
                            None => None,
                        })
                    })
                    .await?;
                // Verify against a dummy hash for unknown users, so timing does not tell names apart.
                let (user, stored) = match found {
                    Some((user, Some(hash))) => (Some(user), hash),
                    _ => (None, dummy_hash().to_string()),
                };
                let verified = stored.clone();
                let ok = auth::verify_password_async(password, stored).await?;
                let wrong = || {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "bad_credentials",
                        "wrong name or password",
                    )
                };
                match user {
                    Some(user) if ok => {
                        // Only while the hash is still the one just checked:
                        // a reset during the (slow) check starts nothing.
                        let user_id = user.id;
                        let session = state
                            .db
                            .call(move |c| {
                                auth::start_session_after_password(
                                    c,
                                    user_id,
                                    &verified,
                                    session_address.as_deref(),
                                )
                            })
                            .await?
                            .ok_or_else(wrong)?;
                        state.limiter.succeeded(&name, address);
                        Ok((user, session))
                    }
                    // The attempt was counted when it began.
                    _ => Err(wrong()),
                }
            }
            (None, None, Some(token)) => consume_link(&state, &token, peer).await,
            _ => Err(ApiError::bad_request(
                "send {\"name\", \"password\"} or {\"token\"}",
            )),
        }
    }
    .await;
    match result {
        Ok((user, session)) => {
            let cookie = auth::session_cookie(&session, state.secure_cookies);
            let body = axum::Json(user.clone());
            noted(
                with_cookie(&state, body, &cookie),
                AuditNote {
                    user: Some(user.name.clone()),
                    ..AuditNote::default()
                },
            )
        }
        Err(error) => {
            let code = error.code;
            noted(error, note(serde_json::json!({ "error": code })))
        }
    }
}

/// Use a login link and start its session in one transaction: the user
/// and the session's id.
async fn consume_link(
    state: &AppState,
    token: &str,
    peer: Peer,
) -> Result<(User, String), ApiError> {
    let address = peer.0.map(|a| a.ip());
    // Guessing links is rate-limited like passwords, per address.
    if token.len() > 256 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_link",
            "this is not a login link's token",
        ));
    }
    if let Err(wait) = state.limiter.begin_link(address) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed logins; try again in {wait} s"),
        )
        .with_retry_after(wait));
    }
    let token = token.to_string();
    let session_address = address.map(|a| a.to_string());
    match state
        .db
        .call(move |c| auth::start_session_by_link(c, &token, session_address.as_deref()))
        .await?
    {
        Some(started) => {
            state.limiter.link_succeeded(address);
            Ok(started)
        }
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_link",
            "this login link was already used or has expired: print a new one with \
                 `aicockpit admin login-link` on the server",
        )),
    }
}

/// A valid argon2id hash of a random password, computed once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password(&auth::random_string(16)).unwrap_or_default())
}

#[derive(Deserialize)]
struct LinkQuery {
    token: String,
}

async fn login_link(
    State(state): State<AppState>,
    Extension(peer): Extension<Peer>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("this URL needs ?token=").into_response();
    };
    match consume_link(&state, &query.token, peer).await {
        Ok((user, session)) => {
            let cookie = auth::session_cookie(&session, state.secure_cookies);
            // 303 to the home page: the token leaves the address bar and history.
            let response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]);
            noted(
                with_cookie(&state, response, &cookie),
                AuditNote {
                    user: Some(user.name),
                    ..AuditNote::default()
                },
            )
        }
        Err(error) => error.into_response(),
    }
}

async fn logout(State(state): State<AppState>, Extension(access): Extension<Access>) -> Response {
    let principal = match access.principal() {
        Ok(p) => p.clone(),
        Err(e) => return e.into_response(),
    };
    if let Credential::Session(hash) = principal.credential {
        if let Err(error) = state.db.call(move |c| db::revoke_session(c, &hash)).await {
            return ApiError::from(error).into_response();
        }
    }
    with_cookie(
        &state,
        StatusCode::NO_CONTENT,
        &auth::clear_session_cookie(state.secure_cookies),
    )
}

/// `POST /api/v1/auth/confirm`: the password checked like a login
/// (rate-limited as for a password change: [`check_own_password`]), and
/// the session marked as having proved it now, if the password is still
/// the one checked.
async fn confirm(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Extension(peer): Extension<Peer>,
    Json(request): Json<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let caller = access.principal()?.clone();
    let Credential::Session(session) = caller.credential.clone() else {
        return Err(ApiError::bad_request(
            "only a browser session confirms a password; API tokens are never asked to",
        ));
    };
    let address = peer.0.map(|a| a.ip());
    let user_id = caller.user.id;
    let Some(stored) = state
        .db
        .call(move |c| db::password_hash(c, user_id))
        .await?
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no_password",
            "your account has no password yet: open a new login link (`aicockpit admin login-link` \
             on the server) and set a password on your Account page right after",
        ));
    };
    check_own_password(
        &state,
        &caller,
        address,
        request.password,
        &stored,
        "the password is wrong",
    )
    .await?;
    let confirmed = state
        .db
        .call(move |c| db::confirm_session(c, &session, &stored))
        .await?;
    if !confirmed {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_expired",
            "the session ended or the password changed meanwhile: log in again",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn me(Extension(access): Extension<Access>) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(access.principal()?.user.clone()))
}

/// Check a signed-in caller's password against the stored hash, counted
/// by the limiter under the caller's budget
/// ([`auth::Principal::password_budget`]) and address, apart from the
/// login budgets (the attempt is counted when it begins; a right password
/// gives it back).
async fn check_own_password(
    state: &AppState,
    caller: &auth::Principal,
    address: Option<std::net::IpAddr>,
    password: String,
    stored: &str,
    wrong: &'static str,
) -> Result<(), ApiError> {
    let wrong = || ApiError::new(StatusCode::FORBIDDEN, "wrong_password", wrong);
    if password.len() > 1024 {
        return Err(wrong());
    }
    let budget = caller.password_budget();
    if let Err(wait) = state.limiter.begin_own_password(&budget, address) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many wrong passwords; try again in {wait} s"),
        )
        .with_retry_after(wait));
    }
    if !auth::verify_password_async(password, stored.to_string()).await? {
        return Err(wrong());
    }
    state.limiter.own_password_succeeded(&budget, address);
    Ok(())
}

/// `POST /api/v1/me/password`. The current password is checked like a
/// login ([`check_own_password`]), so a stolen session or
/// token cannot set a password its owner does not know. Every session of
/// the user ends, the caller's too: a browser caller gets a new session
/// in the answer, so a stolen copy of its cookie stops working. The new
/// hash is stored only while the stored one is still the one just checked
/// and the caller's credential still stands.
async fn change_own_password(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Extension(peer): Extension<Peer>,
    Json(request): Json<OwnPasswordChange>,
) -> Result<Response, ApiError> {
    let caller = access.principal()?.clone();
    let address = peer.0.map(|a| a.ip());
    let OwnPasswordChange {
        current_password,
        new_password,
        end_tokens,
    } = request;
    auth::check_password(&new_password)?;
    let user_id = caller.user.id;
    let stored = state
        .db
        .call(move |c| db::password_hash(c, user_id))
        .await?;
    match (&stored, current_password) {
        (Some(stored), Some(current)) => {
            check_own_password(
                &state,
                &caller,
                address,
                current,
                stored,
                "the current password is wrong",
            )
            .await?;
        }
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "send your current password as `current_password`",
            ))
        }
        // No password yet (a login-link-only account): nothing to check,
        // so only a browser session that used its link recently may set
        // the first one, not a stale or stolen session, nor a token.
        (None, _) => {
            // (Fails closed: an error reading the session is "not fresh".)
            let fresh = matches!(caller.credential, Credential::Session(_))
                && auth::require_recent_password(&state.db, &caller, state.reauth_after)
                    .await
                    .is_ok();
            if !fresh {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "link_required",
                    "your account has no password yet: open a new login link \
                     (`aicockpit admin login-link` on the server) and set one right after",
                ));
            }
        }
    }
    let hash = auth::hash_password_async(new_password).await?;
    let in_browser = matches!(caller.credential, Credential::Session(_));
    let session_address = address.map(|a| a.to_string());
    let (revoked, session) = auth::call_as_live(&state.db, &caller, move |c| {
        // A reset or another change since the check wins: this one is
        // refused rather than undoing it.
        if db::password_hash(c, user_id)? != stored {
            return Ok(Err(ApiError::conflict(
                "your password was changed meanwhile: sign in again and retry",
            )));
        }
        let revoked =
            db::change_password(c, user_id, &hash, db::PasswordChange::Own { end_tokens })?;
        // The browser that made the change stays signed in, on a new session.
        let session = if in_browser {
            auth::start_session_after_password(c, user_id, &hash, session_address.as_deref())?
        } else {
            None
        };
        Ok(Ok((revoked, session)))
    })
    .await?;
    let response = match session {
        Some(session) => with_cookie(
            &state,
            StatusCode::NO_CONTENT,
            &auth::session_cookie(&session, state.secure_cookies),
        ),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    Ok(noted(
        response,
        AuditNote {
            target: Some(format!("user:{}", caller.user.name)),
            detail: Some(serde_json::json!({ "revoked": revoked })),
            ..AuditNote::default()
        },
    ))
}

async fn list_tokens(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<axum::Json<Vec<TokenInfo>>, ApiError> {
    let user_id = access.principal()?.user.id;
    Ok(axum::Json(
        state.db.call(move |c| db::list_tokens(c, user_id)).await?,
    ))
}

async fn create_token(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Json(request): Json<NewToken>,
) -> Result<Response, ApiError> {
    let caller = access.principal()?;
    let user_id = caller.user.id;
    let name = request.name.trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request(
            "a token needs a name of 1 to 100 bytes",
        ));
    }
    let days = auth::token_days(request.expires_in_days).map_err(ApiError::bad_request)?;
    // Made with a token: it expires no later than that token (one from
    // before tokens expired counts as expiring after the default time).
    let maker = match &caller.credential {
        auth::Credential::Token(id) => Some(id.clone()),
        auth::Credential::Session(_) => None,
    };
    let label = name.clone();
    // Minted only if the caller's credential still stands now: the body
    // may have come after a reset that ended it.
    let auth::MadeToken {
        token,
        id,
        expires_at,
    } = auth::call_as_live(&state.db, caller, move |c| {
        let not_after = match &maker {
            Some(id) => Some(db::token_expires_at(c, id)?.flatten().unwrap_or_else(|| {
                db::now().saturating_add(i64::from(auth::TOKEN_DAYS_DEFAULT) * 24 * 60 * 60)
            })),
            None => None,
        };
        Ok(Ok(auth::create_token_until(
            c, user_id, &label, days, not_after,
        )?))
    })
    .await?;
    Ok(noted(
        (
            StatusCode::CREATED,
            axum::Json(CreatedToken {
                id: id.clone(),
                name,
                expires_at,
                token,
            }),
        ),
        AuditNote {
            target: Some(format!("token:{id}")),
            ..AuditNote::default()
        },
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(token_id): Path<String>,
) -> Result<Response, ApiError> {
    let user_id = access.principal()?.user.id;
    let id = token_id.clone();
    if state
        .db
        .call(move |c| db::revoke_token(c, user_id, &id))
        .await?
    {
        Ok(noted(
            StatusCode::NO_CONTENT,
            AuditNote {
                target: Some(format!("token:{token_id}")),
                ..AuditNote::default()
            },
        ))
    } else {
        Err(ApiError::not_found("you have no live token with that id"))
    }
}
