//! The files of a workspace over HTTP: folder listings, reads, writes with
//! optimistic concurrency, renames, folders and deletes, all through
//! `WorkspaceFiles` (directory handles, no symlink followed, bounded sizes).
//!
//! A file's version is a hash of its bytes, sent as a strong `ETag`. A
//! write must say what it expects: `If-Match: <version>` to replace that
//! version, or `If-None-Match: *` to create a file that must not exist yet.
//! A mismatch is a 409 and the file is left as it was. Writes of one path
//! through this server are serialised, so two API writers can never both
//! win; a process inside the container can still change the file at any
//! time, which the next write's check then catches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aicockpit_workspace::{EntryKind, FileEntry, WorkspaceFiles};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{noted, schema, AuditNote, Body, Route};
use crate::authz::Need;
use crate::db::WorkspaceRole;
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use WorkspaceRole::*;
    let path_query: &'static [(&'static str, bool, &'static str)] = &[(
        "path",
        false,
        "a path relative to /workspace (default: the root folder)",
    )];
    vec![
        Route {
            method: Method::GET,
            path: "/api/v1/workspaces/{id}/files",
            need: Need::Workspace(Viewer),
            recent_password: false,
            audit: None,
            summary: "A folder's entries, or a file's content and version (also in `ETag`).",
            tag: "files",
            query: path_query,
            body: Body::None,
            response: Body::Json(schema::<FileView>),
            handler: get(read),
        },
        Route {
            method: Method::PUT,
            path: "/api/v1/workspaces/{id}/files",
            need: Need::Workspace(Editor),
            recent_password: false,
            audit: Some("file.write"),
            summary: "Write a file: the body is its bytes; needs `If-Match: <version>` or `If-None-Match: *`.",
            tag: "files",
            query: path_query,
            body: Body::Binary,
            response: Body::Json(schema::<Written>),
            handler: axum::routing::put(write),
        },
        Route {
            method: Method::DELETE,
            path: "/api/v1/workspaces/{id}/files",
            need: Need::Workspace(Editor),
            recent_password: false,
            audit: Some("file.delete"),
            summary: "Delete a file or a folder with its contents (`If-Match` honoured for files).",
            tag: "files",
            query: path_query,
            body: Body::None,
            response: Body::None,
            handler: axum::routing::delete(remove),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/workspaces/{id}/files/rename",
            need: Need::Workspace(Editor),
            recent_password: false,
            audit: Some("file.rename"),
            summary: "Rename or move a file or folder; refuses to replace an existing one.",
            tag: "files",
            query: &[],
            body: Body::Json(schema::<RenameBody>),
            response: Body::None,
            handler: post(rename),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/workspaces/{id}/files/folder",
            need: Need::Workspace(Editor),
            recent_password: false,
            audit: Some("file.mkdir"),
            summary: "Create a folder (and its parents).",
            tag: "files",
            query: &[],
            body: Body::Json(schema::<FolderBody>),
            response: Body::None,
            handler: post(folder),
        },
    ]
}

/// A folder listing or a file.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FileView {
    pub path: String,
    /// `file` or `dir`.
    pub kind: String,
    /// For folders.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub entries: Option<Vec<FileEntry>>,
    /// For files: `utf-8` or `base64` (bytes that are not UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// For folders of more than [`MAX_LISTING`] entries: `true`, and
    /// `entries` holds that many of them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The most entries a folder listing returns.
pub const MAX_LISTING: usize = 10_000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Written {
    pub path: String,
    pub version: String,
    pub size: u64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    pub from: String,
    pub to: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderBody {
    pub path: String,
}

#[derive(Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: String,
}

/// A file's version: the first 16 bytes of its SHA-256, in hex.
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(&crate::auth::sha256(bytes)[..16])
}

