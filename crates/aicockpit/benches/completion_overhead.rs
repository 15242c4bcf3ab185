//! `cargo bench --bench completion_overhead`: the engine's own overhead per
//! inline completion, measured through the real `aicockpit-lsp` over stdio
//! on a large indexed project, against the mock OpenAI-compatible server
//! answering at once.
//!
//! Per request, with clocks in this one process: `to_http` is the time from
//! writing the LSP request to the mock having the whole HTTP request
//! (reading the document, assembling context from the index, rendering the
//! prompt, JSON, HTTP); `from_http` is the time from the mock's last byte to
//! the LSP response having been read (parsing, post-processing, LSP JSON).
//! The debounce is set to 0 and every request has a different prompt, so
//! neither the debounce nor the cache hides work.
//!
//! The project is `AICOCKPIT_BENCH_PROJECT`, default the cargo registry
//! sources. `AICOCKPIT_BENCH_LSP_AI=/path/to/lsp-ai` also measures lsp-ai
//! (its `textDocument/completion` against the same mock) in the same run.

#[allow(dead_code)]
#[path = "../../../tests/integration/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;
use serde_json::{json, Value};
use support::{file_uri, LspClient, Project};

const WARMUP: usize = 10;
const RUNS: usize = 200;

fn main() {
    let project_root = match std::env::var_os("AICOCKPIT_BENCH_PROJECT") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
                });
            home.join("registry/src")
        }
    };
    if !project_root.is_dir() {
        eprintln!(
            "error: {} is not a folder; set AICOCKPIT_BENCH_PROJECT",
            project_root.display()
        );
        std::process::exit(1);
    }
    let Some(target) = pick_file(&project_root) else {
        eprintln!(
            "error: no Rust or Python file of 10-60 KiB under {}",
            project_root.display()
        );
        std::process::exit(1);
    };
    let text = std::fs::read_to_string(&target).expect("read the target file");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("result");

    let project = Project::new(&[]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[completion]\ndebounce_ms = 0\n\n[index]\nupdate_debounce_ms = 60000\n\n[ai]\nactive = \"mock\"\n\n\
             [[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\nbase_url = \"{}\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n\
             chat_model = \"qwen2.5-coder-1.5b\"\n",
            mock.url()
        ),
    )
    .expect("write config");

    eprintln!("indexing {} through aicockpit-lsp…", project_root.display());
    let mut client = LspClient::spawn(&project, &[]);
    let started = Instant::now();
    client.request(
        "initialize",
        json!({"processId": null, "rootUri": file_uri(&project_root), "capabilities": {}}),
    );
    client.notify("initialized", json!({}));
    let status = wait_for_index(&mut client);
    eprintln!(
        "indexed {} files, {} symbols in {:.1} s",
        status["files"],
        status["symbols"],
        started.elapsed().as_secs_f64()
    );

    let uri = file_uri(&target);
    let lang = if target.extension().is_some_and(|e| e == "py") {
        "python"
    } else {
        "rust"
    };
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}),
    );
    let cursor_line = text.lines().count() / 2;

    let Some((to_http, from_http)) = measure(
        &mut client,
        &mock,
        &uri,
        cursor_line,
        "textDocument/inlineCompletion",
    ) else {
        eprintln!("error: a completion request sent no HTTP request");
        std::process::exit(1);
    };
    let prompt_chars = mock
        .requests()
        .last()
        .and_then(|r| r.body["prompt"].as_str().map(str::len))
        .unwrap_or(0);
    client.shutdown();

    let total: Vec<Duration> = to_http
        .iter()
        .zip(&from_http)
        .map(|(a, b)| *a + *b)
        .collect();
    println!("## Completion overhead\n");
    println!("Command: `cargo bench --bench completion_overhead`\n");
    println!(
        "Project: `$AICOCKPIT_BENCH_PROJECT` ({} files, {} symbols indexed); completed file: `{}`; {RUNS} requests after {WARMUP} warm-up, each with a new prompt (about {prompt_chars} characters); mock answering at once; debounce 0.\n",
        status["files"],
        status["symbols"],
        target.strip_prefix(&project_root).unwrap_or(&target).display()
    );
    println!("| aicockpit-lsp | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|");
    for (name, samples) in [
        ("LSP request → HTTP request at the service", &to_http),
        ("last byte from the service → LSP response", &from_http),
        ("engine overhead (both)", &total),
    ] {
        let (p50, p99, max) = percentiles(samples);
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} |");
    }
    let (p50, p99, _) = percentiles(&total);
    println!(
        "\nTargets: p50 < 3 ms ({}), p99 < 15 ms ({}).",
        if p50 < 3.0 { "met" } else { "NOT met" },
        if p99 < 15.0 { "met" } else { "NOT met" }
    );
    if let Some(lsp_ai) = std::env::var_os("AICOCKPIT_BENCH_LSP_AI") {
        lsp_ai_comparison(Path::new(&lsp_ai), &mock, &target, &text, p50);
    } else {
        println!("\nlsp-ai: not measured in this run (set AICOCKPIT_BENCH_LSP_AI to its binary).");
    }
    drop(runtime);
}

