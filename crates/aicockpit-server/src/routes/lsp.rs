//! The language server over WebSockets, and search and chat over HTTP, all
//! answered by the workspace's one shared engine.
//!
//! `GET /api/v1/workspaces/{id}/lsp`: one JSON-RPC message per text frame,
//! no `Content-Length` framing; each connection is a session of the same
//! language server the editors run over stdio. Viewers get a read-only
//! session. `GET …/search` is `aicockpit/search` for scripts;
//! `POST …/chat` streams the answer as server-sent events.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aicockpit_engine::{ChatMessage, ChatParams, EngineError, Role, SearchQuery, SymbolKind};
use aicockpit_lsp::{serve_messages, ServerOptions, SessionEnd, MAX_MESSAGE_BYTES};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::terminal::sent_within;
use super::{noted, schema, AuditNote, Body, Route};
use crate::authz::{Access, Need};
use crate::db::WorkspaceRole;
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/api/v1/workspaces/{id}/lsp",
            need: Need::Workspace(WorkspaceRole::Viewer),
            recent_password: false,
            audit: Some("lsp.open"),
            summary: "A language-server session over a WebSocket: one JSON-RPC message per text frame; read-only for viewers.",
            tag: "language server",
            query: &[],
            body: Body::None,
            response: Body::WebSocket,
            handler: get(lsp),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/workspaces/{id}/search",
            need: Need::Workspace(WorkspaceRole::Viewer),
            recent_password: false,
            audit: None,
            summary: "Search the workspace's index by words (text), by meaning (semantic, over the vectors the server embeds in the background) or both fused (hybrid); every hit names the retrievers that found it.",
            tag: "language server",
            query: &[
                ("q", true, "words or identifiers (parts match: `http request` finds parseHttpRequest)"),
                ("limit", false, "at most this many hits (default search.max_results, at most 1000)"),
                ("kind", false, "only symbols of these kinds, comma-separated (function, class, …)"),
                ("path", false, "only under this folder or file, relative to the workspace"),
                ("mode", false, "text, semantic or hybrid (default search.mode; hybrid is text alone until vectors exist, semantic without vectors is an error that says why)"),
            ],
            body: Body::None,
            response: Body::Json(schema::<Vec<SearchHitView>>),
            handler: get(search),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/workspaces/{id}/chat",
            need: Need::Workspace(WorkspaceRole::Viewer),
            recent_password: false,
            audit: Some("ai.chat"),
            summary: "Ask the AI about the workspace; the answer streams as server-sent events (`delta`, then `done` or `error`).",
            tag: "language server",
            query: &[],
            body: Body::Json(schema::<ChatBody>),
            response: Body::EventStream,
            handler: post(chat),
        },
    ]
}

async fn lsp(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let limit = state.config().workspaces.max_connections_per_user;
    let slot = state
        .connections
        .acquire(access.principal()?.user.id, limit)?;
    // Checked after the quota, so a browser whose upgrade failed can learn
    // why over plain HTTP; before the engine is opened.
    let upgrade = upgrade.map_err(ApiError::not_a_websocket)?;
    let shared = state.sessions.get(&state, &id).await?;
    let read_only = !access.can_write();
    let mut options = ServerOptions::shared(shared, read_only);
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    options.shutdown = Some(stop_receiver);
    let note = AuditNote {
        target: Some(format!("workspace:{id}:lsp")),
        detail: Some(serde_json::json!({ "read_only": read_only })),
        ..AuditNote::default()
    };
    let response =
        upgrade
            .max_message_size(MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| async move {
                // Counted against the user until the session ends.
                let _slot = slot;
                let done = tokio_util::sync::CancellationToken::new();
                let revoked = super::watch_access(state.clone(), &access, id.clone(), done.clone());
                let _stop_watching = done.drop_guard();
                state.metrics.lsp_sessions.fetch_add(1, Ordering::Relaxed);
                let shutdown = state.shutdown.clone();
                // The server's shutdown reaches the session as its host signal.
                let relay = tokio::spawn(async move {
                    shutdown.cancelled().await;
                    let _ = stop_sender.send(true);
                });
                let end = bridge(socket, options, revoked, state.socket_idle_timeout).await;
                relay.abort();
                tracing::debug!(?end, "LSP session ended");
                state.metrics.lsp_sessions.fetch_sub(1, Ordering::Relaxed);
            });
    Ok(noted(response.into_response(), note))
}

