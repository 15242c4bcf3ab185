//! AI through the language server, end to end: the real `aicockpit-lsp`
//! over stdio against the mock OpenAI-compatible server.

use std::time::{Duration, Instant};

use aicockpit_ai::mock::{Behavior, MockServer};
use serde_json::{json, Value};

use crate::support::{file_uri, LspClient, Project};

const HELPERS_RS: &str = "\
/// Trims and capitalises a name.
pub fn format_name(name: &str) -> String {
    name.trim().to_string()
}
";

const LIB_RS: &str = "\
mod helpers;

pub fn greeting(name: &str) -> String {
    let shown = helpers::format_name(name);
    
}
";

struct Setup {
    runtime: tokio::runtime::Runtime,
    mock: MockServer,
    project: Project,
}

fn setup(service_toml: &dyn Fn(&MockServer) -> String) -> Setup {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = Project::new(&[("src/helpers.rs", HELPERS_RS), ("src/lib.rs", LIB_RS)]);
    std::fs::write(project.home.path().join("config.toml"), service_toml(&mock)).unwrap();
    Setup {
        runtime,
        mock,
        project,
    }
}

fn lmstudio(mock: &MockServer) -> String {
    format!(
        "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n\
         chat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n",
        mock.url()
    )
}

fn start(setup: &Setup, env: &[(&str, &str)]) -> LspClient {
    start_with(setup, env, json!({}))
}

fn start_with(setup: &Setup, env: &[(&str, &str)], capabilities: Value) -> LspClient {
    let mut client = LspClient::spawn_with_env(&setup.project, &[], env);
    let init = client.initialize(&setup.project.root(), capabilities);
    assert_eq!(init["capabilities"]["inlineCompletionProvider"], true);
    assert_eq!(
        init["capabilities"]["codeActionProvider"]["resolveProvider"],
        true
    );
    client.wait_for_index();
    let lib = setup.project.root().join("src/lib.rs");
    client.notify("textDocument/didOpen", json!({"textDocument": {"uri": file_uri(&lib), "languageId": "rust", "version": 1, "text": LIB_RS}}));
    client
}

fn cursor() -> Value {
    json!({"line": 4, "character": 4})
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn inline_completion_carries_index_context_and_feedback_is_counted() {
    let setup = setup(&lmstudio);
    setup.mock.set_reply("shown.to_uppercase()");
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));

    let result = client.request("textDocument/inlineCompletion", json!({"textDocument": {"uri": lib_uri}, "position": cursor(), "context": {"triggerKind": 2}}));
    let item = &result["items"][0];
    assert_eq!(item["insertText"], "shown.to_uppercase()", "{result}");
    // A pure insertion has no range, so Neovim draws it inline at the cursor.
    assert!(item.get("range").is_none(), "{result}");
    assert_eq!(item["command"]["command"], "aicockpit.acceptCompletion");

    // The prompt is a Qwen fill-in-the-middle prompt with the definition from the index.
    let request = setup
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/completions")
        .expect("a completions request");
    let prompt = request.body["prompt"].as_str().unwrap();
    assert!(prompt.starts_with("<|fim_prefix|>"), "{prompt}");
    assert!(prompt.contains("// src/helpers.rs\n// Trims and capitalises a name.\n// pub fn format_name(name: &str) -> String {"), "{prompt}");
    assert!(
        prompt.contains("let shown = helpers::format_name(name);\n    <|fim_suffix|>\n}"),
        "{prompt}"
    );
    assert_eq!(request.body["model"], "qwen2.5-coder-1.5b");
    assert!(request.body["stop"]
        .as_array()
        .unwrap()
        .contains(&json!("<|endoftext|>")));

    // Status notifications: working, then ok.
    let working = client.wait_for("working status", |m| {
        m["method"] == "aicockpit/didChangeStatus" && m["params"]["state"] == "working"
    });
    assert_eq!(working["params"]["service"], "mock");
    client.wait_for("ok status", |m| {
        m["method"] == "aicockpit/didChangeStatus" && m["params"]["state"] == "ok"
    });

    // Shown, accepted word by word (editors report a running total), then
    // whole: each character is counted once.
    client.notify("textDocument/didShowCompletion", json!({"item": item}));
    for total in [5, 6, 6] {
        client.notify(
            "textDocument/didPartiallyAcceptCompletion",
            json!({"item": item, "acceptedLength": total}),
        );
    }
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["acceptedChars"], 6, "{status}");
    client.request(
        "workspace/executeCommand",
        json!({"command": item["command"]["command"], "arguments": item["command"]["arguments"]}),
    );
    let status = client.request("aicockpit/status", Value::Null);
    let ai = &status["ai"];
    assert_eq!(ai["service"], "mock");
    assert_eq!(ai["completionsShown"], 1, "{status}");
    assert_eq!(ai["completionsAccepted"], 1);
    assert_eq!(ai["acceptedChars"], "shown.to_uppercase()".len());

    // A second request for the same prompt is answered from the cache.
    let before = setup.mock.requests().len();
    client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    assert_eq!(setup.mock.requests().len(), before);
    assert!(client.shutdown().success());
    drop(setup.runtime);
}

