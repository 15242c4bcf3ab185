//! Language-server sessions over whole messages (`serve_messages`, what the
//! web server's WebSockets carry), several of them sharing one project's
//! engine: a real index, real tree-sitter, and the mock AI server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aicockpit_ai::mock::MockServer;
use aicockpit_config::{Config, Paths};
use aicockpit_lsp::{serve_messages, ServerOptions, SessionEnd, SharedEngine};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(20);

const LIB_RS: &str = "\
mod helpers;

pub fn greeting(name: &str) -> String {
    let shown = helpers::format_name(name);
    
}
";

const HELPERS_RS: &str = "\
/// Trims and capitalises a name.
pub fn format_name(name: &str) -> String {
    name.trim().to_string()
}
";

/// A temporary project with its own config, cache and data folders.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    paths: Paths,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("project");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"demo\"\n").unwrap();
        std::fs::write(root.join("src/lib.rs"), LIB_RS).unwrap();
        std::fs::write(root.join("src/helpers.rs"), HELPERS_RS).unwrap();
        let paths = Paths {
            config_file: base.join("home/config.toml"),
            cache_dir: base.join("cache"),
            data_dir: base.join("data"),
            xdg_roots: Vec::new(),
        };
        Fixture {
            _dir: dir,
            root,
            paths,
        }
    }

    fn uri(&self, rel: &str) -> String {
        format!("file://{}", self.root.join(rel).display())
    }

    async fn shared(&self, config: Config) -> SharedEngine {
        let (root, paths) = (self.root.clone(), self.paths.clone());
        let shared = tokio::task::spawn_blocking(move || {
            SharedEngine::open(&root, config, paths, None).unwrap()
        })
        .await
        .unwrap();
        shared.start();
        shared
    }
}

/// The client end of one `serve_messages` session.
struct Session {
    to_server: Option<mpsc::Sender<String>>,
    from_server: mpsc::Receiver<String>,
    /// Messages read while waiting for something else.
    seen: Vec<Value>,
    next_id: i64,
    task: JoinHandle<SessionEnd>,
}

impl Session {
    fn start(options: ServerOptions) -> Session {
        let (to_server, incoming) = mpsc::channel(16);
        let (outgoing, from_server) = mpsc::channel(16);
        let task = tokio::spawn(serve_messages(options, incoming, outgoing));
        Session {
            to_server: Some(to_server),
            from_server,
            seen: Vec::new(),
            next_id: 0,
            task,
        }
    }

    async fn send_raw(&self, text: String) {
        self.to_server
            .as_ref()
            .expect("the input is open")
            .send(text)
            .await
            .expect("the session takes input");
    }

    async fn notify(&self, method: &str, params: Value) {
        self.send_raw(json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string())
            .await;
    }

