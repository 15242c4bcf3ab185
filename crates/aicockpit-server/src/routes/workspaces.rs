//! Workspaces: list, create, inspect, start, stop, restart, delete, stats,
//! commands, backup downloads, restores from uploads, and sharing.
//!
//! Ownership and sharing live in the server's database; the container
//! settings stay in the workspace manager's records, which the CLI reads too.
//! A member sees only the workspaces they own or that are shared with them.

use std::time::Duration;

use aicockpit_workspace::{CreateRequest, RunOutput, Stats, Workspace};
use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Extension;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{noted, schema, AuditNote, Body, Route};
use crate::auth;
use crate::authz::{Access, Need};
use crate::db::{self, Member, SiteRole, WorkspaceRole};
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use WorkspaceRole::*;
    let route = |method: Method,
                 path: &'static str,
                 need: Need,
                 audit: Option<&'static str>,
                 summary: &'static str,
                 query: &'static [(&'static str, bool, &'static str)],
                 body: Body,
                 response: Body,
                 handler| Route {
        method,
        path,
        need,
        recent_password: false,
        audit,
        summary,
        tag: "workspaces",
        query,
        body,
        response,
        handler,
    };
    vec![
        route(
            Method::GET,
            "/api/v1/workspaces",
            Need::User,
            None,
            "Workspaces you own or that are shared with you (all of them for admins).",
            &[],
            Body::None,
            Body::Json(schema::<Vec<WorkspaceView>>),
            get(list),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces",
            Need::Creator,
            Some("workspace.create"),
            "Create a workspace (and start it unless `start` is false); you become its owner.",
            &[],
            Body::Json(schema::<NewWorkspace>),
            Body::Json(schema::<WorkspaceView>),
            post(create),
        ),
        route(
            Method::GET,
            "/api/v1/workspaces/{id}",
            Need::Workspace(Viewer),
            None,
            "One workspace, with its state as the engine reports it.",
            &[],
            Body::None,
            Body::Json(schema::<WorkspaceView>),
            get(inspect),
        ),
        route(
            Method::DELETE,
            "/api/v1/workspaces/{id}",
            Need::Workspace(Owner),
            Some("workspace.delete"),
            "Delete a workspace's container and record; `?purge=true` also deletes its files.",
            &[(
                "purge",
                false,
                "also delete the workspace's folder (only folders AiCockpit made)",
            )],
            Body::None,
            Body::None,
            axum::routing::delete(remove),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces/{id}/start",
            Need::Workspace(Editor),
            Some("workspace.start"),
            "Start the workspace.",
            &[],
            Body::None,
            Body::Json(schema::<WorkspaceView>),
            post(start),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces/{id}/stop",
            Need::Workspace(Editor),
            Some("workspace.stop"),
            "Stop the workspace (its files stay).",
            &[],
            Body::None,
            Body::Json(schema::<WorkspaceView>),
            post(stop),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces/{id}/restart",
            Need::Workspace(Editor),
            Some("workspace.restart"),
            "Restart the workspace.",
            &[],
            Body::None,
            Body::Json(schema::<WorkspaceView>),
            post(restart),
        ),
        route(
            Method::GET,
            "/api/v1/workspaces/{id}/stats",
            Need::Workspace(Viewer),
            None,
            "CPU, memory and process counts of a running workspace.",
            &[],
            Body::None,
            Body::Json(schema::<StatsView>),
            get(stats),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces/{id}/exec",
            Need::Workspace(Editor),
            Some("workspace.exec"),
            "Run a command to completion in the workspace (killed after `timeout_secs`).",
            &[],
            Body::Json(schema::<ExecBody>),
            Body::Json(schema::<ExecResult>),
            post(exec),
        ),
        route(
            Method::GET,
            "/api/v1/workspaces/{id}/backup",
            Need::Workspace(Owner),
            Some("workspace.backup"),
            "Download a backup of the workspace's files and settings (.tar.gz).",
            &[],
            Body::None,
            Body::Binary,
            get(backup),
        ),
        route(
            Method::POST,
            "/api/v1/workspaces/restore",
            Need::Creator,
            Some("workspace.restore"),
            "Create a workspace from an uploaded backup; you become its owner.",
            &[
                (
                    "name",
                    false,
                    "the new workspace's name (default: the name in the archive)",
                ),
                ("start", false, "start it once restored (default true)"),
            ],
            Body::Binary,
            Body::Json(schema::<WorkspaceView>),
            post(restore),
        ),
        route(
            Method::GET,
            "/api/v1/workspaces/{id}/members",
            Need::Workspace(Viewer),
            None,
            "Who the workspace is shared with, and as what.",
            &[],
            Body::None,
            Body::Json(schema::<Vec<Member>>),
            get(members),
        ),
        // Sharing lets another account in, for good: a recent password.
        Route {
            recent_password: true,
            ..route(
                Method::PUT,
                "/api/v1/workspaces/{id}/members",
                Need::Workspace(Owner),
                Some("workspace.share"),
                "Replace the member list: each user becomes `viewer` or `editor`.",
                &[],
                Body::Json(schema::<Vec<Member>>),
                Body::Json(schema::<Vec<Member>>),
                put(set_members),
            )
        },
    ]
}

