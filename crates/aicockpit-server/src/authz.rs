//! Authorisation: the one function that decides whether a caller may use a
//! route, [`authorize`], and the requirement each route declares, [`Need`].
//!
//! Invariant: every route of the API is registered with a `Need` (see
//! `routes::table`), the request guard calls [`authorize`] for every
//! request before its handler runs, and handlers only refine *what* they do
//! with the [`Access`] it returns (a viewer's terminal is read-only), never
//! *whether* they run.

use axum::http::StatusCode;

use crate::auth::Principal;
use crate::db::{SiteRole, WorkspaceRole};
use crate::error::ApiError;

/// What a route requires of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone, signed in or not (`/healthz`, login).
    Public,
    /// Any signed-in user.
    User,
    /// A user who may create workspaces: admins and members (not auditors).
    Creator,
    /// Site admins.
    Admin,
    /// Admins and auditors (the audit log, metrics).
    AuditReader,
    /// At least this role in the workspace named by the route's `{id}`;
    /// admins act as owners of every workspace.
    Workspace(WorkspaceRole),
}

/// What the caller may do, as decided by [`authorize`].
#[derive(Clone, Debug)]
pub struct Access {
    pub principal: Option<Principal>,
    /// The caller's effective role in the route's workspace, if the route has one.
    pub workspace_role: Option<WorkspaceRole>,
}

impl Access {
    /// The signed-in user (routes other than `Public` always have one).
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// Whether the caller may change the workspace (write files, type in terminals, edit through LSP).
    pub fn can_write(&self) -> bool {
        self.workspace_role
            .is_some_and(|role| role >= WorkspaceRole::Editor)
    }
}

/// Decide whether `principal` may use a route that needs `need`.
/// `workspace_role` is the caller's own role in the route's workspace (from
/// the database), `workspace_exists` whether that workspace exists at all.
///
/// A workspace the caller has no role in is reported as not found, so
/// members cannot probe for other people's workspaces by name.
pub fn authorize(
    principal: Option<Principal>,
    need: Need,
    workspace_role: Option<WorkspaceRole>,
    workspace_exists: bool,
) -> Result<Access, ApiError> {
    if need == Need::Public {
        return Ok(Access {
            principal,
            workspace_role: None,
        });
    }
    let Some(principal) = principal else {
        return Err(ApiError::unauthorized());
    };
    let role = principal.user.role;
    let denied = |what: &str| {
        Err(ApiError::forbidden(format!(
            "{what}; your role is {}",
            role.as_str()
        )))
    };
    match need {
        Need::Public | Need::User => {}
        Need::Creator => {
            if role == SiteRole::Auditor {
                return denied("auditors cannot create workspaces");
            }
        }
        Need::Admin => {
            if role != SiteRole::Admin {
                return denied("only an admin may do this");
            }
        }
        Need::AuditReader => {
            if !matches!(role, SiteRole::Admin | SiteRole::Auditor) {
                return denied("only an admin or an auditor may read this");
            }
        }
        Need::Workspace(required) => {
            let effective = if role == SiteRole::Admin && workspace_exists {
                Some(WorkspaceRole::Owner)
            } else if workspace_exists {
                workspace_role
            } else {
                None
            };
            let Some(effective) = effective else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such workspace, or it is not shared with you",
                ));
            };
            if effective < required {
                return Err(ApiError::forbidden(format!(
                    "this needs the {} role in the workspace; you are {}",
                    required.as_str(),
                    effective.as_str()
                )));
            }
            return Ok(Access {
                principal: Some(principal),
                workspace_role: Some(effective),
            });
        }
    }
    Ok(Access {
        principal: Some(principal),
        workspace_role: None,
    })
}