#[test]
fn superseded_and_cancelled_completions_are_answered_and_dropped() {
    let setup = setup(&lmstudio);
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));

    // Two requests in a row: the first is superseded and answered empty.
    let first = client.request_async(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    let second = client.request_async(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": {"line": 4, "character": 3}}),
    );
    assert_eq!(client.response(first)["result"]["items"], json!([]));
    assert!(client.response(second)["result"]["items"]
        .as_array()
        .is_some());

    // Cancelling a request that is waiting on the service drops the HTTP request.
    setup
        .mock
        .set_behavior(Behavior::Slow(Duration::from_secs(30)));
    setup.mock.set_reply("something new");
    let count = setup.mock.requests().len();
    let id = client.request_async(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": {"line": 4, "character": 2}}),
    );
    wait_until("the request to reach the mock", || {
        setup.mock.requests().len() > count
    });
    client.notify("$/cancelRequest", json!({"id": id}));
    let answer = client.response(id);
    assert_eq!(answer["error"]["code"], -32800, "{answer}");
    wait_until("the mock to see the request dropped", || {
        setup.mock.requests()[count].dropped
    });

    // A newer request supersedes one whose HTTP request is under way: the old
    // one is answered empty and its HTTP request dropped.
    let count = setup.mock.requests().len();
    let old = client.request_async(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": {"line": 4, "character": 1}}),
    );
    wait_until("the old request to reach the mock", || {
        setup.mock.requests().len() > count
    });
    setup.mock.set_behavior(Behavior::Normal);
    let new = client.request_async(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": {"line": 4, "character": 0}}),
    );
    assert_eq!(client.response(old)["result"]["items"], json!([]));
    wait_until("the superseded HTTP request to be dropped", || {
        setup.mock.requests()[count].dropped
    });
    assert_eq!(
        client.response(new)["result"]["items"][0]["insertText"],
        "something new"
    );
    assert!(client.shutdown().success());
}

#[test]
fn the_active_service_can_be_switched_at_run_time() {
    let second = tokio::runtime::Runtime::new().unwrap();
    let other = second.block_on(MockServer::start());
    other.set_reply("From the other service.");
    let setup = setup(&lmstudio);
    let mut client = start(&setup, &[]);
    let settings = json!({"aicockpit": {"ai": {"active": "other", "services": [
        {"name": "mock", "kind": "lmstudio", "base_url": setup.mock.url(), "chat_model": "mock-chat"},
        {"name": "other", "kind": "custom", "base_url": other.url(), "chat_model": "other-chat"},
    ]}}});
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": settings}),
    );
    let result = client.request(
        "aicockpit/chat",
        json!({"messages": [{"role": "user", "content": "hello"}]}),
    );
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .starts_with("From the other service."),
        "{result}"
    );
    assert_eq!(other.requests()[0].body["model"], "other-chat");
    assert!(setup
        .mock
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/chat/completions")));
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["service"], "other");
    assert!(client.shutdown().success());
}