/// A workspace as the API shows it: no `env` values, plus the owner and your role.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub name: String,
    /// `running`, `stopped`, `missing`, …
    pub state: String,
    pub image: String,
    pub backend: String,
    pub owner: Option<String>,
    /// Your role: `owner`, `editor` or `viewer` (admins act as owners).
    pub role: Option<WorkspaceRole>,
    pub created_at: u64,
    pub last_used_at: u64,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: u32,
    pub network: String,
    /// Names of the environment variables (values are never shown).
    pub env: Vec<String>,
}

impl WorkspaceView {
    fn new(
        workspace: &Workspace,
        owner: Option<String>,
        role: Option<WorkspaceRole>,
    ) -> WorkspaceView {
        WorkspaceView {
            name: workspace.name.clone(),
            state: workspace.state.name().to_string(),
            image: workspace.image.clone(),
            backend: workspace.backend.name().to_string(),
            owner,
            role,
            created_at: workspace.created_at,
            last_used_at: workspace.last_used_at,
            memory_bytes: workspace.limits.memory_bytes,
            cpus: workspace.limits.cpus,
            pids: workspace.limits.pids,
            network: workspace.network.clone(),
            env: workspace.env.keys().cloned().collect(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    pub name: String,
    pub image: Option<String>,
    /// Size such as `1g`.
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Start it once created (default true).
    pub start: Option<bool>,
    /// Admins only: an existing folder on the server's host to mount at
    /// /workspace instead of a new one. A `.devcontainer/devcontainer.json`
    /// in it is read (image, containerEnv, remoteUser, postCreateCommand);
    /// fields that weaken isolation are refused. The same folder checks as
    /// `aicockpit workspace create --dir` apply.
    pub dir: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsView {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> StatsView {
        StatsView {
            cpu_percent: s.cpu_percent,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            pids: s.pids,
            pids_limit: s.pids_limit,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// The command and its arguments (no shell: pass `["sh", "-c", "…"]` for one).
    pub command: Vec<String>,
    /// Seconds before the command is killed (default 60, at most 3600).
    pub timeout_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecResult {
    /// Output as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
}

impl From<RunOutput> for ExecResult {
    fn from(output: RunOutput) -> ExecResult {
        ExecResult {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exit_code: output.exit_code,
            timed_out: output.timed_out,
        }
    }
}

fn target(name: &str) -> AuditNote {
    AuditNote {
        target: Some(format!("workspace:{name}")),
        ..AuditNote::default()
    }
}

async fn view(
    state: &AppState,
    workspace: &Workspace,
    role: Option<WorkspaceRole>,
) -> Result<WorkspaceView, ApiError> {
    let (name, record_id) = (workspace.name.clone(), workspace.id.clone());
    let owner = state
        .db
        .call(move |c| db::workspace_owner(c, &name, &record_id))
        .await?;
    Ok(WorkspaceView::new(workspace, owner.map(|u| u.name), role))
}

async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Result<axum::Json<Vec<WorkspaceView>>, ApiError> {
    let user = access.principal()?.user.clone();
    let all = state.manager.list()?;
    let user_id = user.id;
    let mine = state
        .db
        .call(move |c| db::workspaces_of(c, user_id))
        .await?;
    let mut out = Vec::new();
    for workspace in all {
        // A row of a predecessor of the name (removed and made again
        // outside the API) grants nothing.
        let role = mine
            .iter()
            .find(|(name, record_id, _)| {
                *name == workspace.name && record_id.as_ref().is_none_or(|id| *id == workspace.id)
            })
            .map(|(_, _, role)| *role)
            .or((user.role == SiteRole::Admin).then_some(WorkspaceRole::Owner));
        if role.is_some() {
            out.push(view(&state, &workspace, role).await?);
        }
    }
    Ok(axum::Json(out))
}

async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Json(request): Json<NewWorkspace>,
) -> Result<Response, ApiError> {
    let user = access.principal()?.user.clone();
    aicockpit_workspace::validate_name(&request.name)?;
    let name = request.name.clone();
    // A host folder is never chosen by a member over the network: only an
    // admin (who administers the host anyway) may name one.
    let dir = match request.dir.filter(|d| !d.trim().is_empty()) {
        Some(_) if user.role != SiteRole::Admin => {
            return Err(ApiError::forbidden(
                "only an admin may create a workspace from a folder on the server's host",
            ))
        }
        Some(dir) if !std::path::Path::new(&dir).is_absolute() => {
            return Err(ApiError::bad_request(format!(
                "{dir}: give the folder's absolute path on the server's host"
            )))
        }
        Some(dir) => {
            // Mounting a host folder reaches the host's files for good
            // (its writes land there): a recent password, as for tokens.
            crate::auth::require_recent_password(
                &state.db,
                access.principal()?,
                state.reauth_after,
            )
            .await?;
            Some(std::path::PathBuf::from(dir))
        }
        None => None,
    };
    let _creating = CREATING.lock().await;
    sweep_stale_rows(&state).await?;
    check_quota(&state, &user).await?;
    // The files a removed workspace left behind are not handed to whoever
    // creates the next one of that name: only an admin may take them up.
    if dir.is_none() && user.role != SiteRole::Admin && state.manager.has_kept_files(&name)? {
        return Err(ApiError::conflict(format!(
            "the files of a removed workspace named {name:?} are kept on the server: \
             choose another name, or ask an admin to create it (taking up those files) \
             or to delete its folder (workspaces/{name} in the server's data folder)"
        )));
    }
    let workspace = state
        .manager
        .create(CreateRequest {
            name: request.name,
            image: request.image,
            memory: request.memory,
            cpus: request.cpus,
            pids: request.pids,
            network: None,
            env: request.env,
            dir,
            start: request.start.unwrap_or(true),
        })
        .await?;
    let (record, record_id, user_id) = (name.clone(), workspace.id.clone(), user.id);
    state
        .db
        .call(move |c| db::claim_workspace(c, &record, user_id, &record_id))
        .await?;
    let body = view(&state, &workspace, Some(WorkspaceRole::Owner)).await?;
    Ok(noted(
        (StatusCode::CREATED, axum::Json(body)),
        target(&name),
    ))
}

/// Refuse one more workspace for a user at `workspaces.max_per_user` (admins
/// are not limited): the workspaces they own and the kept files of those
/// they removed, which stay on the server's disk. Checked under
/// [`CREATING`], after the sweep, so two creations at once cannot both pass.
async fn check_quota(state: &AppState, user: &crate::db::User) -> Result<(), ApiError> {
    let limit = state.config().workspaces.max_per_user;
    let admin = user.role == SiteRole::Admin;
    if admin || limit == 0 {
        return Ok(());
    }
    let user_id = user.id;
    let (owned, kept) = state
        .db
        .call(move |c| Ok((db::owned_count(c, user_id)?, db::kept_files_of(c, user_id)?)))
        .await?;
    // Files an admin deleted since count no more.
    let mut still_kept = 0;
    for (name, dir) in kept {
        if std::fs::symlink_metadata(&dir).is_ok_and(|meta| meta.is_dir()) {
            still_kept += 1;
        } else {
            state
                .db
                .call(move |c| db::forget_kept_files(c, &name))
                .await?;
        }
    }
    crate::quota::check_workspaces(owned, still_kept, limit, admin)
}

/// Held while a workspace is created or restored, so the sweep below and the
/// new workspace's row cannot interleave with another creation.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Forget ownership and sharing rows (and engines) of workspaces that no
/// longer exist (removed with `aicockpit workspace rm`, outside the API), so
/// a new workspace of the same name never inherits them, not even while it
/// is still being made.
async fn sweep_stale_rows(state: &AppState) -> Result<(), ApiError> {
    let live: std::collections::HashMap<String, String> = state
        .manager
        .list()?
        .into_iter()
        .map(|w| (w.name, w.id))
        .collect();
    let stale = state
        .db
        .call(move |c| db::reconcile_workspaces(c, &live))
        .await?;
    for name in stale {
        tracing::info!(workspace = %name, "forgot the rows of a workspace removed outside the server");
        state.sessions.forget(&name).await;
    }
    Ok(())
}

fn role_of(access: &Access) -> Option<WorkspaceRole> {
    access.workspace_role
}

async fn inspect(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<axum::Json<WorkspaceView>, ApiError> {
    let workspace = state.manager.inspect(&id).await?;
    Ok(axum::Json(
        view(&state, &workspace, role_of(&access)).await?,
    ))
}

#[derive(Deserialize)]
struct PurgeQuery {
    #[serde(default)]
    purge: bool,
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PurgeQuery>,
) -> Result<Response, ApiError> {
    // No sweep may drop the row between the record's removal and the row's
    // (the kept files would then count for no one).
    let _creating = CREATING.lock().await;
    state.sessions.forget(&id).await;
    // The index is named by the folder's canonical path, known only while
    // the folder is there.
    let root = state
        .manager
        .get(&id)
        .ok()
        .and_then(|record| record.dir.canonicalize().ok());
    let report = state.manager.remove(&id, query.purge).await?;
    // Again after the removal: a session opened meanwhile made a new engine.
    state.sessions.forget(&id).await;
    if let Some(root) = root {
        state.sessions.discard_index(root).await;
    }
    let name = id.clone();
    let kept_dir = report
        .files_kept
        .as_ref()
        .map(|dir| dir.to_string_lossy().into_owned());
    state
        .db
        .call(move |c| db::remove_workspace(c, &name, kept_dir.as_deref()))
        .await?;
    let mut note = target(&id);
    note.detail = Some(serde_json::json!({ "purge": query.purge }));
    Ok(noted(
        axum::Json(
            serde_json::json!({ "name": report.name, "files_kept": report.files_kept.is_some() }),
        ),
        note,
    ))
}

async fn lifecycle(
    state: &AppState,
    access: &Access,
    id: &str,
    action: &str,
) -> Result<Response, ApiError> {
    let workspace = match action {
        "start" => state.manager.start(id).await?,
        "stop" => state.manager.stop(id).await?,
        _ => state.manager.restart(id).await?,
    };
    Ok(noted(
        axum::Json(view(state, &workspace, role_of(access)).await?),
        target(id),
    ))
}

async fn start(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    lifecycle(&state, &access, &id, "start").await
}

async fn stop(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    lifecycle(&state, &access, &id, "stop").await
}

async fn restart(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    lifecycle(&state, &access, &id, "restart").await
}

async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<StatsView>, ApiError> {
    Ok(axum::Json(state.manager.stats(&id).await?.into()))
}

async fn exec(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Extension(draft): Extension<super::AuditDraft>,
    Path(id): Path<String>,
    Json(body): Json<ExecBody>,
) -> Result<Response, ApiError> {
    // A run may last an hour: it counts as one of the user's connections.
    let limit = state.config().workspaces.max_connections_per_user;
    let _slot = state
        .connections
        .acquire(access.principal()?.user.id, limit)?;
    if body.command.is_empty() {
        return Err(ApiError::bad_request(
            "`command` needs at least the program's name",
        ));
    }
    if !state.manager.backend().isolated() {
        return Err(ApiError::forbidden(
            "the local backend runs commands on the server's host, so the API does not run them; \
             use a Docker engine for workspaces",
        ));
    }
    let timeout = Duration::from_secs(body.timeout_secs.unwrap_or(60).clamp(1, 3600));
    let shown: Vec<String> = body
        .command
        .iter()
        .map(|a| a.chars().take(200).collect())
        .collect();
    // Recorded with the command if the client hangs up before the answer.
    let mut running = target(&id);
    running.detail = Some(serde_json::json!({ "command": shown }));
    draft.set(running);
    // Access withdrawn while it runs (signed out, token revoked or expired,
    // no longer an editor): the command is stopped, as a terminal would
    // close. A client that hangs up stops it too (the run is dropped).
    let done = tokio_util::sync::CancellationToken::new();
    let revoked = super::watch_access(state.clone(), &access, id.clone(), done.clone());
    let _stop_watching = done.drop_guard();
    let output = tokio::select! {
        output = state.manager.run(&id, body.command, timeout) => output?,
        () = revoked.cancelled() => {
            let mut note = target(&id);
            note.detail = Some(serde_json::json!({ "command": shown, "stopped": "access withdrawn" }));
            let refused = ApiError::forbidden(
                "your access to this workspace ended while the command ran \
                 (signed out, token revoked or expired, or no longer an editor): it was stopped",
            );
            return Ok(noted(refused.into_response(), note));
        }
        // The server stops: the run ends here, killed, and says so, rather
        // than being cut at the end of the grace.
        () = state.shutdown.cancelled() => {
            let mut note = target(&id);
            note.detail = Some(serde_json::json!({ "command": shown, "stopped": "server stopping" }));
            let stopped = ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "server_stopping",
                "the server is stopping: the command was stopped; run it again once it is back",
            );
            return Ok(noted(stopped.into_response(), note));
        }
    };
    let mut note = target(&id);
    note.detail = Some(serde_json::json!({ "command": shown, "exit_code": output.exit_code }));
    Ok(noted(axum::Json(ExecResult::from(output)), note))
}

/// A private scratch folder for uploads and downloads (0700, under the data folder).
fn scratch_dir(state: &AppState) -> Result<std::path::PathBuf, ApiError> {
    let dir = state.paths.data_dir.join("server-scratch");
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(ApiError::internal)?;
    }
    Ok(dir)
}

async fn backup(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let dir = scratch_dir(&state)?;
    let archive = dir.join(format!("backup-{}.tar.gz", crate::auth::random_string(16)));
    let result = state.manager.backup(&id, &archive).await;
    let opened = match result {
        Ok(_) => tokio::fs::File::open(&archive)
            .await
            .map_err(ApiError::internal),
        Err(error) => Err(error.into()),
    };
    // The open handle keeps the bytes; the name goes at once.
    let _ = tokio::fs::remove_file(&archive).await;
    let file = opened?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let stream = tokio_util::io::ReaderStream::new(file);
    let mut response = HttpBody::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/gzip".parse().map_err(ApiError::internal)?,
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, length.into());
    }
    let disposition = format!("attachment; filename=\"{id}.tar.gz\"");
    headers.insert(
        header::CONTENT_DISPOSITION,
        disposition.parse().map_err(ApiError::internal)?,
    );
    Ok(noted(response, target(&id)))
}

#[derive(Deserialize)]
struct RestoreQuery {
    name: Option<String>,
    start: Option<bool>,
}

async fn restore(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Query(query): Query<RestoreQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let user = access.principal()?.user.clone();
    let user_id = user.id;
    if let Some(name) = &query.name {
        aicockpit_workspace::validate_name(name)?;
    }
    // Before the upload (checked again under the lock below).
    check_quota(&state, &user).await?;
    let limit = state.manager.options().max_backup_bytes;
    let dir = scratch_dir(&state)?;
    let upload = dir.join(format!("restore-{}.tar.gz", crate::auth::random_string(16)));
    let result = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&upload)
            .await
            .map_err(ApiError::internal)?;
        let mut stream = request.into_body().into_data_stream();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ApiError::body_broke)?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the archive is over workspaces.max_backup_bytes ({limit} bytes)"),
                ));
            }
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        file.flush().await.map_err(ApiError::internal)?;
        if written == 0 {
            return Err(ApiError::bad_request(
                "send the backup archive as the request body",
            ));
        }
        let _creating = CREATING.lock().await;
        sweep_stale_rows(&state).await?;
        check_quota(&state, &user).await?;
        let workspace = state
            .manager
            .restore(&upload, query.name.clone(), query.start.unwrap_or(true))
            .await?;
        let (name, record_id, owner) = (workspace.name.clone(), workspace.id.clone(), user_id);
        state
            .db
            .call(move |c| db::claim_workspace(c, &name, owner, &record_id))
            .await?;
        Ok(workspace)
    }
    .await;
    let _ = tokio::fs::remove_file(&upload).await;
    let workspace = result?;
    let body = view(&state, &workspace, Some(WorkspaceRole::Owner)).await?;
    Ok(noted(
        (StatusCode::CREATED, axum::Json(body)),
        target(&workspace.name),
    ))
}