/// Pump frames between the socket and the session, each direction in its own task.
async fn bridge(
    socket: WebSocket,
    options: ServerOptions,
    revoked: tokio_util::sync::CancellationToken,
    idle: Duration,
) -> SessionEnd {
    let (mut sink, mut stream) = socket.split();
    // Messages may be 64 MiB: the session bounds what it has not handled
    // yet by bytes, so only one more waits here.
    let (to_session, incoming) = tokio::sync::mpsc::channel::<String>(1);
    let (outgoing, mut from_session) = tokio::sync::mpsc::channel::<String>(16);
    let session = tokio::spawn(serve_messages(options, incoming, outgoing));
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(super::terminal::ping_interval(idle));
        ping.tick().await;
        loop {
            tokio::select! {
                message = from_session.recv() => match message {
                    Some(text) => {
                        if !sent_within(idle, sink.send(Message::Text(text.into()))).await {
                            break;
                        }
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    if !sent_within(idle, sink.send(Message::Ping(Default::default()))).await {
                        break;
                    }
                }
            }
        }
        sent_within(idle, sink.close()).await;
    });
    loop {
        // Access withdrawn (unshared, logged out, token revoked): the session ends.
        // Silent past `idle` (not even a pong to the pings): the client is gone.
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, stream.next()) => match frame {
                Ok(frame) => frame,
                Err(_) => {
                    tracing::debug!("LSP client silent for {idle:?}: closed");
                    break;
                }
            },
            _ = revoked.cancelled() => break,
        };
        let Some(Ok(frame)) = frame else { break };
        match frame {
            Message::Text(text) => {
                if to_session.send(text.to_string()).await.is_err() {
                    break;
                }
            }
            // JSON-RPC is text; a binary frame is answered like any bad message.
            Message::Binary(bytes) => {
                // Not lossily (invalid bytes would triple in size): a frame
                // that is not UTF-8 becomes a small one that is not JSON.
                let text = String::from_utf8(bytes.into()).unwrap_or_else(|_| "\u{fffd}".into());
                if to_session.send(text).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    drop(to_session);
    let end = session.await.unwrap_or(SessionEnd::Closed);
    let mut writer = writer;
    if tokio::time::timeout(idle, &mut writer).await.is_err() {
        writer.abort();
    }
    end
}

/// One search hit; lines and characters are 0-based, characters in UTF-16 code units as in LSP.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchHitView {
    /// Relative to the workspace root.
    pub path: String,
    pub line: u32,
    pub character: u32,
    pub end_line: u32,
    pub end_character: u32,
    pub score: f32,
    pub snippet: String,
    pub symbol: Option<SymbolView>,
    /// Which retrievers found the hit: `text`, `semantic`, or both.
    pub retrievers: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SymbolView {
    pub name: String,
    pub kind: String,
    pub container: Option<String>,
    pub signature: String,
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    kind: Option<String>,
    path: Option<String>,
    mode: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<SearchHitView>>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let text = params.q.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("`q` is empty: say what to look for"));
    }
    if text.len() > 1000 {
        return Err(ApiError::bad_request("`q` is longer than 1000 bytes"));
    }
    let mut kinds = Vec::new();
    for name in params
        .kind
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
    {
        kinds.push(SymbolKind::from_name(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = SymbolKind::ALL.iter().map(|k| k.name()).collect();
            ApiError::bad_request(format!(
                "unknown kind {name:?}; known kinds: {}",
                known.join(", ")
            ))
        })?);
    }
    let scope = match params.path {
        Some(path) => {
            let clean = path.trim_matches('/').to_string();
            if std::path::Path::new(&clean)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "path_escape",
                    format!("{path}: the path leads outside the workspace"),
                ));
            }
            (!clean.is_empty()).then_some(clean).into_iter().collect()
        }
        None => Vec::new(),
    };
    let mode = params
        .mode
        .as_deref()
        .map(str::parse::<aicockpit_config::SearchMode>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let shared = state.sessions.get(&state, &id).await?;
    let engine = shared.engine();
    let mode = mode.unwrap_or(engine.config().search.mode);
    let limit = params
        .limit
        .unwrap_or(engine.config().search.max_results)
        .clamp(1, 1000);
    let query = SearchQuery {
        text,
        limit,
        paths: scope,
        kinds,
    };
    let ranked = tokio::task::spawn_blocking(move || engine.search_ranked(&query, mode))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            EngineError::Search(why) => {
                ApiError::new(axum::http::StatusCode::CONFLICT, "search_unavailable", why)
            }
            other => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "index_unavailable",
                other.to_string(),
            ),
        })?;
    Ok(axum::Json(
        ranked
            .hits
            .into_iter()
            .map(|ranked| (ranked.retrievers, ranked.hit))
            .map(|(retrievers, hit)| SearchHitView {
                retrievers: retrievers.iter().map(|r| r.name().to_string()).collect(),
                path: hit.path,
                line: hit.span.start.line,
                character: hit.span.start.col_utf16,
                end_line: hit.span.end.line,
                end_character: hit.span.end.col_utf16,
                score: hit.score,
                snippet: hit.snippet,
                symbol: hit.symbol.map(|s| SymbolView {
                    name: s.name.into(),
                    kind: s.kind.name().to_string(),
                    container: s.container.map(Into::into),
                    signature: s.signature.into(),
                }),
            })
            .collect(),
    ))
}

