//! The language server through `aicockpit serve`: LSP sessions over
//! WebSockets on a real Docker workspace, sharing one engine and index,
//! with AI from the mock service; search and streamed chat over HTTP.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;
use serde_json::{json, Value};
use tungstenite::Message;

use crate::server::{create_user, create_workspace, new_project, token_for, Cleanup, Server};
use crate::support::DEADLINE;
use crate::workspace::{docker_ready, unique};

/// A language-server client over one WebSocket.
pub(crate) struct WsLsp {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: i64,
    /// Notifications and server requests received so far.
    seen: Vec<Value>,
}

impl WsLsp {
    pub(crate) fn connect(server: &Server, token: &str, workspace: &str) -> WsLsp {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/api/v1/workspaces/{workspace}/lsp", server.address)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let stream = TcpStream::connect(server.address).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (socket, response) = tungstenite::client(request, stream)
            .unwrap_or_else(|e| panic!("LSP WebSocket handshake failed: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        socket
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        WsLsp {
            socket,
            next_id: 0,
            seen: Vec::new(),
        }
    }

    /// Send a message; `None` when the socket is closed.
    pub(crate) fn send_response(&mut self, message: Value) -> Option<()> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .ok()
    }

    fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .unwrap();
    }

    pub(crate) fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next JSON message, or `None` at the deadline or when the socket closed.
    pub(crate) fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("one JSON message per frame"))
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => {}
                Err(tungstenite::Error::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() > deadline {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Send a request without waiting for its answer: its id, or `None`
    /// when the socket is closed.
    pub(crate) fn send_request(&mut self, method: &str, params: Value) -> Option<i64> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(message.to_string().into()))
            .ok()
            .map(|()| id)
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self
            .send_request(method, params)
            .unwrap_or_else(|| panic!("the session closed before {method} was sent"));
        let deadline = Instant::now() + DEADLINE;
        loop {
            let message = self
                .next(deadline)
                .unwrap_or_else(|| panic!("no answer to {method} within {DEADLINE:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            if let (Some(server_id), Some(_)) = (message.get("id"), message.get("method")) {
                // A request from the server (progress tokens, configuration): say yes.
                let server_id = server_id.clone();
                self.send(json!({"jsonrpc": "2.0", "id": server_id, "result": null}));
            }
            self.seen.push(message);
        }
    }

    pub(crate) fn initialize(&mut self) -> Value {
        let result = self.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {"window": {"workDoneProgress": true}}}),
        );
        self.notify("initialized", json!({}));
        result
    }

    /// `workspace/symbol` until a symbol of that name shows up (or the deadline).
    pub(crate) fn find_symbol(&mut self, name: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let found = self.request("workspace/symbol", json!({"query": name}));
            if found
                .as_array()
                .is_some_and(|list| list.iter().any(|s| s["name"] == name))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn lsp_sessions_over_websockets_share_one_index_and_reach_the_ai() {
    let project = new_project();
    if !docker_ready(&project) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let config = project.home.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n\
         chat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
        mock.url()
    ));
    std::fs::write(&config, text).unwrap();
    let cleanup = Cleanup::new(&project);
    let mut server = Server::start(&project, "info");
    let owner = token_for(&project, None);
    create_user(&project, "vera", "member", "vera-password-1");
    let viewer = token_for(&project, Some("vera"));
    let name = unique("lsp");
    create_workspace(&server, &cleanup, &owner, &name);
    server
        .api(
            &owner,
            "PUT",
            &format!("/api/v1/workspaces/{name}/members"),
            Some(&json!([{"user": "vera", "role": "viewer"}])),
        )
        .expect(200);
    let put = |path: &str, body: &str| {
        let reply = crate::server::http(
            server.address,
            None,
            "PUT",
            &format!("/api/v1/workspaces/{name}/files?path={path}"),
            &[
                ("Authorization", &format!("Bearer {owner}")),
                ("If-None-Match", "*"),
            ],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    put(
        "src/lib.rs",
        "pub fn existing_function() -> u32 {\n    41\n}\n",
    );

    // Session A (the owner) and session B (a viewer) on the same workspace.
    let mut a = WsLsp::connect(&server, &owner, &name);
    let init_a = a.initialize();
    let aicockpit = &init_a["capabilities"]["experimental"]["aicockpit"];
    assert_eq!(aicockpit["shared"], true, "{init_a}");
    assert_eq!(aicockpit["readOnly"], false, "{init_a}");
    let root = aicockpit["rootUri"]
        .as_str()
        .expect("a shared session names its root")
        .to_string();
    assert!(
        a.find_symbol("existing_function", DEADLINE),
        "the first index finds the workspace's file"
    );

    let mut b = WsLsp::connect(&server, &viewer, &name);
    let init_b = b.initialize();
    assert_eq!(
        init_b["capabilities"]["experimental"]["aicockpit"]["readOnly"], true,
        "{init_b}"
    );
    assert_eq!(
        init_b["capabilities"]["experimental"]["aicockpit"]["rootUri"],
        root.as_str()
    );

    // A types a new symbol into an unsaved file; B finds it through the shared index.
    let new_uri = format!("{root}/src/new.rs");
    a.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": new_uri, "languageId": "rust", "version": 1, "text": "pub fn brand_new_symbol() -> u32 {\n    1\n}\n"}}),
    );
    assert!(
        b.find_symbol("brand_new_symbol", DEADLINE),
        "a symbol typed in one session is found by the other"
    );

    // B is read-only: what it types never reaches the index.
    b.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": format!("{root}/src/viewer.rs"), "languageId": "rust", "version": 1, "text": "pub fn viewer_typed_this() {}\n"}}),
    );
    a.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": new_uri, "version": 2}, "contentChanges": [{"text": "pub fn brand_new_symbol() -> u32 {\n    1\n}\npub fn later_marker() {}\n"}]}),
    );
    assert!(a.find_symbol("later_marker", DEADLINE));
    assert!(
        !a.find_symbol("viewer_typed_this", Duration::ZERO),
        "a viewer's edit reached the index"
    );

    // Ghost text from the mock through A's WebSocket.
    mock.set_reply("existing_function() + 1");
    let completion = a.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": new_uri}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 2}}),
    );
    assert_eq!(
        completion["items"][0]["insertText"], "existing_function() + 1",
        "{completion}"
    );

    // Chat through B's WebSocket (a viewer may ask).
    mock.set_reply("It returns one.");
    let answer = b.request(
        "aicockpit/chat",
        json!({"messages": [{"role": "user", "content": "What does brand_new_symbol return?"}]}),
    );
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .contains("It returns one."),
        "{answer}"
    );

    // The same index over HTTP: search, and chat streamed as server-sent events.
    let hits = server
        .api(
            &viewer,
            "GET",
            &format!("/api/v1/workspaces/{name}/search?q=brand%20new%20symbol"),
            None,
        )
        .expect(200)
        .json();
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .any(|h| h["path"] == "src/new.rs"),
        "{hits}"
    );
    mock.set_reply("Streamed reply.");
    let events = server
        .api(
            &owner,
            "POST",
            &format!("/api/v1/workspaces/{name}/chat"),
            Some(&json!({"messages": [{"role": "user", "content": "what is existing_function?"}], "path": "src/lib.rs"})),
        )
        .expect(200)
        .text();
    assert!(events.contains("event: delta"), "{events}");
    assert!(events.contains("event: done"), "{events}");
    assert!(events.contains("Streamed"), "{events}");
    assert!(
        events.contains("src/lib.rs"),
        "the answer names its sources: {events}"
    );

    // Stopping the server tells both sessions before their sockets close.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    for (who, session) in [("A", &mut a), ("B", &mut b)] {
        let deadline = Instant::now() + DEADLINE;
        let mut told = session.seen.iter().any(|m| {
            m["method"] == "window/showMessage"
                && m["params"]["message"]
                    .as_str()
                    .is_some_and(|t| t.contains("shutting down"))
        });
        while !told {
            match session.next(deadline) {
                Some(m) => {
                    told = m["method"] == "window/showMessage"
                        && m["params"]["message"]
                            .as_str()
                            .is_some_and(|t| t.contains("shutting down"))
                }
                None => break,
            }
        }
        assert!(
            told,
            "session {who} was not told the server is shutting down"
        );
    }
}
