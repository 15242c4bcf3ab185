//! Our AI path against a real model server: llama.cpp's server with
//! SmolLM2-135M (see `llamacpp_server`), through our binaries. These tests
//! assert wire behaviour and our guarantees — answered, well-formed,
//! cancellable, post-processed, clear failures — never the model's wisdom.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::llamacpp_server::{http_get, skipped, LlamaServer, MODEL, N_CTX};
use crate::support::{file_uri, stderr, stdout, LspClient, Project, DEADLINE};

const CALC_PY: &str = "\
def add(a, b):
    return a + b


def mul(a, b):
    return 
";

fn config(kind: &str, url: &str, extra: &str) -> String {
    format!(
        "[ai]\nactive = \"local\"\n\n[[ai.services]]\nname = \"local\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\nchat_model = \"{MODEL}\"\n{extra}"
    )
}

fn project_with(config_toml: &str, files: &[(&str, &str)]) -> Project {
    let project = Project::new(files);
    std::fs::write(project.home.path().join("config.toml"), config_toml).unwrap();
    project
}

fn start_lsp(project: &Project) -> LspClient {
    let mut client = LspClient::spawn(project, &[]);
    // What VS Code and Neovim declare: code action literals, edits resolved lazily.
    client.initialize(
        &project.root(),
        json!({
            "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true}},
            "textDocument": {"codeAction": {
                "codeActionLiteralSupport": {"codeActionKind": {"valueSet": ["", "quickfix", "refactor", "refactor.rewrite"]}},
                "resolveSupport": {"properties": ["edit"]},
            }},
        }),
    );
    client.wait_for_index();
    client
}

fn json_out(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(output), stderr(output)))
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether llama.cpp's only slot is generating.
fn slot_busy(server: &LlamaServer) -> bool {
    let (_, body) = http_get(server.port, "/slots").expect("GET /slots");
    let slots: Value = serde_json::from_str(&body).expect("/slots is JSON");
    slots[0]["is_processing"] == true
}