#[test]
fn chat_streams_partial_results_and_names_its_sources() {
    let setup = setup(&lmstudio);
    setup.mock.set_reply("It trims the name first.");
    let mut client = start(&setup, &[]);
    let helpers_uri = file_uri(&setup.project.root().join("src/helpers.rs"));
    let result = client.request(
        "aicockpit/chat",
        json!({
            "messages": [{"role": "user", "content": "What does format_name do?"}],
            "uri": helpers_uri,
            "range": {"start": {"line": 1, "character": 10}, "end": {"line": 1, "character": 10}},
            "partialResultToken": "chat-1",
        }),
    );
    let content = result["content"].as_str().unwrap();
    assert!(content.starts_with("It trims the name first."), "{content}");
    assert!(content.contains("Sources: src/helpers.rs"), "{content}");
    assert_eq!(result["sources"][0], "src/helpers.rs");
    let streamed: String = client
        .seen
        .iter()
        .filter(|m| m["method"] == "$/progress" && m["params"]["token"] == "chat-1")
        .map(|m| m["params"]["value"]["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        streamed, content,
        "the partial results add up to the answer"
    );

    let request = setup
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(request.body["stream"], true);
    let system = request.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system
            .contains("pub fn format_name(name: &str) -> String {\n    name.trim().to_string()\n}"),
        "the symbol at the cursor: {system}"
    );
    assert_eq!(
        request.body["messages"][1]["content"],
        "What does format_name do?"
    );

    let suggestion = {
        setup.mock.set_reply("{\"command\": \"grep -rn format_name src\", \"explanation\": \"searches the sources\"}");
        client.request(
            "aicockpit/suggestCommand",
            json!({"description": "find uses of format_name", "cwd": "/work", "shell": "bash"}),
        )
    };
    assert_eq!(
        suggestion,
        json!({"command": "grep -rn format_name src", "explanation": "searches the sources"})
    );
    assert!(client.shutdown().success());
}

/// tower-lsp merges what handlers send through its client socket with the
/// handlers' responses, so the last partial result could be overtaken by
/// the response: every piece must arrive before it, every time.
#[test]
fn every_partial_result_of_a_chat_arrives_before_its_answer() {
    let setup = setup(&lmstudio);
    let reply = "one two three four five six seven eight nine ten";
    setup.mock.set_reply(reply);
    let mut client = start(&setup, &[]);
    let helpers_uri = file_uri(&setup.project.root().join("src/helpers.rs"));
    for round in 0..40 {
        let token = format!("chat-{round}");
        // With a file, the last piece (its sources) is sent just before the answer.
        let result = client.request(
            "aicockpit/chat",
            json!({
                "messages": [{"role": "user", "content": "Count to ten."}],
                "uri": helpers_uri,
                "range": {"start": {"line": 1, "character": 10}, "end": {"line": 1, "character": 10}},
                "partialResultToken": token,
            }),
        );
        let content = result["content"].as_str().unwrap();
        assert!(content.starts_with(reply), "{content}");
        assert!(content.contains("Sources: src/helpers.rs"), "{content}");
        let streamed: String = client
            .seen
            .iter()
            .filter(|m| m["method"] == "$/progress" && m["params"]["token"] == token.as_str())
            .map(|m| m["params"]["value"]["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            streamed, content,
            "round {round}: the partial results seen before the answer add up to it"
        );
    }
    assert!(client.shutdown().success());
}

#[test]
fn code_actions_resolve_to_applicable_edits() {
    let setup = setup(&lmstudio);
    // What VS Code and Neovim 0.10 declare: literals, and `edit` resolved lazily.
    let mut client = start_with(
        &setup,
        &[],
        json!({
            "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true}},
            "textDocument": {"codeAction": {
                "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["", "quickfix", "refactor", "refactor.rewrite"]}},
                "resolveSupport": {"properties": ["edit"]},
            }},
        }),
    );
    let helpers_uri = file_uri(&setup.project.root().join("src/helpers.rs"));
    let range = json!({"start": {"line": 1, "character": 0}, "end": {"line": 3, "character": 1}});
    let diagnostic = json!({"range": range, "message": "names are not capitalised", "severity": 2});
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": helpers_uri}, "range": range, "context": {"diagnostics": [diagnostic]}}),
    );
    let titles: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "AiCockpit: fix \"names are not capitalised\"",
            "AiCockpit: explain",
            "AiCockpit: refactor",
            "AiCockpit: add documentation"
        ]
    );
    assert!(actions[0].get("edit").is_none(), "computed only on resolve");
    assert!(actions[0].get("command").is_none(), "{actions:#}");
    assert_eq!(actions[0]["kind"], "quickfix");
    // Explain edits nothing: a command at once, with no (empty) kind.
    assert_eq!(actions[1]["command"]["command"], "aicockpit.explain");
    assert!(actions[1].get("kind").is_none(), "{actions:#}");
    assert!(actions[1].get("data").is_none(), "{actions:#}");
    assert_eq!(
        setup
            .mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .count(),
        0
    );

    let fixed = "pub fn format_name(name: &str) -> String {\n    name.trim().to_uppercase()\n}";
    setup
        .mock
        .set_reply(format!("Here is the fix:\n```rust\n{fixed}\n```\n"));
    let resolved = client.request("codeAction/resolve", actions[0].clone());
    let change = &resolved["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["uri"], helpers_uri);
    assert!(
        change["textDocument"]["version"].is_null(),
        "helpers.rs is not open"
    );
    let edits = &change["edits"];
    assert_eq!(edits[0]["range"], range);
    assert_eq!(edits[0]["newText"], fixed);
    let request = setup
        .mock
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/chat/completions"))
        .unwrap();
    assert!(request.body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("Fix this problem: names are not capitalised"));

    setup
        .mock
        .set_reply("It returns the name without surrounding spaces.");
    let command = actions[1]["command"].clone();
    let explained = client.request(
        "workspace/executeCommand",
        json!({"command": command["command"], "arguments": command["arguments"]}),
    );
    assert_eq!(explained, "It returns the name without surrounding spaces.");
    let shown = client.wait_for("the explanation", |m| m["method"] == "window/showMessage");
    assert_eq!(
        shown["params"]["message"],
        "It returns the name without surrounding spaces."
    );
    assert!(client.shutdown().success());
}

