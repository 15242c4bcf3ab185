//! `cargo bench --bench ghost_text_llamacpp`: keystroke-to-ghost-text with a
//! real local model — llama.cpp's server with SmolLM2-135M-Instruct (the
//! test suite's model server, see `tests/integration/llamacpp_server.rs`),
//! through the real `aicockpit-lsp` over stdio.
//!
//! Each run is one keystroke: a `didChange` that gives the document a new
//! line (so no cache answers), then `textDocument/inlineCompletion` at its
//! end, timed until the response is read. The debounce is the default
//! (75 ms), as an editor would see it. After each run `aicockpit/status`
//! gives the language server's own timings of that completion: time in the
//! engine (`lastInlineMs`) and, of that, time waiting for the service
//! (`lastInlineServiceMs`). Our share is everything but the service's time.
//!
//! Needs the Python of `AICOCKPIT_LLAMACPP_PYTHON` with the two wheels, as
//! the tests do; `AICOCKPIT_BENCH_RUNS` sets the number of runs (default 60).

#[allow(dead_code)]
#[path = "../../../tests/integration/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../../../tests/integration/llamacpp_server.rs"]
mod llamacpp_server;

use std::time::Instant;

use llamacpp_server::{LlamaServer, MODEL};
use serde_json::{json, Value};
use support::{file_uri, LspClient, Project};

const WARMUP: usize = 3;

const BASE: &str = "\
def add(a, b):
    return a + b


def scale(values, factor):
    return [value * factor for value in values]
";

fn main() {
    let runs: usize = std::env::var("AICOCKPIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let server = LlamaServer::start();
    let project = Project::new(&[("calc.py", BASE)]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"local\"\n\n[[ai.services]]\nname = \"local\"\nkind = \"llamacpp\"\n\
             base_url = \"{}\"\nchat_model = \"{MODEL}\"\n",
            server.url()
        ),
    )
    .expect("write config");
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&project.root(), json!({}));
    client.wait_for_index();
    let uri = file_uri(&project.root().join("calc.py"));
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": BASE}}),
    );

    let mut total = Vec::new();
    let mut service = Vec::new();
    let mut engine = Vec::new();
    let mut ours = Vec::new();
    let mut shown = 0;
    for run in 0..WARMUP + runs {
        let text = format!("{BASE}\n\ndef mul_{run}(a, b):\n    return ");
        let line = text.lines().count() - 1;
        let started = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": run + 2},
                   "contentChanges": [{"text": text}]}),
        );
        let answer = client.request_response(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": 11},
                   "context": {"triggerKind": 2}}),
        );
        let elapsed = started.elapsed();
        if let Some(message) = answer["error"]["message"].as_str() {
            eprintln!("error: the completion failed: {message}");
            std::process::exit(1);
        }
        let status = client.request("aicockpit/status", Value::Null);
        let ms = |key: &str| status["ai"][key].as_f64().unwrap_or(f64::NAN);
        if run < WARMUP {
            continue;
        }
        let service_ms = ms("lastInlineServiceMs");
        total.push(elapsed.as_secs_f64() * 1000.0);
        service.push(service_ms);
        engine.push(ms("lastInlineMs") - service_ms);
        ours.push(elapsed.as_secs_f64() * 1000.0 - service_ms);
        if answer["result"]["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
        {
            shown += 1;
        }
    }
    client.shutdown();
    drop(server);

    println!("## Keystroke to ghost text with a real model\n");
    println!("Command: `cargo bench --bench ghost_text_llamacpp`\n");
    println!(
        "llama.cpp server (xllamacpp 2026.10.11549) with SmolLM2-135M-Instruct Q4_1, 2 threads, n_ctx 2048, \
         chat prompt (the model cannot fill a gap); {runs} keystrokes after {WARMUP} warm-up, each a new prompt; \
         debounce 75 ms (the default); {shown} of {runs} left ghost text after post-processing.\n"
    );
    println!("| | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|");
    for (name, samples) in [
        ("keystroke → ghost text (in all)", &total),
        ("the model server (service time)", &service),
        ("ours: all but the service (debounce, LSP, engine)", &ours),
        (
            "ours without the debounce: engine (context, prompt, HTTP, post-processing)",
            &engine,
        ),
    ] {
        let (p50, p99, max) = percentiles(samples);
        println!("| {name} | {p50:.1} | {p99:.1} | {max:.1} |");
    }
}

fn percentiles(samples: &[f64]) -> (f64, f64, f64) {
    let mut ms = samples.to_vec();
    ms.sort_by(|a, b| a.total_cmp(b));
    if ms.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), ms[ms.len() - 1])
}