/// A chat turn: the conversation so far, optionally about a file.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// `{"role": "user"|"assistant"|"system", "content": "…"}`, oldest first; the last is the question.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<ChatTurn>,
    /// A file the question is about, relative to the workspace.
    pub path: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChatTurn {
    pub role: String,
    pub content: String,
}

async fn chat(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Json(body): Json<ChatBody>,
) -> Result<Response, ApiError> {
    // Held by the answer's stream until it ends or the client goes.
    let limit = state.config().workspaces.max_connections_per_user;
    let slot = state
        .connections
        .acquire(access.principal()?.user.id, limit)?;
    let mut messages = Vec::new();
    for turn in &body.messages {
        let role = match turn.role.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown role {other:?}: use system, user or assistant"
                )))
            }
        };
        messages.push(ChatMessage::new(role, turn.content.clone()));
    }
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` is empty: send at least the question",
        ));
    }
    let shared = state.sessions.get(&state, &id).await?;
    let engine = shared.engine();
    let path = match &body.path {
        Some(rel) => {
            let clean = rel.trim_start_matches('/');
            if std::path::Path::new(clean)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "path_escape",
                    format!("{rel}: the path leads outside the workspace"),
                ));
            }
            shared.root().map(|root: PathBuf| root.join(clean))
        }
        None => None,
    };
    let whole_file = path.is_some();
    // Unbounded so no piece of the answer is dropped; an answer is bounded by
    // the model's output limit, and a client that leaves aborts the task.
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    // The answer is produced in its own task; if the client goes away, the
    // stream is dropped, sends fail, and the task (and its HTTP request) is aborted.
    let task = tokio::spawn(async move {
        let deltas = sender.clone();
        let result = engine
            .chat(
                ChatParams {
                    messages,
                    path,
                    selection: None,
                    whole_file,
                },
                |delta| {
                    let event = Event::default()
                        .event("delta")
                        .data(serde_json::json!({ "text": delta }).to_string());
                    let _ = deltas.send(event);
                },
            )
            .await;
        let event = match result {
            Ok(answer) => Event::default().event("done").data(
                serde_json::json!({ "content": answer.content, "sources": answer.sources })
                    .to_string(),
            ),
            Err(error) => Event::default().event("error").data(
                serde_json::json!({ "error": "ai_failed", "message": error.to_string() })
                    .to_string(),
            ),
        };
        let _ = sender.send(event);
    });
    // Access withdrawn meanwhile (signed out, token revoked or expired,
    // unshared): the answer stops there, as a WebSocket would close.
    let done = tokio_util::sync::CancellationToken::new();
    // Chat needs only a viewer's role: an editor made a viewer goes on.
    let viewing = Access {
        principal: access.principal.clone(),
        workspace_role: access
            .workspace_role
            .map(|role| role.min(WorkspaceRole::Viewer)),
    };
    let revoked = super::watch_access(state.clone(), &viewing, id.clone(), done.clone());
    // The stream holds the task (aborted when it goes), the access watch
    // (stopped when it goes) and the user's slot.
    let guard = (AbortOnDrop(task), done.drop_guard(), slot);
    let stream = futures_util::stream::unfold(Some((receiver, guard)), move |open| {
        let revoked = revoked.clone();
        async move {
            let (mut receiver, guard) = open?;
            tokio::select! {
                event = receiver.recv() => {
                    event.map(|event| (Ok::<Event, Infallible>(event), Some((receiver, guard))))
                }
                () = revoked.cancelled() => {
                    let event = Event::default().event("error").data(
                        serde_json::json!({
                            "error": "access_withdrawn",
                            "message": "your access to this workspace ended (signed out, \
                                        token revoked or expired, or no longer shared): \
                                        the answer stops here",
                        })
                        .to_string(),
                    );
                    Some((Ok(event), None))
                }
            }
        }
    });
    let note = AuditNote {
        target: Some(format!("workspace:{id}:chat")),
        ..AuditNote::default()
    };
    Ok(noted(
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
        note,
    ))
}

/// Aborts the chat task when the response stream is dropped (the client left).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