/// One lock per (workspace, path), so a check and its write are one step for API writers.
type PathLocks = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// The lock of a path, by its one spelling: `f.txt`, `./f.txt`, `f.txt/`
/// and `.//f.txt` are one file and one lock, so two writers with the same
/// `If-Match` cannot both win by spelling the path apart.
fn path_lock(workspace: &str, path: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ApiError> {
    static LOCKS: Mutex<Option<PathLocks>> = Mutex::new(None);
    let key = aicockpit_workspace::normalized_path(path)?;
    let mut guard = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    // Drop locks nobody holds, so the map stays small.
    if map.len() > 4096 {
        map.retain(|_, lock| Arc::strong_count(lock) > 1);
    }
    Ok(map.entry((workspace.to_string(), key)).or_default().clone())
}

async fn with_files<T: Send + 'static>(
    state: &AppState,
    id: &str,
    work: impl FnOnce(WorkspaceFiles) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let files = state.manager.files(id)?;
    tokio::task::spawn_blocking(move || work(files))
        .await
        .map_err(ApiError::internal)?
}

fn note(id: &str, path: &str) -> AuditNote {
    AuditNote {
        target: Some(format!("workspace:{id}:{path}")),
        ..AuditNote::default()
    }
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Response, ApiError> {
    let path = query.path.clone();
    let view = with_files(&state, &id, move |files| match files.kind_of(&path)? {
        None => Err(ApiError::not_found(format!(
            "{path}: no such file or folder"
        ))),
        Some(EntryKind::Dir) => {
            let (entries, truncated) = files.list_bounded(&path, MAX_LISTING)?;
            Ok(FileView {
                path: path.clone(),
                kind: "dir".into(),
                entries: Some(entries),
                encoding: None,
                content: None,
                size: None,
                version: None,
                truncated,
            })
        }
        Some(EntryKind::Symlink) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "symlink",
            format!("{path}: a symbolic link, which the files API never follows"),
        )),
        Some(EntryKind::File) => {
            let bytes = files.read(&path)?;
            let version = version_of(&bytes);
            let size = bytes.len() as u64;
            let (encoding, content) = match String::from_utf8(bytes) {
                Ok(text) => ("utf-8", text),
                Err(error) => (
                    "base64",
                    base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
                ),
            };
            Ok(FileView {
                path: path.clone(),
                kind: "file".into(),
                entries: None,
                encoding: Some(encoding.into()),
                content: Some(content),
                size: Some(size),
                version: Some(version),
                truncated: false,
            })
        }
    })
    .await?;
    let etag = view.version.as_ref().map(|v| format!("\"{v}\""));
    let mut response = axum::Json(view).into_response();
    if let Some(etag) = etag.and_then(|e| e.parse().ok()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// What a write expects to find.
enum Expect {
    Version(String),
    Absent,
}

fn expectation(headers: &HeaderMap) -> Result<Option<Expect>, ApiError> {
    if let Some(value) = headers.get(header::IF_MATCH) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request("If-Match is not readable text"))?
            .trim();
        let value = value.strip_prefix("W/").unwrap_or(value).trim_matches('"');
        return Ok(Some(Expect::Version(value.to_string())));
    }
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        if value.to_str().is_ok_and(|v| v.trim() == "*") {
            return Ok(Some(Expect::Absent));
        }
        return Err(ApiError::bad_request(
            "If-None-Match on a write must be `*`",
        ));
    }
    Ok(None)
}

fn conflict(path: &str, current: Option<String>) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "version_conflict",
        match current {
            Some(version) => format!(
                "{path} changed since you read it (it is now version {version}); nothing was written: \
                 read it again, merge, and write with the new version"
            ),
            None => format!("{path} no longer exists; nothing was written"),
        },
    )
}

/// A file's new bytes, read no further than the file size limit: a body
/// over it is `413` as soon as it is, not after the server held the whole
/// request (up to the 64 MiB every route allows).
async fn read_file_body(body: axum::body::Body, limit: u64) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ApiError::body_broke)?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the file is over the files API's {limit}-byte limit"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

