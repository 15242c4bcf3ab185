//! User administration (admins only): list, create, change role or
//! password, delete.
//!
//! What ends with a change: an admin setting someone else's password is a
//! reset and ends every session, API token and login link of that user
//! (one's own password changes at `POST /api/v1/me/password`, with the
//! current one); a role change ends the user's sessions; a deletion ends
//! everything. The counts go to the audit record.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Extension;
use serde::Deserialize;

use super::{noted, schema, AuditNote, Body, Route};
use crate::auth;
use crate::authz::{Access, Need};
use crate::db::{self, SiteRole, User};
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/api/v1/users",
            need: Need::Admin,
            recent_password: false,
            audit: None,
            summary: "Every user.",
            tag: "users",
            query: &[],
            body: Body::None,
            response: Body::Json(schema::<Vec<User>>),
            handler: get(list),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/users",
            need: Need::Admin,
            recent_password: true,
            audit: Some("user.create"),
            summary: "Create a user with a password and a site role.",
            tag: "users",
            query: &[],
            body: Body::Json(schema::<NewUser>),
            response: Body::Json(schema::<User>),
            handler: post(create),
        },
        Route {
            method: Method::PATCH,
            path: "/api/v1/users/{name}",
            need: Need::Admin,
            recent_password: true,
            audit: Some("user.update"),
            summary: "Change a user's role, or reset someone else's password (a role change ends their sessions; a reset also their API tokens and login links). Your own password changes at POST /api/v1/me/password.",
            tag: "users",
            query: &[],
            body: Body::Json(schema::<UserUpdate>),
            response: Body::Json(schema::<User>),
            handler: patch(update),
        },
        Route {
            method: Method::DELETE,
            path: "/api/v1/users/{name}",
            need: Need::Admin,
            recent_password: true,
            audit: Some("user.delete"),
            summary: "Delete a user (their workspaces must be deleted or given away first).",
            tag: "users",
            query: &[],
            body: Body::None,
            response: Body::None,
            handler: axum::routing::delete(remove),
        },
    ]
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    pub role: SiteRole,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub role: Option<SiteRole>,
    pub password: Option<String>,
}

async fn list(State(state): State<AppState>) -> Result<axum::Json<Vec<User>>, ApiError> {
    Ok(axum::Json(state.db.call(|c| db::list_users(c)).await?))
}

/// Create a user (the API and `aicockpit admin create-user` share this).
pub async fn create_user(
    db_handle: &db::Db,
    name: String,
    password: String,
    role: SiteRole,
) -> Result<User, ApiError> {
    auth::check_user_name(&name)?;
    auth::check_password(&password)?;
    let hash = auth::hash_password_async(password).await?;
    db_handle
        .call(move |c| insert_user(c, &name, &hash, role))
        .await?
}

fn insert_user(
    c: &db::Connection,
    name: &str,
    hash: &str,
    role: SiteRole,
) -> Result<Result<User, ApiError>, db::DbError> {
    if db::user_by_name(c, name)?.is_some() {
        return Ok(Err(ApiError::conflict(format!(
            "a user named {name:?} exists"
        ))));
    }
    Ok(Ok(db::create_user(c, name, Some(hash), role)?))
}

/// `aicockpit admin reset-password` on the server's host: a reset like an
/// admin's through the API (every session, API token and login link of the
/// user ends), recorded in the audit log as `user.update`. `None` when
/// there is no such user.
pub fn reset_password_on_host(
    c: &db::Connection,
    name: &str,
    hash: &str,
) -> Result<Option<db::Revoked>, db::DbError> {
    let Some(user) = db::user_by_name(c, name)? else {
        return Ok(None);
    };
    db::atomically(c, |c| {
        let revoked = db::change_password(c, user.id, hash, db::PasswordChange::Reset)?;
        db::append_host_audit(
            c,
            "user.update",
            format!("user:{}", user.name),
            "aicockpit admin reset-password",
            serde_json::json!({ "password_changed": true, "revoked": revoked }),
        )?;
        Ok(Some(revoked))
    })
}