/// Time `RUNS` requests of `method` at a cursor below a changing line (after
/// `WARMUP` more): LSP request → HTTP request, and last byte → LSP response.
/// `None` when a request sent no HTTP request.
fn measure(
    client: &mut LspClient,
    mock: &MockServer,
    uri: &str,
    cursor_line: usize,
    method: &str,
) -> Option<(Vec<Duration>, Vec<Duration>)> {
    let mut to_http = Vec::new();
    let mut from_http = Vec::new();
    for run in 0..WARMUP + RUNS {
        // A different line above the cursor each time: a new prompt, no cache hit.
        client.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": run + 2},
                "contentChanges": [{"range": {"start": {"line": cursor_line, "character": 0}, "end": {"line": cursor_line, "character": 0}}, "text": format!("// edit {run}\n")}],
            }),
        );
        let before = mock.requests().len();
        let sent = Instant::now();
        client.request_response(method, json!({"textDocument": {"uri": uri}, "position": {"line": cursor_line + 1, "character": 0}}));
        let received = Instant::now();
        let requests = mock.requests();
        let http = requests.get(before)?;
        if run >= WARMUP {
            to_http.push(http.received_at.duration_since(sent));
            from_http.push(received.duration_since(http.answered_at.unwrap_or(http.received_at)));
        }
    }
    Some((to_http, from_http))
}

fn wait_for_index(client: &mut LspClient) -> Value {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let status = client.request("aicockpit/status", Value::Null);
        if status["indexing"] == false && status["lastIndexMs"].is_number() {
            return status;
        }
        if Instant::now() > deadline {
            eprintln!("error: the index was not built within 15 minutes");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn percentiles(samples: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), *ms.last().unwrap_or(&0.0))
}

/// The first Rust or Python file of 10-60 KiB, in path order.
fn pick_file(root: &Path) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && found.len() < 200 {
                stack.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs" || e == "py") {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if (10 * 1024..60 * 1024).contains(&size) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found.into_iter().next()
}

/// The same measurement for lsp-ai's `textDocument/completion` against the
/// same mock: the same file, cursor, edits and fill-in-the-middle tokens,
/// a comparable context size, and its rate limit lifted.
fn lsp_ai_comparison(binary: &Path, mock: &MockServer, target: &Path, text: &str, our_p50: f64) {
    let project = Project::new(&[]);
    let program = binary.to_string_lossy().into_owned();
    let mut client = LspClient::spawn_program(
        &project,
        &program,
        &[],
        &[("NO_PROXY", "127.0.0.1,localhost")],
    );
    let options = json!({
        "memory": {"file_store": {}},
        "models": {"mock": {
            "type": "open_ai", "model": "qwen2.5-coder-1.5b", "auth_token": "unused",
            "completions_endpoint": format!("{}/completions", mock.url()), "max_requests_per_second": 100000,
        }},
        "completion": {"model": "mock", "parameters": {
            "max_context": 2048, "max_tokens": 128,
            "fim": {"start": "<|fim_prefix|>", "middle": "<|fim_suffix|>", "end": "<|fim_middle|>"},
        }},
    });
    let root = target.parent().unwrap_or(target);
    client.request("initialize", json!({"processId": null, "rootUri": file_uri(root), "capabilities": {}, "initializationOptions": options}));
    client.notify("initialized", json!({}));
    let uri = file_uri(target);
    let lang = if target.extension().is_some_and(|e| e == "py") {
        "python"
    } else {
        "rust"
    };
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": lang, "version": 1, "text": text}}),
    );
    let cursor_line = text.lines().count() / 2;
    let Some((to_http, from_http)) = measure(
        &mut client,
        mock,
        &uri,
        cursor_line,
        "textDocument/completion",
    ) else {
        println!("\nlsp-ai: a completion request sent no HTTP request; comparison abandoned.");
        return;
    };
    let prompt_chars = mock
        .requests()
        .last()
        .and_then(|r| r.body["prompt"].as_str().map(str::len))
        .unwrap_or(0);
    client.shutdown();
    let total: Vec<Duration> = to_http
        .iter()
        .zip(&from_http)
        .map(|(a, b)| *a + *b)
        .collect();
    println!("\n| lsp-ai 0.7.0 (`{}`), same mock, prompts of about {prompt_chars} characters | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|", binary.display());
    for (name, samples) in [
        ("LSP request → HTTP request at the service", &to_http),
        ("last byte from the service → LSP response", &from_http),
        ("overhead (both)", &total),
    ] {
        let (p50, p99, max) = percentiles(samples);
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} |");
    }
    let (their_p50, _, _) = percentiles(&total);
    println!("\nRatio of p50 overheads, aicockpit-lsp / lsp-ai: {:.2} (lsp-ai builds its prompt from the open file only; aicockpit also looks up definitions, similar recent edits and search hits in the project index).", our_p50 / their_p50);
}