async fn write(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PathQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let expect = expectation(&headers)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "say what you expect to replace: `If-Match: <version>` (from a read) or `If-None-Match: *` for a new file",
        )
    })?;
    let path = query.path.clone();
    if path.trim_matches('/').is_empty() {
        return Err(ApiError::bad_request("`path` names no file"));
    }
    let body = read_file_body(body, state.manager.options().max_file_bytes).await?;
    let lock = path_lock(&id, &path)?;
    let _held = lock.lock().await;
    let written = with_files(&state, &id, move |files| {
        let current = match files.kind_of(&path)? {
            None => None,
            Some(EntryKind::File) => Some(version_of(&files.read(&path)?)),
            Some(EntryKind::Dir) => return Err(ApiError::conflict(format!("{path} is a folder"))),
            Some(EntryKind::Symlink) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "symlink",
                    format!("{path}: a symbolic link, which the files API never writes through"),
                ))
            }
        };
        match (&expect, &current) {
            (Expect::Version(want), Some(have)) if want == have => {}
            (Expect::Absent, None) => {}
            _ => return Err(conflict(&path, current)),
        }
        files.write(&path, &body)?;
        Ok(Written {
            path: path.clone(),
            version: version_of(&body),
            size: body.len() as u64,
        })
    })
    .await?;
    let etag = format!("\"{}\"", written.version);
    let audit = note(&id, &written.path);
    let mut response = axum::Json(written).into_response();
    if let Ok(value) = etag.parse() {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(noted(response, audit))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PathQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expect = expectation(&headers)?;
    let path = query.path.clone();
    if path.trim_matches('/').is_empty() {
        return Err(ApiError::bad_request(
            "the workspace's root folder cannot be deleted",
        ));
    }
    let lock = path_lock(&id, &path)?;
    let _held = lock.lock().await;
    with_files(&state, &id, move |files| {
        if let Some(Expect::Version(want)) = &expect {
            let current = match files.kind_of(&path)? {
                Some(EntryKind::File) => Some(version_of(&files.read(&path)?)),
                _ => None,
            };
            if current.as_ref() != Some(want) {
                return Err(conflict(&path, current));
            }
        }
        files.remove(&path)?;
        Ok(())
    })
    .await?;
    Ok(noted(StatusCode::NO_CONTENT, note(&id, &query.path)))
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> Result<Response, ApiError> {
    let (from, to) = (body.from.clone(), body.to.clone());
    // Both paths' locks, in one order (no deadlock with a rename the other
    // way): a write checked against either waits for the move.
    let mut locks = [
        (
            aicockpit_workspace::normalized_path(&from)?,
            path_lock(&id, &from)?,
        ),
        (
            aicockpit_workspace::normalized_path(&to)?,
            path_lock(&id, &to)?,
        ),
    ];
    locks.sort_by(|a, b| a.0.cmp(&b.0));
    let _first = locks[0].1.lock().await;
    let _second = if locks[0].0 == locks[1].0 {
        None
    } else {
        Some(locks[1].1.lock().await)
    };
    with_files(&state, &id, move |files| {
        if files.kind_of(&from)?.is_none() {
            return Err(ApiError::not_found(format!(
                "{from}: no such file or folder"
            )));
        }
        let exists = || ApiError::conflict(format!("{to} exists already; delete it first"));
        if files.kind_of(&to)?.is_some() {
            return Err(exists());
        }
        // Made meanwhile (by the container): still never replaced.
        match files.rename(&from, &to) {
            Err(aicockpit_workspace::FileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Err(exists())
            }
            other => Ok(other?),
        }
    })
    .await?;
    let mut audit = note(&id, &body.from);
    audit.detail = Some(serde_json::json!({ "to": body.to }));
    Ok(noted(StatusCode::NO_CONTENT, audit))
}

async fn folder(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<FolderBody>,
) -> Result<Response, ApiError> {
    let path = body.path.clone();
    with_files(&state, &id, move |files| Ok(files.create_dir(&path)?)).await?;
    Ok(noted(StatusCode::CREATED, note(&id, &body.path)))
}
