//! What a plain LSP client (Neovim's defaults) needs from the server: a
//! project without a root folder, files changed outside the editor without
//! client watchers, AI failures said once, fresh workspace symbols, one
//! definition per symbol.

use std::time::{Duration, Instant};

use aicockpit_ai::mock::{Behavior, MockServer};
use serde_json::{json, Value};

use crate::support::{file_uri, LspClient, Project, DEADLINE};

const A_PY: &str =
    "from pkg.b import helper_function\n\n\ndef main():\n    return helper_function(1)\n";
const B_PY: &str = "def helper_function(x):\n    \"\"\"Doubles x.\"\"\"\n    return x * 2\n";

/// Capabilities like Neovim's on Linux: no watcher registration, no progress.
fn plain_capabilities() -> Value {
    json!({"textDocument": {"documentSymbol": {"hierarchicalDocumentSymbolSupport": true}}})
}

fn initialize_without_root(client: &mut LspClient) {
    client.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": plain_capabilities()}),
    );
    client.notify("initialized", json!({}));
}

fn open(client: &mut LspClient, path: &std::path::Path, text: &str) {
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": file_uri(path), "languageId": "python", "version": 1, "text": text}}),
    );
}

fn symbols(client: &mut LspClient, query: &str) -> Vec<Value> {
    client
        .request("workspace/symbol", json!({"query": query}))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Poll until `condition` holds, within the deadline.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_without_a_root_gets_the_first_files_project_and_is_told() {
    let project = Project::new(&[
        ("pyproject.toml", "[project]\nname = \"demo\"\n"),
        ("pkg/__init__.py", ""),
        ("pkg/a.py", A_PY),
        ("pkg/b.py", B_PY),
    ]);
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    initialize_without_root(&mut client);
    // Before any file is open there is nothing to serve, and no error either.
    assert_eq!(symbols(&mut client, "helper_function"), Vec::<Value>::new());

    open(&mut client, &root.join("pkg/a.py"), A_PY);
    let message = client.wait_for("the root fallback message", |m| {
        m["method"] == "window/showMessage"
            && m["params"]["message"]
                .as_str()
                .is_some_and(|text| text.contains("no root folder"))
    });
    let text = message["params"]["message"].as_str().unwrap();
    assert!(text.contains(&root.display().to_string()), "{text}");
    assert!(text.contains("pyproject.toml"), "{text}");
    let status = client.wait_for_index();
    assert_eq!(status["root"], root.display().to_string());
    assert_eq!(status["files"], 3, "{status}");

    let found = symbols(&mut client, "helper_function");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["location"]["uri"],
        file_uri(&root.join("pkg/b.py"))
    );

    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": file_uri(&root.join("pkg/a.py"))}, "position": {"line": 4, "character": 14}}),
    );
    assert_eq!(definition.as_array().map(Vec::len), Some(1), "{definition}");
    assert_eq!(definition[0]["uri"], file_uri(&root.join("pkg/b.py")));
    assert_eq!(client.shutdown().code(), Some(0));
}

#[test]
fn files_changed_outside_the_editor_are_seen_without_client_watchers() {
    let project = Project::new(&[("pkg/a.py", A_PY), ("pkg/b.py", B_PY)]);
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, plain_capabilities());
    client.wait_for_index();
    assert!(
        !client
            .seen
            .iter()
            .any(|m| m["method"] == "client/registerCapability"),
        "a client without dynamic registration is not asked to watch"
    );

    project.write(
        "pkg/fresh.py",
        "def created_outside_the_editor():\n    pass\n",
    );
    eventually("the new file in workspace/symbol", || {
        symbols(&mut client, "created_outside_the_editor").len() == 1
    });
    // A new folder with a file already in it, and a deletion.
    project.write("pkg/sub/deeper.py", "class MadeInANewFolder:\n    pass\n");
    eventually("the new folder's file in workspace/symbol", || {
        symbols(&mut client, "MadeInANewFolder").len() == 1
    });
    std::fs::remove_file(root.join("pkg/fresh.py")).unwrap();
    eventually("the deleted file to leave workspace/symbol", || {
        symbols(&mut client, "created_outside_the_editor").is_empty()
    });
    // Ignored folders are neither watched nor indexed.
    project.write(".ignore", "generated/\n");
    project.write("generated/out.py", "def ignored_symbol_here():\n    pass\n");
    project.write(
        "pkg/after.py",
        "def written_after_the_ignored_one():\n    pass\n",
    );
    eventually("a later file in workspace/symbol", || {
        symbols(&mut client, "written_after_the_ignored_one").len() == 1
    });
    assert!(symbols(&mut client, "ignored_symbol_here").is_empty());
    assert_eq!(client.shutdown().code(), Some(0));
}