/// Clients that do not resolve `edit` get a command that computes the edit
/// and applies it; clients without literal support get bare commands.
#[test]
fn code_actions_for_clients_that_do_not_resolve_edits_apply_through_a_command() {
    let setup = setup(&lmstudio);
    let helpers_uri = file_uri(&setup.project.root().join("src/helpers.rs"));
    let range = json!({"start": {"line": 1, "character": 0}, "end": {"line": 3, "character": 1}});
    let fixed = "pub fn format_name(name: &str) -> String {\n    name.trim().to_lowercase()\n}";
    setup
        .mock
        .set_reply(format!("Done:\n```rust\n{fixed}\n```\n"));
    // Literals, but no resolveSupport and no documentChanges (an older Emacs).
    let mut client = start_with(
        &setup,
        &[],
        json!({
            "workspace": {"applyEdit": true},
            "textDocument": {"codeAction": {"codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["quickfix", "refactor"]}}}},
        }),
    );
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": helpers_uri}, "range": range, "context": {"diagnostics": []}}),
    );
    let refactor = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "AiCockpit: refactor")
        .unwrap()
        .clone();
    assert_eq!(refactor["command"]["command"], "aicockpit.applyAction");
    assert!(
        refactor.get("data").is_none(),
        "nothing to resolve: {refactor}"
    );
    let id = client.request_async(
        "workspace/executeCommand",
        json!({"command": "aicockpit.applyAction", "arguments": refactor["command"]["arguments"]}),
    );
    let apply = client.wait_for("workspace/applyEdit", |m| {
        m["method"] == "workspace/applyEdit"
    });
    let edit = &apply["params"]["edit"];
    assert!(edit.get("documentChanges").is_none(), "{edit}");
    assert_eq!(edit["changes"][&helpers_uri][0]["newText"], fixed);
    assert_eq!(edit["changes"][&helpers_uri][0]["range"], range);
    client.send(&json!({"jsonrpc": "2.0", "id": apply["id"], "result": {"applied": true}}));
    let done = client.response(id);
    assert!(done.get("error").is_none(), "{done}");
    assert!(client.shutdown().success());

    // No literal support at all: Command[].
    let mut client = start(&setup, &[]);
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": helpers_uri}, "range": range, "context": {"diagnostics": []}}),
    );
    let commands: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "aicockpit.explain",
            "aicockpit.applyAction",
            "aicockpit.applyAction"
        ],
        "{actions:#}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn a_dead_service_fails_clearly_and_the_server_keeps_serving() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let setup = setup(&|_| {
        format!(
            "[ai]\nactive = \"gone\"\n\n[[ai.services]]\nname = \"gone\"\nkind = \"ollama\"\nbase_url = \"http://127.0.0.1:{port}\"\nchat_model = \"m\"\n"
        )
    });
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));
    let answer = client.request_response(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "gone: cannot connect to http://127.0.0.1:{port}/v1/chat/completions"
        )),
        "{answer}"
    );
    let failing = client.wait_for("failing status", |m| {
        m["method"] == "aicockpit/didChangeStatus" && m["params"]["state"] == "failing"
    });
    assert!(failing["params"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
    let symbols = client.request("workspace/symbol", json!({"query": "format_name"}));
    assert_eq!(symbols[0]["name"], "format_name");
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["failures"], 1);
    assert!(client.shutdown().success());
}