#[test]
fn ai_add_and_test_report_models_latency_and_an_honest_fim_verdict() {
    if skipped() {
        return;
    }
    let server = LlamaServer::shared();
    let project = Project::new(&[]);
    let added = project.cli(&[
        "ai",
        "add",
        "local",
        "--kind",
        "llamacpp",
        "--url",
        &server.url(),
        "--chat-model",
        MODEL,
        "--use",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));

    let output = project.cli(&["ai", "test", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json_out(&output);
    assert_eq!(report["test"]["ok"], true, "{report}");
    assert!(report["test"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(
        report["test"]["models"]
            .as_array()
            .unwrap()
            .contains(&json!(MODEL)),
        "{report}"
    );
    // SmolLM2 has no FIM tokens: llama.cpp's /infill refuses it, and we say so.
    let probe = &report["fim_probe"];
    assert_eq!(probe["method"], "infill", "{report}");
    assert_eq!(probe["fim_capable"], false, "{report}");
    assert_eq!(probe["inline_completion"], "chat");
    let warning = probe["warning"].as_str().unwrap();
    assert!(
        warning.contains("Infill is not supported by this model")
            && warning.contains("use a FIM-capable completion model"),
        "the service's own message and advice: {warning}"
    );
    let verdicts =
        std::fs::read_to_string(project.home.path().join("data/fim-verdicts.json")).unwrap();
    assert!(verdicts.contains("\"fim_capable\": false"), "{verdicts}");

    // Through the plain completions endpoint llama.cpp ignores `suffix` for
    // this model: the two gaps get the same answer, which the old probe took
    // for a filled gap.
    let added = project.cli(&[
        "ai",
        "add",
        "plain",
        "--kind",
        "custom",
        "--url",
        &format!("{}/v1", server.url()),
        "--chat-model",
        MODEL,
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let output = project.cli(&["ai", "test", "plain"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("warning: plain: not fill-in-the-middle capable")
            && text.contains("plain: inline completion uses chat prompts")
            && !text.contains("fill-in-the-middle OK"),
        "{text}"
    );
}

#[test]
fn cli_chat_streams_a_real_answer_and_names_its_sources() {
    if skipped() {
        return;
    }
    let server = LlamaServer::shared();
    let project = project_with(
        &config("llamacpp", &server.url(), ""),
        &[("calc.py", CALC_PY)],
    );
    let output = project.cli(&[
        "chat",
        "In one sentence: what does mul do?",
        "--path",
        "calc.py",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let (answer, sources) = text.rsplit_once("Sources: ").expect("a sources line");
    assert!(!answer.trim().is_empty(), "an answer: {text}");
    assert!(sources.contains("calc.py"), "{text}");
}

#[test]
fn the_language_server_answers_with_the_real_model() {
    if skipped() {
        return;
    }
    let server = LlamaServer::shared();
    let project = project_with(
        &config("llamacpp", &server.url(), ""),
        &[("calc.py", CALC_PY)],
    );
    let mut client = start_lsp(&project);
    let uri = file_uri(&project.root().join("calc.py"));

    // Chat: llama.cpp's real chunks (with its extra fields, a null first
    // content) through our SSE parser, streamed as partial results.
    let result = client.request(
        "aicockpit/chat",
        json!({
            "messages": [{"role": "user", "content": "In one sentence: what does mul do?"}],
            "uri": uri,
            "range": {"start": {"line": 4, "character": 4}, "end": {"line": 4, "character": 4}},
            "partialResultToken": "chat-real",
        }),
    );
    let content = result["content"].as_str().expect("an answer");
    assert!(content.contains("Sources: calc.py"), "{result}");
    let streamed: String = client
        .seen
        .iter()
        .filter(|m| m["method"] == "$/progress" && m["params"]["token"] == "chat-real")
        .map(|m| m["params"]["value"]["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        streamed, content,
        "the partial results add up to the answer"
    );
    assert!(
        client
            .seen
            .iter()
            .filter(|m| m["params"]["token"] == "chat-real")
            .count()
            > 2,
        "streamed in pieces"
    );

    // Inline completion at `    return ` of mul, through the chat prompt
    // (the model cannot fill a gap): whatever the model says, what is shown
    // is post-processed — never a line the file already has, never a new
    // definition in the middle of a statement.
    let answer = client.request(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 11},
               "context": {"triggerKind": 2}}),
    );
    let items = answer["items"].as_array().expect("an item list");
    let existing: Vec<&str> = CALC_PY
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for item in items {
        let text = item["insertText"].as_str().unwrap();
        assert!(!text.trim().is_empty(), "{answer}");
        let first = text.lines().next().unwrap_or("").trim();
        assert!(!existing.contains(&first), "repeats the file: {answer}");
        assert!(
            !first.starts_with("def "),
            "a new definition mid-statement: {answer}"
        );
        assert_eq!(item["range"]["start"], json!({"line": 5, "character": 11}));
    }
    let status = client.request("aicockpit/status", Value::Null);
    let ai = &status["ai"];
    assert_eq!(ai["inlineMethod"], "chat", "{status}");
    assert_eq!(
        ai["servedContextTokens"], N_CTX,
        "read from /props: {status}"
    );
    assert!(ai["promptBudgetTokens"].as_u64().unwrap() < u64::from(N_CTX));
    assert!(ai["lastInlineServiceMs"].as_f64().unwrap() <= ai["lastInlineMs"].as_f64().unwrap());

    // Completion items: an invoked completion is a well-formed list.
    let completion = client.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 11},
               "context": {"triggerKind": 1}}),
    );
    let list = completion
        .as_array()
        .or_else(|| completion["items"].as_array())
        .expect("a completion list");
    for item in list {
        assert!(item["label"].is_string(), "{completion}");
    }

    // A code action resolved into an edit of exactly the range asked about.
    let range = json!({"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}});
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}),
    );
    let document = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "AiCockpit: add documentation")
        .expect("a document action")
        .clone();
    let resolved = client.request("codeAction/resolve", document);
    let edit = &resolved["edit"]["documentChanges"][0]["edits"][0];
    assert_eq!(edit["range"], range, "{resolved}");
    assert!(edit["newText"].is_string(), "{resolved}");

    // A shell command for the terminal: one line, never run.
    let suggestion = client.request(
        "aicockpit/suggestCommand",
        json!({"description": "list the files in this folder", "cwd": "/tmp", "shell": "bash"}),
    );
    let command = suggestion["command"].as_str().expect("a command");
    assert!(!command.contains('\n'), "{suggestion}");
    assert!(suggestion["explanation"].is_string(), "{suggestion}");
    assert!(client.shutdown().success());
}

#[test]
fn a_cancelled_chat_stops_the_generation() {
    if skipped() {
        return;
    }
    let server = LlamaServer::start();
    let project = project_with(
        &config("llamacpp", &server.url(), ""),
        &[("calc.py", CALC_PY)],
    );
    let mut client = start_lsp(&project);
    let id = client.request_async(
        "aicockpit/chat",
        json!({"messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}],
               "partialResultToken": "long"}),
    );
    client.wait_for("the first streamed piece", |m| {
        m["method"] == "$/progress" && m["params"]["token"] == "long"
    });
    assert!(slot_busy(&server), "llama.cpp is generating");
    client.notify("$/cancelRequest", json!({"id": id}));
    let answer = client.response(id);
    assert_eq!(answer["error"]["code"], -32800, "{answer}");
    // Dropping our request closed the connection, and llama.cpp stopped
    // generating long before its 128-token limit (its log says how many).
    wait_until("llama.cpp to stop generating", || {
        !slot_busy(&server) && server.log_text().contains("stop processing")
    });
    let log = server.log_text();
    let in_context: u64 = log
        .lines()
        .filter_map(|l| {
            l.split_once("stop processing: n_tokens = ")?
                .1
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or_else(|| panic!("no slot release in the server's log:\n{log}"));
    let (_, slots) = http_get(server.port, "/slots").unwrap();
    let slots: Value = serde_json::from_str(&slots).unwrap();
    let prompt = slots[0]["n_prompt_tokens"]
        .as_u64()
        .expect("n_prompt_tokens");
    let generated = in_context - prompt;
    assert!(
        generated < 100,
        "generated {generated} tokens after the cancel:\n{log}"
    );
    // And the server keeps serving.
    let status = client.request("aicockpit/status", Value::Null);
    assert!(status["ai"].is_object());
    assert!(client.shutdown().success());
}

#[test]
fn a_server_killed_mid_stream_fails_clearly_and_at_once() {
    if skipped() {
        return;
    }
    let server = LlamaServer::start();
    let project = project_with(
        &config("llamacpp", &server.url(), ""),
        &[("calc.py", CALC_PY)],
    );
    let mut child = project
        .command(env!("CARGO_BIN_EXE_aicockpit"))
        .args(["chat", "Count from 1 to 500, one number per line."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    out.read_exact(&mut first)
        .expect("the answer starts streaming");
    server.kill();
    let killed_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed_at.elapsed() < DEADLINE,
            "the CLI hangs after the server died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "local: the stream failed: the connection broke before the reply was finished"
        ),
        "names the service and what failed: {err}"
    );
    assert!(killed_at.elapsed() < Duration::from_secs(10), "no hang");
}

#[test]
fn a_prompt_beyond_the_context_gets_the_service_message_and_the_budget_adapts() {
    if skipped() {
        return;
    }
    // A server of its own with a small context keeps the prompts cheap.
    let server = LlamaServer::start_with(512, 16);
    // A question longer than the served context: the service's own message.
    let project = project_with(
        &config("llamacpp", &server.url(), ""),
        &[("calc.py", CALC_PY)],
    );
    let question = "word ".repeat(3000);
    let output = project.cli(&["chat", &question]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("local: HTTP 400")
            && err.contains("exceeds the available context size (512 tokens)"),
        "{err}"
    );

    // A large file and a prompt budget beyond the served context: kind
    // `llamacpp` reads n_ctx from /props and fits the prompt to it…
    let mut big = String::new();
    for n in 0..400 {
        big.push_str(&format!(
            "def helper_{n}(value):\n    total = value * {n} + len(str(value))\n    return total\n\n"
        ));
    }
    big.push_str("def last(value):\n    return ");
    let budget = "[completion]\nmax_context_tokens = 6000\ndebounce_ms = 0\n";
    let fitted = project_with(
        &config("llamacpp", &server.url(), budget),
        &[("big.py", &big)],
    );
    let mut client = start_lsp(&fitted);
    let uri = file_uri(&fitted.root().join("big.py"));
    let position = json!({"line": 1601, "character": 11});
    let answer = client.request_response(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": position}),
    );
    assert!(answer["result"]["items"].is_array(), "answered: {answer}");
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["ai"]["servedContextTokens"], 512, "{status}");
    assert_eq!(status["ai"]["promptBudgetTokens"], 85, "{status}");
    assert!(client.shutdown().success());

    // …where a service that does not say its context size gets the configured
    // budget, and llama.cpp refuses the prompt with its own message.
    let unfitted = project_with(
        &config("custom", &format!("{}/v1", server.url()), budget),
        &[("big.py", &big)],
    );
    let mut client = start_lsp(&unfitted);
    let uri = file_uri(&unfitted.root().join("big.py"));
    let answer = client.request_response(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": position}),
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("exceeds the available context size"),
        "{answer}"
    );
    assert!(client.shutdown().success());
}