async fn members(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<Member>>, ApiError> {
    let record_id = state.manager.get(&id)?.id;
    Ok(axum::Json(
        state
            .db
            .call(move |c| {
                // The members of a predecessor of the name are not this one's.
                if db::workspace_owner(c, &id, &record_id)?.is_none() {
                    return Ok(Vec::new());
                }
                db::members(c, &id)
            })
            .await?,
    ))
}

async fn set_members(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Json(list): Json<Vec<Member>>,
) -> Result<Response, ApiError> {
    if list.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 members"));
    }
    if list.iter().any(|m| m.role == WorkspaceRole::Owner) {
        return Err(ApiError::bad_request(
            "members are `viewer` or `editor`; a workspace has one owner",
        ));
    }
    let name = id.clone();
    let members = list.clone();
    let record_id = state.manager.get(&id)?.id;
    // Roles change only if the caller's credential still stands now.
    let outcome = auth::call_as_live(&state.db, access.principal()?, move |c| {
        // Workspaces made by the CLI have no row yet, or a predecessor's of
        // the name (which goes, with its members): the first admin owns them.
        if db::workspace_owner(c, &name, &record_id)?.is_none() {
            if let Some(admin) = db::first_admin(c)? {
                db::claim_workspace(c, &name, admin.id, &record_id)?;
            }
        }
        let owner = db::workspace_owner(c, &name, &record_id)?;
        let mut resolved = Vec::new();
        for member in &members {
            let Some(user) = db::user_by_name(c, &member.user)? else {
                return Ok(Err(ApiError::bad_request(format!(
                    "no user named {:?}",
                    member.user
                ))));
            };
            if owner.as_ref().is_some_and(|o| o.id == user.id) {
                return Ok(Err(ApiError::bad_request(format!(
                    "{} owns the workspace",
                    user.name
                ))));
            }
            resolved.push((user.id, member.role));
        }
        db::set_members(c, &name, &resolved)?;
        Ok(Ok(db::members(c, &name)?))
    })
    .await?;
    let mut note = target(&id);
    note.detail = Some(serde_json::to_value(&list).unwrap_or_default());
    Ok(noted(axum::Json(outcome), note))
}