    async fn request_response(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        self.wait_for(&format!("the answer to {method}"), |m| {
            m["id"] == id && m.get("method").is_none()
        })
        .await
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.request_response(method, params).await;
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    /// The next message (seen before, or arriving within the deadline) that
    /// matches; the server's own requests are answered on the way.
    async fn wait_for(&mut self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self.seen.iter().position(&predicate) {
            return self.seen.remove(at);
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let message = tokio::time::timeout_at(deadline, self.from_server.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; seen {:?}", self.seen))
                .unwrap_or_else(|| panic!("the session ended while waiting for {what}"));
            let message: Value = serde_json::from_str(&message).unwrap();
            if message.get("method").is_some() && message.get("id").is_some() {
                // window/workDoneProgress/create and the like.
                self.send_raw(
                    json!({"jsonrpc": "2.0", "id": message["id"], "result": null}).to_string(),
                )
                .await;
            }
            if predicate(&message) {
                return message;
            }
            self.seen.push(message);
        }
    }

    async fn initialize(&mut self, root: &Path) -> Value {
        let result = self
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": format!("file://{}", root.display()),
                    "capabilities": {"window": {"workDoneProgress": true}},
                }),
            )
            .await;
        self.notify("initialized", json!({})).await;
        result
    }

    async fn status(&mut self) -> Value {
        self.request("aicockpit/status", Value::Null).await
    }

    async fn wait_for_index(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.status().await;
            if status["indexing"] == false && status["files"].as_u64() > Some(0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the index never finished: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The names `workspace/symbol` finds for a query.
    async fn symbols(&mut self, query: &str) -> Vec<String> {
        let found = self
            .request("workspace/symbol", json!({"query": query}))
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Poll `workspace/symbol` until `expected` says the answer is right.
    async fn symbols_until(&mut self, query: &str, expected: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let names = self.symbols(query).await;
            if expected(&names) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "workspace/symbol {query:?} still answers {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Close the input (the WebSocket closed) and wait for the session to end.
    async fn close(mut self) -> SessionEnd {
        self.to_server = None;
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the session ends when its input does")
            .unwrap()
    }
}

fn open_params(uri: &str, version: i32, text: &str) -> Value {
    json!({"textDocument": {"uri": uri, "languageId": "rust", "version": version, "text": text}})
}

fn whole_change(uri: &str, version: i32, text: &str) -> Value {
    json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_typed_in_one_session_is_found_by_another_until_it_is_closed() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut a = Session::start(ServerOptions::shared(shared.clone(), false));
    let mut b = Session::start(ServerOptions::shared(shared.clone(), false));
    let init = a.initialize(&fixture.root).await;
    assert_eq!(
        init["capabilities"]["experimental"]["aicockpit"]["shared"],
        true
    );
    // B names another root: the server's project is served all the same.
    b.initialize(Path::new("/")).await;
    b.wait_for_index().await;
    assert_eq!(b.status().await["root"], fixture.root.display().to_string());

    // A opens a new file and types a function, character by character at the end.
    let new_uri = fixture.uri("src/brand_new.rs");
    a.notify("textDocument/didOpen", open_params(&new_uri, 1, ""))
        .await;
    let typed = "fn brand_new_symbol() {}";
    for (i, ch) in typed.chars().enumerate() {
        let at = json!({"line": 0, "character": i});
        a.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": new_uri, "version": i + 2},
                   "contentChanges": [{"range": {"start": at, "end": at}, "text": ch.to_string()}]}),
        )
        .await;
    }
    b.symbols_until("brand_new_symbol", |names| {
        names == ["brand_new_symbol".to_string()]
    })
    .await;
    let status = a.status().await;
    assert_eq!(status["session"]["documents"], 1, "{status}");
    assert_eq!(b.status().await["session"]["documents"], 0);

    // A closes without saving: the file is not on disk, so it is gone for B too.
    a.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": new_uri}}),
    )
    .await;
    a.status().await; // The close is applied before A's next request is answered.
    b.symbols_until("brand_new_symbol", |names| names.is_empty())
        .await;

    // Both open another new file; A adds a function; when A closes, B's
    // own text stays (B still has it open), not the disk's (nothing).
    let kept_uri = fixture.uri("src/kept.rs");
    b.notify(
        "textDocument/didOpen",
        open_params(&kept_uri, 1, "fn kept_by_b() {}\n"),
    )
    .await;
    // Two sessions' messages have no order between them: B's open must be
    // applied before A's edit, or it would be the last write (and win).
    b.status().await;
    a.notify(
        "textDocument/didOpen",
        open_params(&kept_uri, 1, "fn kept_by_b() {}\n"),
    )
    .await;
    a.notify(
        "textDocument/didChange",
        whole_change(&kept_uri, 2, "fn kept_by_b() {}\nfn added_by_a() {}\n"),
    )
    .await;
    b.symbols_until("added_by_a", |names| names == ["added_by_a".to_string()])
        .await;
    a.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": kept_uri}}),
    )
    .await;
    a.status().await;
    b.symbols_until("added_by_a", |names| names.is_empty())
        .await;
    assert_eq!(b.symbols("kept_by_b").await, ["kept_by_b"]);
    assert_eq!(b.status().await["openDocuments"], 1);

    assert_eq!(a.close().await, SessionEnd::Closed);
    assert_eq!(b.close().await, SessionEnd::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_document_from_two_sessions_do_not_corrupt_it() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut a = Session::start(ServerOptions::shared(shared.clone(), false));
    let mut b = Session::start(ServerOptions::shared(shared.clone(), false));
    a.initialize(&fixture.root).await;
    b.initialize(&fixture.root).await;
    let uri = fixture.uri("src/both.rs");
    a.notify("textDocument/didOpen", open_params(&uri, 1, "fn a0() {}\n"))
        .await;
    b.notify("textDocument/didOpen", open_params(&uri, 1, "fn b0() {}\n"))
        .await;
    // Interleaved incremental inserts at each one's own line 1.
    for i in 1..=20 {
        for (session, name) in [(&a, "a"), (&b, "b")] {
            let at = json!({"line": i, "character": 0});
            session
                .notify(
                    "textDocument/didChange",
                    json!({"textDocument": {"uri": uri, "version": i + 1},
                           "contentChanges": [{"range": {"start": at, "end": at}, "text": format!("fn {name}{i}() {{}}\n")}]}),
                )
                .await;
        }
    }
    // Every change of A is applied; then B writes last.
    a.status().await;
    let at = json!({"line": 21, "character": 0});
    b.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 22},
               "contentChanges": [{"range": {"start": at, "end": at}, "text": "fn b21() {}\n"}]}),
    )
    .await;
    b.status().await;
    // The last writer's text wins, whole: B's functions, none of A's.
    let outline = b
        .request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;
    let names: Vec<&str> = outline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..=21).map(|i| format!("b{i}")).collect();
    assert_eq!(names, expected);
    // A's copy is still whole: when B closes, A's text is the document's.
    b.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": uri}}),
    )
    .await;
    b.status().await;
    a.symbols_until("a20", |names| names == ["a20".to_string()])
        .await;
    let status = a.status().await;
    assert_eq!(status["lastError"], Value::Null, "{status}");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_session_changes_nothing_and_offers_no_edits() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut viewer = Session::start(ServerOptions::shared(shared.clone(), true));
    let mut writer = Session::start(ServerOptions::shared(shared.clone(), false));
    let init = viewer.initialize(&fixture.root).await;
    assert_eq!(
        init["capabilities"]["experimental"]["aicockpit"]["readOnly"],
        true
    );
    let commands = &init["capabilities"]["executeCommandProvider"]["commands"];
    assert!(
        !commands
            .as_array()
            .unwrap()
            .contains(&json!("aicockpit.applyAction")),
        "{commands}"
    );
    let notice = viewer
        .wait_for("the read-only notice", |m| {
            m["method"] == "window/showMessage"
        })
        .await;
    assert!(
        notice["params"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{notice}"
    );
    writer.initialize(&fixture.root).await;
    writer.wait_for_index().await;

    // The viewer types a function into a file and a new one: nothing reaches the engine.
    let lib = fixture.uri("src/lib.rs");
    viewer
        .notify("textDocument/didOpen", open_params(&lib, 1, LIB_RS))
        .await;
    viewer
        .notify(
            "textDocument/didChange",
            whole_change(&lib, 2, "fn viewer_typed() {}\n"),
        )
        .await;
    viewer
        .notify(
            "textDocument/didSave",
            json!({"textDocument": {"uri": lib}, "text": "fn viewer_saved() {}\n"}),
        )
        .await;
    let status = viewer.status().await; // Applied (or ignored) before this answer.
    assert_eq!(status["session"]["readOnly"], true);
    assert_eq!(status["openDocuments"], 0, "{status}");
    assert!(writer.symbols("viewer_typed").await.is_empty());
    assert!(writer.symbols("viewer_saved").await.is_empty());
    // Reading works: the viewer finds the project's symbols.
    assert_eq!(viewer.symbols("format_name").await, ["format_name"]);
    let hover = viewer
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": lib}, "position": {"line": 3, "character": 26}}),
        )
        .await;
    assert!(hover.to_string().contains("format_name"), "{hover}");

    // Code actions: only the explanation, with no edit and no data to resolve into one.
    let actions = viewer
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": lib},
                   "range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 0}},
                   "context": {"diagnostics": [{"range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 1}}, "message": "broken"}]}}),
        )
        .await;
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(actions[0].to_string().contains("explain"), "{actions:?}");
    assert!(actions[0].get("edit").is_none());
    // An edit asked for anyway is refused with a clear error.
    let data = json!({"uri": lib, "range": {"start": {"line": 2, "character": 0}, "end": {"line": 2, "character": 0}}, "action": "refactor"});
    let refused = viewer
        .request_response(
            "workspace/executeCommand",
            json!({"command": "aicockpit.applyAction", "arguments": [data]}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("read-only"));
    let refused = viewer
        .request_response(
            "codeAction/resolve",
            json!({"title": "AiCockpit: refactor", "data": data}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    // Nothing was sent to apply an edit.
    assert!(!viewer
        .seen
        .iter()
        .any(|m| m["method"] == "workspace/applyEdit"));
    viewer.close().await;
    writer.close().await;
}

fn mock_config(mock: &MockServer) -> Config {
    Config::from_toml_str(&format!(
        "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n\
         chat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
        mock.url()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_completion_and_chat_work_through_a_session() {
    let fixture = Fixture::new();
    let mock = MockServer::start().await;
    let shared = fixture.shared(mock_config(&mock)).await;
    // A viewer gets ghost text and chat too: they change nothing.
    let mut session = Session::start(ServerOptions::shared(shared.clone(), true));
    session.initialize(&fixture.root).await;
    session.wait_for_index().await;
    let lib = fixture.uri("src/lib.rs");

    mock.set_reply("shown.to_uppercase()");
    let result = session
        .request(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": lib}, "position": {"line": 4, "character": 4}, "context": {"triggerKind": 1}}),
        )
        .await;
    assert_eq!(
        result["items"][0]["insertText"], "shown.to_uppercase()",
        "{result}"
    );
    let completion = mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/completions")
        .expect("a completions request");
    // The prompt holds the definition found in the shared index.
    let prompt = completion.body["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("pub fn format_name(name: &str) -> String {"),
        "{prompt}"
    );

    mock.set_reply("It greets.");
    let answer = session
        .request(
            "aicockpit/chat",
            json!({"messages": [{"role": "user", "content": "What does greeting do?"}],
                   "uri": lib, "range": {"start": {"line": 2, "character": 8}, "end": {"line": 2, "character": 8}},
                   "partialResultToken": "chat-1"}),
        )
        .await;
    assert!(
        answer["content"]
            .as_str()
            .unwrap()
            .starts_with("It greets."),
        "{answer}"
    );
    assert!(
        answer["sources"].to_string().contains("src/lib.rs"),
        "{answer}"
    );
    let delta = session
        .wait_for("a streamed piece", |m| {
            m["method"] == "$/progress" && m["params"]["token"] == "chat-1"
        })
        .await;
    assert!(delta["params"]["value"]["delta"].is_string(), "{delta}");
    let status = session.status().await;
    assert_eq!(status["ai"]["service"], "mock");
    assert!(status["ai"]["requests"].as_u64() >= Some(2), "{status}");

    // Settings from a session change nothing of the shared engine.
    session
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"ai": {"active": null, "services": []}}}),
        )
        .await;
    let warning = session
        .wait_for("the ignored-settings warning", |m| {
            m["method"] == "window/showMessage"
                && m["params"]["message"].as_str().unwrap().contains("ignored")
        })
        .await;
    assert_eq!(warning["params"]["type"], 2);
    assert_eq!(shared.engine().config().ai.services.len(), 1);
    assert_eq!(session.status().await["services"], json!(["mock"]));
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_answered_and_the_session_goes_on() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut options = ServerOptions::shared(shared, false);
    options.max_message_bytes = 1024 * 1024;
    let mut session = Session::start(options);
    session.initialize(&fixture.root).await;

    let error_for = |code: i64| move |m: &Value| m["error"]["code"] == code;
    session.send_raw("this is not JSON".into()).await;
    let parse = session.wait_for("a parse error", error_for(-32700)).await;
    assert_eq!(parse["id"], Value::Null);
    session.send_raw("[1, 2, 3]".into()).await;
    session
        .wait_for("an invalid request", error_for(-32600))
        .await;
    session
        .send_raw(r#"{"jsonrpc":"2.0","id":77,"method":42}"#.into())
        .await;
    let invalid = session
        .wait_for("an invalid request with its id", |m| m["id"] == 77)
        .await;
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");
    // A message over the limit: refused without being parsed.
    let huge = json!({"jsonrpc": "2.0", "id": 78, "method": "aicockpit/status", "params": {"pad": "x".repeat(2 * 1024 * 1024)}});
    session.send_raw(huge.to_string()).await;
    let over = session
        .wait_for("the over-limit error", |m| {
            m["error"]["message"]
                .as_str()
                .is_some_and(|text| text.contains("over the limit"))
        })
        .await;
    assert_eq!(over["error"]["code"], -32600);
    // Still answering, in order.
    let status = session.status().await;
    assert_eq!(status["session"]["shared"], true);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_releases_its_documents_and_shutdown_is_announced() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut a = Session::start(ServerOptions::shared(shared.clone(), false));
    let mut b = Session::start(ServerOptions::shared(shared.clone(), false));
    a.initialize(&fixture.root).await;
    b.initialize(&fixture.root).await;
    b.wait_for_index().await;
    let helpers = fixture.uri("src/helpers.rs");
    a.notify(
        "textDocument/didOpen",
        open_params(&helpers, 1, "pub fn unsaved_in_a() {}\n"),
    )
    .await;
    a.status().await;
    b.symbols_until("unsaved_in_a", |names| {
        names == ["unsaved_in_a".to_string()]
    })
    .await;
    assert_eq!(b.status().await["openDocuments"], 1);

    // A's connection drops without shutdown or exit: its documents are released.
    assert_eq!(a.close().await, SessionEnd::Closed);
    assert_eq!(b.status().await["openDocuments"], 0);
    b.symbols_until("unsaved_in_a", |names| names.is_empty())
        .await;
    assert_eq!(b.symbols("format_name").await, ["format_name"]);

    // A session that ends with shutdown and exit says so.
    let mut c = Session::start(ServerOptions::shared(shared.clone(), false));
    c.initialize(&fixture.root).await;
    c.request("shutdown", Value::Null).await;
    c.notify("exit", Value::Null).await;
    let end = tokio::time::timeout(DEADLINE, c.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        end,
        SessionEnd::Exit {
            after_shutdown: true
        }
    );

    // The host's own signal ends one session, with a message.
    let (signal, receiver) = tokio::sync::watch::channel(false);
    let mut options = ServerOptions::shared(shared.clone(), false);
    options.shutdown = Some(receiver);
    let mut d = Session::start(options);
    d.initialize(&fixture.root).await;
    signal.send_replace(true);
    d.wait_for("the shutdown notice", |m| {
        m["method"] == "window/showMessage"
            && m["params"]["message"]
                .as_str()
                .unwrap()
                .contains("shutting down")
    })
    .await;
    let end = tokio::time::timeout(DEADLINE, d.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, SessionEnd::ServerShutdown);

    // The project's shutdown tells every session, which ends, and flushes.
    b.notify(
        "textDocument/didOpen",
        open_params(&helpers, 1, "pub fn flushed_at_shutdown() {}\n"),
    )
    .await;
    b.status().await;
    assert!(shared.shutdown().await.is_ok());
    b.wait_for("the shutdown notice", |m| {
        m["method"] == "window/showMessage"
            && m["params"]["message"]
                .as_str()
                .unwrap()
                .contains("shutting down")
    })
    .await;
    let end = tokio::time::timeout(DEADLINE, b.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, SessionEnd::ServerShutdown);
    // Its documents were released: the disk's text is indexed again.
    let engine = shared.engine();
    let names: Vec<String> = tokio::task::spawn_blocking(move || {
        engine.flush().unwrap();
        engine
            .workspace_symbols("format_name", 10)
            .into_iter()
            .map(|(_, symbol)| symbol.name.into())
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(names, ["format_name"]);
    assert_eq!(shared.engine().open_document_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_held_back_then_dropped() {
    let fixture = Fixture::new();
    let shared = fixture.shared(Config::default()).await;
    let mut options = ServerOptions::shared(shared.clone(), false);
    options.slow_client_timeout = Duration::from_secs(3);
    let (to_server, incoming) = mpsc::channel(16);
    // Room for one message, and nobody reads it.
    let (outgoing, _never_read) = mpsc::channel(1);
    let task = tokio::spawn(serve_messages(options, incoming, outgoing));
    // Requests until the session stops taking them for a second: the
    // answers pile up in bounded queues, then nothing more is read.
    let mut sent = 0u64;
    let held_back = loop {
        let request = json!({"jsonrpc": "2.0", "id": sent, "method": "aicockpit/status"});
        match to_server
            .send_timeout(request.to_string(), Duration::from_secs(1))
            .await
        {
            Ok(()) => sent += 1,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => break true,
            Err(mpsc::error::SendTimeoutError::Closed(_)) => break false,
        }
        assert!(sent < 1_000_000, "the session never stopped reading");
    };
    assert!(
        held_back,
        "the session ended before it held the client back"
    );
    let end = tokio::time::timeout(DEADLINE, task)
        .await
        .expect("a client that never reads is dropped")
        .unwrap();
    assert_eq!(end, SessionEnd::ClientTooSlow);
    assert!(sent > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_joining_during_the_first_index_follows_the_same_run() {
    let fixture = Fixture::new();
    for i in 0..3000 {
        std::fs::write(
            fixture.root.join(format!("src/gen_{i}.rs")),
            format!("pub fn generated_{i}(x: i32) -> i32 {{ x + {i} }}\n"),
        )
        .unwrap();
    }
    let (root, paths) = (fixture.root.clone(), fixture.paths.clone());
    // Not started: the first session's `initialized` starts the one run.
    let shared = tokio::task::spawn_blocking(move || {
        SharedEngine::open(&root, Config::default(), paths, None).unwrap()
    })
    .await
    .unwrap();
    let mut a = Session::start(ServerOptions::shared(shared.clone(), false));
    a.initialize(&fixture.root).await;
    a.wait_for("a progress report", |m| {
        m["method"] == "$/progress" && m["params"]["value"]["kind"] == "report"
    })
    .await;
    let mut b = Session::start(ServerOptions::shared(shared.clone(), false));
    b.initialize(&fixture.root).await;
    assert_eq!(b.status().await["indexing"], true);
    b.wait_for("progress begin", |m| {
        m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin"
    })
    .await;
    let end = b
        .wait_for("progress end", |m| {
            m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end"
        })
        .await;
    let summary = end["params"]["value"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.contains("3002 files"), "{end}");
    // One run: A's summary is the same line (not a second walk's).
    let a_end = a
        .wait_for("progress end", |m| {
            m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end"
        })
        .await;
    assert_eq!(a_end["params"]["value"]["message"], summary.as_str());
    let status = b.status().await;
    assert_eq!(status["indexing"], false);
    assert_eq!(status["files"], 3002, "{status}");
    a.close().await;
    b.close().await;
}

/// `initialize` of a session that opens its own project, with these settings.
async fn initialize_with(fixture: &Fixture, config: Config, settings: Value) -> Value {
    let mut session = Session::start(ServerOptions::new(config, fixture.paths.clone()));
    let response = session
        .request_response(
            "initialize",
            json!({
                "processId": null,
                "rootUri": format!("file://{}", fixture.root.display()),
                "capabilities": {},
                "initializationOptions": settings,
            }),
        )
        .await;
    session.close().await;
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_settings_cannot_make_the_index_start_more_parser_threads() {
    let fixture = Fixture::new();
    let mut file = Config::default();
    file.index.threads = 2;
    // A repository's editor settings asking for 65535 threads (each started
    // when the index opens) are refused before the index opens: past the
    // bound every source has…
    for threads in [300, 65535] {
        let response = initialize_with(
            &fixture,
            file.clone(),
            json!({"aicockpit": {"index": {"threads": threads}}}),
        )
        .await;
        let error = response["error"]["message"].as_str().unwrap_or_default();
        assert!(
            error.contains("index.threads") && error.contains("at most 256"),
            "{response}"
        );
    }
    // …and, within it, above what the config file allows.
    let response = initialize_with(&fixture, file.clone(), json!({"index": {"threads": 3}})).await;
    let error = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("index.threads") && error.contains("above 2"),
        "{response}"
    );
    // Fewer threads than the file's are fine.
    let response = initialize_with(&fixture, file, json!({"index": {"threads": 1}})).await;
    assert!(response.get("error").is_none(), "{response}");
}
