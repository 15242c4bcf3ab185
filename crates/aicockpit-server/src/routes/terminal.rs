//! Terminals over WebSockets.
//!
//! `GET /api/v1/workspaces/{id}/terminal?session=&cols=&rows=`: binary
//! frames carry the terminal's bytes both ways; text frames carry JSON
//! control messages. From the server: `{"type":"session","id",…}` first,
//! `{"type":"exit","code"}` when the shell ends, `{"type":"shutdown"}` when
//! the server stops, `{"type":"error","message"}`. From the client:
//! `{"type":"resize","cols","rows"}`. Reattaching with the same `session`
//! replays the last 64 KiB first. Viewers may only watch a session that is
//! already open; what they type is dropped. The server pings every 30 s.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aicockpit_workspace::terminal::TerminalSession;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::{noted, schema, AuditNote, Body, Route};
use crate::authz::{Access, Need};
use crate::db::{SiteRole, WorkspaceRole};
use crate::error::ApiError;
use crate::state::AppState;

/// How often a connection is pinged, for an idle timeout of `idle`: three
/// pings go unanswered before it is closed (and proxies see traffic).
pub fn ping_interval(idle: Duration) -> Duration {
    (idle / 3).max(Duration::from_millis(10))
}
/// Whether `send` finished, and well, within `idle`: a client gone with its
/// buffers full would otherwise hold the send (and its connection slot)
/// until the kernel gave up on it.
pub async fn sent_within<E>(
    idle: Duration,
    send: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    matches!(tokio::time::timeout(idle, send).await, Ok(Ok(())))
}

/// The largest frame a client may send.
const MAX_FRAME_BYTES: usize = 1 << 20;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/api/v1/workspaces/{id}/terminal",
            need: Need::Workspace(WorkspaceRole::Viewer),
            recent_password: false,
            audit: Some("terminal.open"),
            summary: "A terminal over a WebSocket (see docs/api.md); viewers watch read-only.",
            tag: "terminals",
            query: &[
                (
                    "session",
                    false,
                    "reattach to this session (its last 64 KiB are replayed first)",
                ),
                ("cols", false, "columns of a new terminal (default 80)"),
                ("rows", false, "rows of a new terminal (default 24)"),
            ],
            body: Body::None,
            response: Body::WebSocket,
            handler: get(terminal),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/workspaces/{id}/terminals",
            need: Need::Workspace(WorkspaceRole::Viewer),
            recent_password: false,
            audit: None,
            summary: "The workspace's open terminal sessions.",
            tag: "terminals",
            query: &[],
            body: Body::None,
            response: Body::Json(schema::<Vec<TerminalInfo>>),
            handler: get(list),
        },
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TerminalInfo {
    pub session: String,
    pub clients: usize,
    pub output_bytes: u64,
}

#[derive(Deserialize)]
struct TerminalQuery {
    session: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
}

/// Control messages from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientControl {
    Resize { cols: u16, rows: u16 },
}