#[test]
fn azure_chat_goes_to_the_deployment_with_the_api_key_header() {
    let setup = setup(&|mock| {
        format!(
            "[ai]\nactive = \"az\"\n\n[[ai.services]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"{}\"\ndeployment = \"gpt-4o\"\n\
             api_version = \"2024-10-21\"\napi_key_env = \"AZURE_TEST_KEY\"\n",
            mock.root_url()
        )
    });
    setup.mock.set_reply("Azure says hi.");
    let mut client = start(&setup, &[("AZURE_TEST_KEY", "az-secret")]);
    let result = client.request(
        "aicockpit/chat",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    assert!(result["content"]
        .as_str()
        .unwrap()
        .starts_with("Azure says hi."));
    let request = setup.mock.requests().into_iter().last().unwrap();
    assert_eq!(
        request.path,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(request.header("api-key"), Some("az-secret"));
    assert!(request.header("authorization").is_none());
    assert!(client.shutdown().success());
}

#[test]
fn chat_only_models_complete_through_a_chat_prompt() {
    let setup = setup(&|mock| {
        format!("[ai]\nactive = \"chat\"\n\n[[ai.services]]\nname = \"chat\"\nkind = \"openai\"\nbase_url = \"{}\"\nchat_model = \"gpt-4o-mini\"\n", mock.url())
    });
    // Chat models wrap code in fences and echo what follows the cursor: both are cleaned away.
    setup
        .mock
        .set_reply("```rust\nshown.len().to_string()\n}\n```");
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));
    let result = client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    assert_eq!(
        result["items"][0]["insertText"], "shown.len().to_string()",
        "{result}"
    );
    let request = setup
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(
        request.body["stop"],
        json!(["\n```"]),
        "no explanation after the code"
    );
    let user = request.body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("let shown = helpers::format_name(name);\n    <CURSOR>\n}"),
        "{user}"
    );
    assert!(
        user.contains("From src/helpers.rs:"),
        "index context: {user}"
    );
    assert!(client.shutdown().success());
}

/// The key stored for `cloud.ai`, which only mock A (the file's URL) may see.
const STORED_KEY: &str = "sk-stored-for-a-only";