async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Json(request): Json<NewUser>,
) -> Result<Response, ApiError> {
    let NewUser {
        name,
        password,
        role,
    } = request;
    auth::check_user_name(&name)?;
    auth::check_password(&password)?;
    let hash = auth::hash_password_async(password).await?;
    // Only if the admin's credential still stands now, not just when the
    // request began: a reset may have ended it while the body was coming.
    let user = auth::call_as_live(&state.db, access.principal()?, move |c| {
        insert_user(c, &name, &hash, role)
    })
    .await?;
    Ok(noted(
        (StatusCode::CREATED, axum::Json(user.clone())),
        AuditNote {
            target: Some(format!("user:{}", user.name)),
            detail: Some(serde_json::json!({ "role": user.role })),
            ..AuditNote::default()
        },
    ))
}

async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    Json(request): Json<UserUpdate>,
) -> Result<Response, ApiError> {
    let hash = match request.password {
        Some(password) => {
            auth::check_password(&password)?;
            Some(auth::hash_password_async(password).await?)
        }
        None => None,
    };
    let role = request.role;
    let password_changed = hash.is_some();
    let caller = access.principal()?.clone();
    let lookup = name.clone();
    let (user, revoked) = auth::call_as_live(&state.db, &caller.clone(), move |c| {
        let Some(user) = db::user_by_name(c, &lookup)? else {
            return Ok(Ok(None));
        };
        if let Some(role) = role {
            if user.role == SiteRole::Admin && role != SiteRole::Admin && admins(c)? <= 1 {
                return Ok(Err(ApiError::conflict(
                    "this is the last admin: make another user admin first",
                )));
            }
        }
        if hash.is_some() && user.id == caller.user.id {
            // One's own password changes only with the current one, so a
            // stolen session or token cannot keep the account.
            return Ok(Err(ApiError::bad_request(
                "to change your own password, use POST /api/v1/me/password \
                 with your current password",
            )));
        }
        let mut revoked = db::Revoked::default();
        if let Some(hash) = &hash {
            // Someone else's password: a reset.
            revoked = db::change_password(c, user.id, hash, db::PasswordChange::Reset)?;
        }
        if let Some(role) = role {
            db::set_role(c, user.id, role)?;
            // New powers: old sessions end (tokens act with the new role).
            revoked.sessions += db::revoke_sessions_of(c, user.id)?;
        }
        Ok(Ok(db::user_by_id(c, user.id)?.map(|user| (user, revoked))))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no user named {name:?}")))?;
    Ok(noted(
        axum::Json(user),
        AuditNote {
            target: Some(format!("user:{name}")),
            detail: Some(serde_json::json!({
                "role": role,
                "password_changed": password_changed,
                "revoked": revoked,
            })),
            ..AuditNote::default()
        },
    ))
}

async fn remove(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = name.clone();
    let revoked = auth::call_as_live(&state.db, access.principal()?, move |c| {
        let Some(user) = db::user_by_name(c, &lookup)? else {
            return Ok(Err(ApiError::not_found(format!(
                "no user named {lookup:?}"
            ))));
        };
        let owned: i64 = c.query_row(
            "SELECT count(*) FROM workspaces WHERE owner_id = ?1",
            [user.id],
            |r| r.get(0),
        )?;
        if user.role == SiteRole::Admin && admins(c)? <= 1 {
            return Ok(Err(ApiError::conflict(
                "this is the last admin: make another user admin first",
            )));
        }
        if owned > 0 {
            return Ok(Err(ApiError::conflict(format!(
                "{lookup} owns {owned} workspace(s): delete them first"
            ))));
        }
        // Their credentials end with them. The rows would go with the
        // user (ON DELETE CASCADE) anyway; ending them first does not
        // depend on that, and says what ended in the audit log.
        let revoked = db::revoke_credentials_of(c, user.id)?;
        db::delete_user(c, user.id)?;
        Ok(Ok(revoked))
    })
    .await?;
    Ok(noted(
        StatusCode::NO_CONTENT,
        AuditNote {
            target: Some(format!("user:{name}")),
            detail: Some(serde_json::json!({ "revoked": revoked })),
            ..AuditNote::default()
        },
    ))
}

fn admins(c: &db::Connection) -> Result<i64, db::DbError> {
    Ok(
        c.query_row("SELECT count(*) FROM users WHERE role = 'admin'", [], |r| {
            r.get(0)
        })?,
    )
}