fn full_id(workspace: &str, session: &str) -> String {
    format!("{workspace}/{session}")
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> axum::Json<Vec<TerminalInfo>> {
    let prefix = format!("{id}/");
    let sessions = state
        .manager
        .terminals()
        .ids()
        .into_iter()
        .filter_map(|full| {
            let short = full.strip_prefix(&prefix)?.to_string();
            let session = state.manager.terminal(&full)?;
            Some(TerminalInfo {
                session: short,
                clients: session.clients(),
                output_bytes: session.output_len(),
            })
        })
        .collect();
    axum::Json(sessions)
}

async fn terminal(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(query): Query<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let writable = access.can_write();
    let admin = access
        .principal
        .as_ref()
        .is_some_and(|p| p.user.role == SiteRole::Admin);
    if !state.manager.backend().isolated() && !admin {
        return Err(ApiError::forbidden(
            "with the local backend a terminal is a shell on the server's host: only admins may open one",
        ));
    }
    let limit = state.config().workspaces.max_connections_per_user;
    let slot = state
        .connections
        .acquire(access.principal()?.user.id, limit)?;
    let existing = query
        .session
        .as_deref()
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .and_then(|s| state.manager.terminal(&full_id(&id, s)))
        .filter(|s| !s.is_closed());
    let replaced = query.session.is_some() && existing.is_none();
    // A shell outlives its connections: a new one counts against its
    // opener until it ends.
    let shell_slot = match &existing {
        Some(_) => None,
        None if !writable => return Err(ApiError::forbidden(
            "viewers can only watch a terminal that is open: pass ?session= (see GET …/terminals)",
        )),
        None => {
            let shells = state.config().workspaces.max_terminals_per_user;
            Some(
                state
                    .terminal_shells
                    .acquire(access.principal()?.user.id, shells)?,
            )
        }
    };
    // Checked after the quotas, so a browser whose upgrade failed can learn
    // why over plain HTTP; before a shell is started.
    let upgrade = upgrade.map_err(ApiError::not_a_websocket)?;
    let session = match (existing, shell_slot) {
        (Some(session), _) => session,
        (None, shell_slot) => {
            let size = (
                query.cols.unwrap_or(80).clamp(2, 1000),
                query.rows.unwrap_or(24).clamp(2, 1000),
            );
            let session = state
                .manager
                .open_terminal(&id, vec!["/bin/sh".into(), "-l".into()], size)
                .await?;
            let watched = session.clone();
            tokio::spawn(async move {
                watched.closed().await;
                drop(shell_slot);
            });
            session
        }
    };
    let short = session
        .id()
        .strip_prefix(&format!("{id}/"))
        .unwrap_or(session.id())
        .to_string();
    let note = AuditNote {
        target: Some(format!("workspace:{id}:terminal:{short}")),
        detail: Some(
            serde_json::json!({ "read_only": !writable, "reattach": !replaced && query.session.is_some() }),
        ),
        ..AuditNote::default()
    };
    let hello = serde_json::json!({
        "type": "session", "id": short, "read_only": !writable, "replaced": replaced,
    })
    .to_string();
    let state_for_socket = state.clone();
    let response = upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            // Counted against the user until the connection ends.
            let _slot = slot;
            let done = tokio_util::sync::CancellationToken::new();
            let revoked =
                super::watch_access(state_for_socket.clone(), &access, id.clone(), done.clone());
            let _stop_watching = done.drop_guard();
            state_for_socket
                .metrics
                .terminal_connections
                .fetch_add(1, Ordering::Relaxed);
            bridge(
                socket,
                session,
                writable,
                hello,
                state_for_socket.clone(),
                revoked,
            )
            .await;
            state_for_socket
                .metrics
                .terminal_connections
                .fetch_sub(1, Ordering::Relaxed);
        });
    Ok(noted(response.into_response(), note))
}

async fn send_json(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Pump one client: the replay and live output out, keystrokes and control in.
async fn bridge(
    mut socket: WebSocket,
    session: TerminalSession,
    writable: bool,
    hello: String,
    state: AppState,
    revoked: tokio_util::sync::CancellationToken,
) {
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let mut client = session.attach();
    let replay = std::mem::take(&mut client.replay);
    if !replay.is_empty() && socket.send(Message::Binary(replay)).await.is_err() {
        return;
    }
    let idle = state.socket_idle_timeout;
    let mut ping = tokio::time::interval(ping_interval(idle));
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let mut told_read_only = false;
    loop {
        tokio::select! {
            output = client.next() => match output {
                Some(bytes) => {
                    if !sent_within(idle, socket.send(Message::Binary(bytes))).await {
                        return;
                    }
                }
                None => {
                    let code = session.exit_status(Duration::from_secs(5)).await.flatten();
                    let _ = send_json(&mut socket, serde_json::json!({ "type": "exit", "code": code })).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "the shell ended".into() }))).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming.inspect(|frame| if frame.is_ok() { last_heard = tokio::time::Instant::now() }) {
                Some(Ok(Message::Binary(bytes))) => {
                    if writable {
                        if let Err(error) = session.write(&bytes).await {
                            tracing::debug!(%error, "terminal input failed");
                        }
                        // Time spent waiting for the shell to take input is
                        // not the client's silence.
                        last_heard = tokio::time::Instant::now();
                    } else if !told_read_only {
                        told_read_only = true;
                        let _ = send_json(&mut socket, serde_json::json!({
                            "type": "error", "message": "read-only: you are a viewer of this workspace, so keystrokes are dropped",
                        })).await;
                    }
                }
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ClientControl>(&text) {
                    Ok(ClientControl::Resize { cols, rows }) => {
                        if writable {
                            let _ = session.resize(cols.clamp(2, 1000), rows.clamp(2, 1000)).await;
                        }
                    }
                    Err(error) => {
                        let _ = send_json(&mut socket, serde_json::json!({
                            "type": "error", "message": format!("unknown control message: {error}; expected {{\"type\":\"resize\",\"cols\":N,\"rows\":N}}"),
                        })).await;
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= idle {
                    tracing::debug!("terminal client silent for {idle:?}: closed");
                    return;
                }
                if !sent_within(idle, socket.send(Message::Ping(Default::default()))).await {
                    return;
                }
            }
            _ = revoked.cancelled() => {
                let _ = send_json(&mut socket, serde_json::json!({ "type": "error", "message": "your access to this workspace was withdrawn; the terminal is closed for you (it keeps running for others)" })).await;
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "access withdrawn".into() }))).await;
                return;
            }
            _ = state.shutdown.cancelled() => {
                let _ = send_json(&mut socket, serde_json::json!({ "type": "shutdown", "message": "the server is shutting down; reconnect to reattach" })).await;
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        }
    }
}