#[test]
fn workspace_symbols_see_every_edit_received_before_the_request() {
    let project = Project::new(&[("pkg/a.py", A_PY)]);
    let root = project.root();
    // A long debounce: only a flush before answering can make the edit visible.
    std::fs::write(
        project.home.path().join("config.toml"),
        "[index]\nupdate_debounce_ms = 60000\n",
    )
    .unwrap();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, plain_capabilities());
    client.wait_for_index();
    let a = root.join("pkg/a.py");
    open(&mut client, &a, A_PY);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": file_uri(&a), "version": 2},
               "contentChanges": [{"text": format!("{A_PY}\ndef typed_just_now():\n    pass\n")}]}),
    );
    let found = symbols(&mut client, "typed_just_now");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(client.shutdown().code(), Some(0));
}

/// A race (the first index against the first flush of an open document) that
/// the old code lost about two times in three: five rounds catch it.
#[test]
fn the_definition_is_given_once_when_its_file_was_open_during_the_first_index() {
    for _ in 0..5 {
        definition_once_with_the_file_open_during_the_first_index();
    }
}

fn definition_once_with_the_file_open_during_the_first_index() {
    let project = Project::new(&[("pkg/a.py", A_PY), ("pkg/b.py", B_PY)]);
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, plain_capabilities());
    // Opened (with an unsaved edit) before the first index ends: indexed
    // from the editor and from disk at once.
    let edited = format!("# unsaved\n{B_PY}");
    open(&mut client, &root.join("pkg/b.py"), &edited);
    open(&mut client, &root.join("pkg/a.py"), A_PY);
    client.wait_for_index();
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": file_uri(&root.join("pkg/a.py"))}, "position": {"line": 4, "character": 14}}),
    );
    assert_eq!(definition.as_array().map(Vec::len), Some(1), "{definition}");
    assert_eq!(
        definition[0]["range"]["start"]["line"], 1,
        "the editor's text wins"
    );
    let found = symbols(&mut client, "helper_function");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(client.shutdown().code(), Some(0));
}

#[test]
fn an_ai_failure_is_shown_once_until_the_service_recovers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = Project::new(&[("pkg/a.py", A_PY)]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n\
             chat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
            mock.url()
        ),
    )
    .unwrap();
    let root = project.root();
    let a = root.join("pkg/a.py");
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, plain_capabilities());
    client.wait_for_index();
    open(&mut client, &a, A_PY);
    // Each request at another place: answers are cached per prompt.
    let complete = |client: &mut LspClient, line: u32| {
        client.request_response(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": file_uri(&a)}, "position": {"line": line, "character": 0}, "context": {"triggerKind": 1}}),
        )
    };
    let failures = |client: &LspClient| {
        client
            .seen
            .iter()
            .filter(|m| m["method"] == "window/showMessage" && m["params"]["type"] == 1)
            .count()
    };
    mock.set_behavior(Behavior::ServerError { times: 100 });
    for line in 0..3 {
        assert!(complete(&mut client, line).get("error").is_some());
    }
    let shown = client.wait_for("the failure message", |m| {
        m["method"] == "window/showMessage" && m["params"]["type"] == 1
    });
    let text = shown["params"]["message"].as_str().unwrap();
    assert!(text.contains("aicockpit ai test"), "{text}");
    assert!(text.contains("config.toml"), "{text}");
    // The two later failures were not shown again (they were recorded in `seen`).
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(failures(&client), 0, "{:#?}", client.seen);

    // Recovery, then a new failure: shown again, once.
    mock.set_behavior(Behavior::Normal);
    mock.set_reply("x");
    assert!(complete(&mut client, 3).get("result").is_some());
    mock.set_behavior(Behavior::ServerError { times: 100 });
    assert!(complete(&mut client, 4).get("error").is_some());
    assert!(complete(&mut client, 5).get("error").is_some());
    client.wait_for("the second failure message", |m| {
        m["method"] == "window/showMessage" && m["params"]["type"] == 1
    });
    client.request("aicockpit/status", Value::Null);
    assert_eq!(failures(&client), 0, "{:#?} {status}", client.seen);
    assert_eq!(client.shutdown().code(), Some(0));
}