/// A config file with `cloud.ai` at mock A (active) and its key stored with
/// `aicockpit ai add … --api-key-stdin`'s code; a second mock B stands for
/// the URL hostile editor settings name.
fn stored_key_setup() -> (Setup, tokio::runtime::Runtime, MockServer) {
    let setup = setup(&|mock| {
        format!(
            "[ai]\nactive = \"cloud.ai\"\n\n[[ai.services]]\nname = \"cloud.ai\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"a-chat\"\n",
            mock.url()
        )
    });
    setup.mock.set_reply("From A.");
    aicockpit_ai::store_key(
        &setup.project.home.path().join("data"),
        "cloud.ai",
        &aicockpit_ai::ApiKey::new(STORED_KEY),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let other = runtime.block_on(MockServer::start());
    other.set_reply("From B.");
    (setup, runtime, other)
}

/// No request B received carried the key, in any header.
fn assert_never_saw_the_key(mock: &MockServer) {
    let requests = mock.requests();
    assert!(
        !requests.is_empty(),
        "B was asked (the settings took effect)"
    );
    for request in requests {
        assert!(
            request.header("authorization").is_none() && request.header("api-key").is_none(),
            "B got a key header: {:?}",
            request.headers
        );
        assert!(
            request.headers.iter().all(|(_, v)| !v.contains(STORED_KEY)),
            "B saw the key"
        );
    }
}

fn chat(client: &mut LspClient) -> Value {
    client.request_response(
        "aicockpit/chat",
        json!({"messages": [{"role": "user", "content": "hello"}]}),
    )
}

fn wait_for_status(client: &mut LspClient, what: &str, condition: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client.request("aicockpit/status", Value::Null);
        if condition(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn initialization_options_cannot_send_a_stored_key_to_another_url() {
    let (setup, _runtime, other) = stored_key_setup();
    let mut client = LspClient::spawn_with_env(&setup.project, &[], &[]);
    // `cloud_ai` is a service only the editor knows; with the old key file
    // names it read `cloud.ai`'s key.
    let result = client.request(
        "initialize",
        json!({
            "processId": null,
            "rootUri": file_uri(&setup.project.root()),
            "capabilities": {},
            "initializationOptions": {"aicockpit": {"ai": {"active": "cloud_ai", "services": [
                {"name": "cloud.ai", "kind": "custom", "base_url": setup.mock.url(), "chat_model": "a-chat"},
                {"name": "cloud_ai", "kind": "custom", "base_url": other.url(), "chat_model": "b-chat"},
            ]}}},
        }),
    );
    assert!(result["capabilities"].is_object(), "{result}");
    client.notify("initialized", json!({}));
    client.wait_for_index();
    let answer = chat(&mut client);
    assert!(
        answer["result"]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("From B.")),
        "{answer}"
    );
    assert_never_saw_the_key(&other);
    // The file's own service at the file's URL still gets its key.
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"aicockpit": {"ai": {"active": "cloud.ai"}}}}),
    );
    wait_for_status(&mut client, "cloud.ai active", |s| {
        s["ai"]["service"] == "cloud.ai"
    });
    let answer = chat(&mut client);
    assert!(answer["result"]["content"].is_string(), "{answer}");
    let bearer = format!("Bearer {STORED_KEY}");
    assert!(setup
        .mock
        .requests()
        .iter()
        .any(|r| r.header("authorization") == Some(bearer.as_str())));
    assert!(client.shutdown().success());
}

#[test]
fn dropping_a_service_and_adding_it_back_elsewhere_does_not_carry_its_key() {
    let (setup, _runtime, other) = stored_key_setup();
    let mut client = start(&setup, &[]);
    // First the service disappears (a keyless one at B takes over)…
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"aicockpit": {"ai": {"active": "keyless", "services": [
            {"name": "keyless", "kind": "custom", "base_url": other.url(), "chat_model": "b-chat"},
        ]}}}}),
    );
    wait_for_status(&mut client, "the keyless service", |s| {
        s["ai"]["service"] == "keyless"
    });
    // …then it comes back under its own name at B.
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"aicockpit": {"ai": {"active": "cloud.ai", "services": [
            {"name": "cloud.ai", "kind": "custom", "base_url": other.url(), "chat_model": "b-chat"},
        ]}}}}),
    );
    wait_for_status(&mut client, "the second settings handled", |s| {
        s["ai"]["service"] == "cloud.ai"
            || s["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("settings ignored"))
    });
    let _ = chat(&mut client);
    assert_never_saw_the_key(&other);
    let status = client.request("aicockpit/status", Value::Null);
    assert!(
        status["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("ai.services[cloud.ai].base_url")),
        "moving the file's service is refused: {status}"
    );
    assert!(client.shutdown().success());
}

#[test]
fn an_unset_key_variable_is_named_before_any_request() {
    let setup = setup(&|mock| {
        format!(
            "[ai]\nactive = \"needs\"\n\n[[ai.services]]\nname = \"needs\"\nkind = \"openai\"\nbase_url = \"{}\"\nchat_model = \"gpt-4o-mini\"\napi_key_env = \"AICOCKPIT_TEST_UNSET_KEY\"\n",
            mock.url()
        )
    });
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));
    let inline = client.request_response(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    let answer = chat(&mut client);
    for response in [&inline, &answer] {
        let message = response["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("needs: no API key: $AICOCKPIT_TEST_UNSET_KEY is not set")
                && message.contains("export AICOCKPIT_TEST_UNSET_KEY="),
            "{response}"
        );
    }
    let status = client.request("aicockpit/status", Value::Null);
    assert!(
        status["ai"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("$AICOCKPIT_TEST_UNSET_KEY is not set")),
        "{status}"
    );
    assert!(
        setup.mock.requests().is_empty(),
        "no HTTP request without the key"
    );
    assert!(client.shutdown().success());
}

#[test]
fn the_fim_verdict_of_ai_test_decides_how_inline_completion_asks() {
    let setup = setup(&|mock| {
        format!(
            "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"llamacpp\"\nbase_url = \"{}\"\n\
             chat_model = \"mock-chat\"\n\n[completion]\nmax_context_tokens = 4096\n",
            mock.root_url()
        )
    });
    setup.mock.set_context_tokens(Some(1024));
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));

    // No verdict yet: a model of no known family is asked through chat.
    setup.mock.set_reply("shown");
    let mut client = start(&setup, &[]);
    client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["inlineMethod"], "chat", "{status}");
    assert_eq!(status["ai"]["servedContextTokens"], 1024, "{status}");
    assert_eq!(
        status["ai"]["promptBudgetTokens"],
        (1024 - 128 - 256) * 2 / 3,
        "fitted to the served context"
    );
    assert!(client.shutdown().success());

    // The probe finds a FIM model (the mock follows the suffix through /infill)…
    setup.mock.set_fim(true);
    let output = setup.project.cli(&["ai", "test", "--json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["fim_probe"]["method"], "infill", "{report}");
    assert_eq!(report["fim_probe"]["fim_capable"], true, "{report}");
    assert_eq!(
        report["fim_probe"]["completions"],
        json!(["alpha_count", "beta_total"])
    );

    // …and from then on inline completion asks by /infill with prefix and suffix.
    let mut client = start(&setup, &[]);
    let count = setup.mock.requests().len();
    client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": cursor()}),
    );
    let request = setup.mock.requests()[count..]
        .iter()
        .find(|r| r.method == "POST")
        .cloned()
        .expect("a completion request");
    assert_eq!(request.path, "/infill");
    assert!(request.body["input_prefix"]
        .as_str()
        .unwrap()
        .ends_with("let shown = helpers::format_name(name);\n    "));
    assert_eq!(request.body["input_suffix"], "\n}\n");
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["inlineMethod"], "infill", "{status}");
    assert!(client.shutdown().success());

    // A probe that finds no FIM switches it back to chat.
    setup.mock.set_fim(false);
    let output = setup.project.cli(&["ai", "test", "--json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["fim_probe"]["fim_capable"], false, "{report}");
    assert!(report["fim_probe"]["warning"]
        .as_str()
        .unwrap()
        .contains("Infill is not supported by this model"));
    let mut client = start(&setup, &[]);
    client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": lib_uri}, "position": {"line": 4, "character": 3}}),
    );
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["inlineMethod"], "chat", "{status}");
    assert!(client.shutdown().success());
}

/// An LM Studio entry with no model (as configured out of the box) answers
/// with a model the service lists, in the editor as in the CLI.
#[test]
fn a_local_service_without_a_model_answers_with_one_it_lists() {
    let setup = setup(&|mock| {
        format!(
            "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\n",
            mock.url()
        )
    });
    setup.mock.set_reply("shown.to_uppercase()");
    let mut client = start(&setup, &[]);
    let lib_uri = file_uri(&setup.project.root().join("src/lib.rs"));
    let result = client.request("textDocument/inlineCompletion", json!({"textDocument": {"uri": lib_uri}, "position": cursor(), "context": {"triggerKind": 2}}));
    assert_eq!(
        result["items"][0]["insertText"], "shown.to_uppercase()",
        "{result}"
    );
    let request = setup
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("completions"))
        .expect("a completion request");
    // A code model from the list (mock-chat and mock-coder are listed).
    assert_eq!(request.body["model"], "mock-coder");
    assert!(client.shutdown().success());
}
