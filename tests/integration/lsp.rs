//! The language server end to end, over stdio, as an editor drives it.

use serde_json::{json, Value};

use crate::support::{file_uri, LspClient, Project};

const LIB_RS: &str = "\
mod helpers;

/// A greeter that remembers a name.
pub struct Greeter {
    name: String,
}

impl Greeter {
    /// Makes a greeter.
    pub fn new(name: &str) -> Greeter {
        Greeter { name: helpers::format_name(name) }
    }

    pub fn greet(&self) -> String {
        format!(\"Hello, {}\", self.name)
    }
}
";

const HELPERS_RS: &str = "\
/// Trims and capitalises a name.
pub fn format_name(name: &str) -> String {
    name.trim().to_string()
}
";

const UTIL_PY: &str = "\
def greet_everyone(names):
    \"\"\"Greets all the names.\"\"\"
    return [n for n in names]
";

const APP_TS: &str = "export class Dashboard {\n  render(): string { return 'ok'; }\n}\n";

fn project() -> Project {
    Project::new(&[
        ("src/lib.rs", LIB_RS),
        ("src/helpers.rs", HELPERS_RS),
        ("tools/util.py", UTIL_PY),
        ("web/app.ts", APP_TS),
    ])
}

fn editor_capabilities() -> Value {
    json!({
        "window": {"workDoneProgress": true},
        "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": true}, "symbol": {}},
        "textDocument": {
            "documentSymbol": {
                "hierarchicalDocumentSymbolSupport": true,
                "symbolKind": {"valueSet": (1..=26).collect::<Vec<u32>>()},
            },
            "hover": {"contentFormat": ["markdown", "plaintext"]},
        },
    })
}

fn position_of(text: &str, needle: &str, offset_in_needle: usize) -> Value {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + offset_in_needle;
    let line = text[..at].matches('\n').count();
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    json!({"line": line, "character": text[line_start..at].encode_utf16().count()})
}

#[test]
fn an_editor_session_from_initialize_to_exit() {
    let project = project();
    let root = project.root();
    let lib = root.join("src/lib.rs");
    let lib_uri = file_uri(&lib);
    let mut client = LspClient::spawn(&project, &[]);

    let init = client.initialize(&root, editor_capabilities());
    let caps = &init["capabilities"];
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(caps["positionEncoding"], "utf-16");
    for provider in [
        "documentSymbolProvider",
        "workspaceSymbolProvider",
        "definitionProvider",
        "referencesProvider",
        "hoverProvider",
    ] {
        assert_eq!(caps[provider], true, "{provider}");
    }

    // The first index reports progress with percentages, then ends.
    let end = client.wait_for_index_progress();
    assert!(
        end["params"]["value"]["message"]
            .as_str()
            .unwrap()
            .contains("4 files"),
        "{end}"
    );
    let progress: Vec<&Value> = client
        .seen
        .iter()
        .filter(|m| m["method"] == "$/progress")
        .collect();
    assert_eq!(progress[0]["params"]["value"]["kind"], "begin");
    assert!(
        progress
            .iter()
            .any(|m| m["params"]["value"]["kind"] == "report"
                && m["params"]["value"]["percentage"] == 100),
        "{progress:#?}"
    );
    let registration = client
        .seen
        .iter()
        .find(|m| m["method"] == "client/registerCapability")
        .expect("watcher registered");
    assert_eq!(
        registration["params"]["registrations"][0]["method"],
        "workspace/didChangeWatchedFiles"
    );

    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": lib_uri, "languageId": "rust", "version": 1, "text": LIB_RS}}),
    );

    // Hierarchical outline.
    let outline = client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": lib_uri}}),
    );
    let top: Vec<&str> = outline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["helpers", "Greeter", "Greeter"], "{outline:#}");
    assert_eq!(outline[0]["kind"], 2, "module");
    assert_eq!(outline[1]["kind"], 23, "struct");
    assert_eq!(outline[2]["kind"], 19, "impl as object");
    let methods: Vec<&str> = outline[2]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["new", "greet"]);
    assert_eq!(outline[2]["children"][0]["kind"], 6, "method");

    // Fuzzy workspace symbols: the exact name first, across languages.
    let symbols = client.request("workspace/symbol", json!({"query": "greet"}));
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "greet", "{names:?}");
    assert!(
        names.contains(&"greet_everyone") && names.contains(&"Greeter"),
        "{names:?}"
    );
    assert_eq!(symbols[0]["containerName"], "Greeter");
    let fuzzy = client.request("workspace/symbol", json!({"query": "dshbrd"}));
    assert_eq!(fuzzy[0]["name"], "Dashboard");

    // Definition in another file, from the index.
    let call = position_of(LIB_RS, "format_name(name)", 3);
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": lib_uri}, "position": call}),
    );
    assert_eq!(definition[0]["uri"], file_uri(&root.join("src/helpers.rs")));
    assert_eq!(
        definition[0]["range"]["start"],
        json!({"line": 1, "character": 7})
    );

    // Hover: signature and doc.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": lib_uri}, "position": call}),
    );
    assert_eq!(hover["contents"]["kind"], "markdown");
    let markdown = hover["contents"]["value"].as_str().unwrap();
    assert!(
        markdown.contains("pub fn format_name(name: &str) -> String"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Trims and capitalises a name."),
        "{markdown}"
    );

    // References: the current file first, then the index's.
    let refs = client.request(
        "textDocument/references",
        json!({"textDocument": {"uri": lib_uri}, "position": call, "context": {"includeDeclaration": true}}),
    );
    let uris: Vec<&str> = refs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            lib_uri.as_str(),
            file_uri(&root.join("src/helpers.rs")).as_str()
        ]
    );

    // An incremental edit (unsaved) is visible to search and symbols.
    let rename_at = position_of(LIB_RS, "greet(&self)", 0);
    let rename_end = json!({"line": rename_at["line"], "character": rename_at["character"].as_u64().unwrap() + 5});
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": lib_uri, "version": 2},
            "contentChanges": [{"range": {"start": rename_at, "end": rename_end}, "text": "salute_warmly"}],
        }),
    );
    let hits = client.request("aicockpit/search", json!({"query": "salute warmly"}));
    assert_eq!(hits[0]["uri"], lib_uri, "{hits:#}");
    assert_eq!(hits[0]["symbol"]["name"], "salute_warmly");
    assert_eq!(hits[0]["range"]["start"]["line"], rename_at["line"]);
    let outline = client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": lib_uri}}),
    );
    assert_eq!(outline[2]["children"][1]["name"], "salute_warmly");
    let old = client.request("workspace/symbol", json!({"query": "greet"}));
    assert!(
        old.as_array().unwrap().iter().all(|s| s["name"] != "greet"),
        "{old:#}"
    );

    // Search scoped by path and kind.
    let scoped = client.request(
        "aicockpit/search",
        json!({"query": "greet", "paths": ["tools"], "kinds": ["function"]}),
    );
    assert_eq!(scoped.as_array().unwrap().len(), 1, "{scoped:#}");
    assert_eq!(scoped[0]["symbol"]["name"], "greet_everyone");
    let bad_kind = client.request_response(
        "aicockpit/search",
        json!({"query": "x", "kinds": ["gadget"]}),
    );
    assert_eq!(bad_kind["error"]["code"], -32602);

    // A file created on disk, announced by the watcher.
    project.write(
        "tools/extra.py",
        "def freshly_created_helper():\n    pass\n",
    );
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": [{"uri": file_uri(&root.join("tools/extra.py")), "type": 1}]}),
    );
    let mut found = Value::Null;
    for _ in 0..100 {
        found = client.request(
            "workspace/symbol",
            json!({"query": "freshly_created_helper"}),
        );
        if !found.as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        found[0]["location"]["uri"],
        file_uri(&root.join("tools/extra.py"))
    );

    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["files"], 5, "{status:#}");
    assert_eq!(status["indexing"], false);
    assert_eq!(status["openDocuments"], 1);
    assert!(status["lastError"].is_null(), "{status:#}");

    assert!(client.shutdown().success());
}

#[test]
fn malformed_messages_and_unknown_methods_get_errors_and_the_server_keeps_serving() {
    let project = project();
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    let early = client.request_response("workspace/symbol", json!({"query": "x"}));
    assert_eq!(
        early["error"]["code"], -32002,
        "not initialized yet: {early}"
    );
    client.initialize(&root, json!({}));
    client.wait_for_index();

    client.send_raw(b"{ this is not json");
    let parse_error = client.wait_for("a parse error", |m| m["error"]["code"] == -32700);
    assert!(parse_error["id"].is_null());
    client.send_raw(&[0xff, 0xfe, b'{', 0x80]);
    client.wait_for("a parse error for invalid UTF-8", |m| {
        m["error"]["code"] == -32700
    });
    client.send_raw(br#"{"jsonrpc":"1.0","id":99,"method":"initialize"}"#);
    let invalid = client.wait_for("an invalid request error", |m| m["id"] == 99);
    assert_eq!(invalid["error"]["code"], -32600);
    client.send_raw(b"[1, 2, 3]");
    client.wait_for("an invalid request error for a batch", |m| {
        m["error"]["code"] == -32600 && m["id"].is_null()
    });

    let unknown = client.request_response("aicockpit/doesNotExist", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    let bad_params =
        client.request_response("textDocument/documentSymbol", json!({"textDocument": 42}));
    assert_eq!(bad_params["error"]["code"], -32602);
    let not_a_file = client.request_response(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": "https://example.com/x.rs"}}),
    );
    assert_eq!(not_a_file["error"]["code"], -32602);

    // Requests about files that do not exist are empty, not errors.
    let missing = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": file_uri(&root.join("nope.rs"))}, "position": {"line": 9, "character": 9}}),
    );
    assert!(missing.is_null());

    // A cancelled request still gets an answer (a result or RequestCancelled).
    let id = client.request_async("workspace/symbol", json!({"query": "g"}));
    client.notify("$/cancelRequest", json!({"id": id}));
    let answer = client.response(id);
    assert!(
        answer.get("result").is_some() || answer["error"]["code"] == -32800,
        "{answer}"
    );

    // Regressions: a huge search limit, and completion on a prefix that ends
    // inside a multi-byte character of a symbol name.
    let hits = client.request(
        "aicockpit/search",
        json!({"query": "format", "limit": 1_000_000_000_000_000u64}),
    );
    assert!(!hits.as_array().unwrap().is_empty());
    let odd = root.join("src/odd.rs");
    client.notify("textDocument/didOpen", json!({"textDocument": {"uri": file_uri(&odd), "languageId": "rust", "version": 1, "text": "fn aéb() {}\nfn f() { ab }\n"}}));
    client.request("aicockpit/search", json!({"query": "aéb"}));
    let items = client.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": file_uri(&odd)}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 2, "triggerCharacter": "."}}),
    );
    assert!(items["items"].is_array(), "{items}");

    // Status takes no params, but clients send `{}` or null too.
    assert_eq!(
        client.request("aicockpit/status", json!({}))["indexing"],
        false
    );
    client
        .send(&json!({"jsonrpc": "2.0", "id": 9001, "method": "aicockpit/status", "params": null}));
    assert!(client.response(9001)["result"]["files"].as_u64().unwrap() > 0);

    // Still serving.
    let symbols = client.request("workspace/symbol", json!({"query": "format_name"}));
    assert_eq!(symbols[0]["name"], "format_name");
    assert!(client.shutdown().success());
}

#[test]
fn utf8_positions_when_the_client_offers_them() {
    let text = "// héllo wörld\nfn ünïcode_target() {}\nfn caller() { ünïcode_target(); }\n";
    let project = Project::new(&[("src/main.rs", text)]);
    let root = project.root();
    let uri = file_uri(&root.join("src/main.rs"));
    let mut client = LspClient::spawn(&project, &[]);
    let init = client.initialize(
        &root,
        json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}}),
    );
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");
    client.wait_for_index();
    // Byte column of the call: "fn caller() { " is 14 bytes.
    let definition = client.request(
        "textDocument/definition",
        json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 16}}),
    );
    assert_eq!(
        definition[0]["range"],
        json!({"start": {"line": 1, "character": 3}, "end": {"line": 1, "character": 19}})
    );
    assert!(client.shutdown().success());
}

#[test]
fn initialization_options_and_configuration_changes_apply() {
    let project = project();
    let root = project.root();
    let mut client = LspClient::spawn(&project, &[]);
    client.request(
        "initialize",
        json!({
            "processId": null, "rootUri": file_uri(&root), "capabilities": {},
            "initializationOptions": {"aicockpit": {"search": {"max_workspace_symbols": 1}}},
        }),
    );
    client.notify("initialized", json!({}));
    client.wait_for_index();
    let one = client.request("workspace/symbol", json!({"query": "e"}));
    assert_eq!(
        one.as_array().unwrap().len(),
        1,
        "the cap from initializationOptions applies"
    );
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"search": {"max_workspace_symbols": 3}}}),
    );
    let three = client.request("workspace/symbol", json!({"query": "e"}));
    assert_eq!(three.as_array().unwrap().len(), 3);
    // Bad settings are refused with the key named, and the old ones stay.
    client.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"search": {"max_workspace_symbols": 0}}}),
    );
    let warning = client.wait_for("a warning", |m| m["method"] == "window/showMessage");
    assert!(
        warning["params"]["message"]
            .as_str()
            .unwrap()
            .contains("search.max_workspace_symbols"),
        "{warning}"
    );
    assert_eq!(
        client
            .request("workspace/symbol", json!({"query": "e"}))
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(client.shutdown().success());
}

#[test]
fn files_outside_the_root_and_hostile_files_are_never_read() {
    use std::os::unix::ffi::OsStrExt;
    let project = Project::new(&[
        ("src/lib.rs", "pub fn target_fn() -> u32 { 1 }\n"),
        ("src/main.rs", "fn main() {\n    target_fn();\n}\n"),
    ]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.rs"),
        "pub fn target_fn() {} // SECRET_FROM_OUTSIDE\n",
    )
    .unwrap();
    let dir = project.dir.path();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.rs")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.rs"), dir.join("outside.rs")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.rs").as_os_str().as_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::fs::File::create(dir.join("big.rs"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();

    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&project.root(), json!({}));
    client.wait_for_index();
    let root = project.root();
    let uris = [
        "file:///etc/passwd".to_string(),
        file_uri(&root.join("outside.rs")),
        file_uri(&root.join("big.rs")),
        file_uri(&root.join("fifo.rs")),
        file_uri(&root.join("zero.rs")),
    ];
    for uri in &uris {
        let at = json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 8}});
        let definition = client.request("textDocument/definition", at.clone());
        assert!(definition.is_null(), "{uri}: {definition}");
        let hover = client.request("textDocument/hover", at.clone());
        assert!(hover.is_null(), "{uri}: {hover}");
        let mut with_context = at.clone();
        with_context["context"] = json!({"includeDeclaration": true});
        let references = client.request("textDocument/references", with_context);
        assert_eq!(references, json!([]), "{uri}");
    }
    client.notify(
        "workspace/didChangeWatchedFiles",
        json!({"changes": uris.iter().map(|uri| json!({"uri": uri, "type": 2})).collect::<Vec<_>>()}),
    );
    let symbols = client.request("workspace/symbol", json!({"query": "target_fn"}));
    assert_eq!(symbols.as_array().map(Vec::len), Some(1), "{symbols}");
    assert_eq!(
        symbols[0]["location"]["uri"],
        file_uri(&root.join("src/lib.rs"))
    );
    let status = client.request("aicockpit/status", Value::Null);
    assert_eq!(status["files"], 2, "{status}");
    assert!(client.shutdown().success());
}

#[test]
fn requests_with_dollar_methods_get_method_not_found() {
    let project = project();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&project.root(), json!({}));
    let unknown = client.request_response("$/noSuchRequest", json!({}));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let set_trace = client.request_response("$/setTrace", json!({"value": "off"}));
    assert_eq!(set_trace["error"]["code"], -32601, "{set_trace}");
    // As notifications they are ignored, and the session goes on.
    client.notify("$/setTrace", json!({"value": "off"}));
    client.notify("$/noSuchNotification", json!({}));
    let status = client.request("aicockpit/status", Value::Null);
    assert!(status["version"].is_string(), "{status}");
    assert!(client.shutdown().success());
}

#[test]
fn exit_without_shutdown_exits_with_1() {
    let project = project();
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&project.root(), json!({}));
    client.wait_for_index();
    assert_eq!(client.exit().code(), Some(1));
}

/// A client from before LSP 3.10: no capabilities at all.
#[test]
fn older_clients_get_flat_outlines_plain_hover_and_kinds_they_know() {
    let project = project();
    let root = project.root();
    let lib_uri = file_uri(&root.join("src/lib.rs"));
    let mut client = LspClient::spawn(&project, &[]);
    client.initialize(&root, json!({}));
    client.wait_for_index();
    let outline = client.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": lib_uri}}),
    );
    let flat: Vec<(&str, &Value, &Value)> = outline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), &s["kind"], &s["containerName"]))
        .collect();
    assert!(
        outline
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["location"]["uri"] == lib_uri.as_str() && s.get("children").is_none()),
        "SymbolInformation[]: {outline:#}"
    );
    assert!(
        flat.contains(&("greet", &json!(6), &json!("Greeter"))),
        "{flat:?}"
    );
    assert!(
        flat.iter()
            .all(|(_, kind, _)| (1..=18).contains(&kind.as_u64().unwrap())),
        "only File..Array without a valueSet: {flat:?}"
    );
    assert!(
        flat.contains(&("Greeter", &json!(5), &Value::Null)),
        "struct as class: {flat:?}"
    );
    let symbols = client.request("workspace/symbol", json!({"query": "Greeter"}));
    assert!(
        symbols
            .as_array()
            .unwrap()
            .iter()
            .all(|s| (1..=18).contains(&s["kind"].as_u64().unwrap())),
        "{symbols:#}"
    );
    let call = position_of(LIB_RS, "format_name(name)", 3);
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": lib_uri}, "position": call}),
    );
    assert_eq!(hover["contents"]["kind"], "plaintext", "{hover}");
    let text = hover["contents"]["value"].as_str().unwrap();
    assert!(
        text.contains("pub fn format_name(name: &str) -> String") && !text.contains("```"),
        "{text}"
    );
    assert!(client.shutdown().success());
}

/// Requests sent right behind notifications are answered against the state
/// after them: tower-lsp would otherwise run them concurrently.
#[test]
fn a_request_right_after_did_close_answers_from_the_file_on_disk() {
    let project = project();
    let root = project.root();
    let helpers = root.join("src/helpers.rs");
    let uri = file_uri(&helpers);
    // A large unsaved buffer keeps the index writer busy (flushed at once),
    // so a didClose that is not waited for is still under way when the
    // documentSymbol behind it runs.
    let big = root.join("src/big.rs");
    let big_uri = file_uri(&big);
    let mut client = LspClient::spawn_with_env(
        &project,
        &[],
        &[("AICOCKPIT_INDEX_UPDATE_DEBOUNCE_MS", "0")],
    );
    client.initialize(&root, editor_capabilities());
    client.wait_for_index();
    let big_text = |round: usize| -> String {
        (0..8000)
            .map(|i| format!("pub fn f{round}_{i}(x: u32) -> u32 {{ x + {i} }}\n"))
            .collect()
    };
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": big_uri, "languageId": "rust", "version": 1, "text": big_text(0)}}),
    );
    let unsaved = format!("{HELPERS_RS}\npub fn only_in_the_unsaved_buffer() {{}}\n");
    for round in 0..6 {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": big_uri, "version": round + 2}, "contentChanges": [{"text": big_text(round + 1)}]}),
        );
        client.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": unsaved}}),
        );
        if round % 2 == 1 {
            client.notify(
                "textDocument/didSave",
                json!({"textDocument": {"uri": uri}}),
            );
        }
        client.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        );
        let outline = client.request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": uri}}),
        );
        let names: Vec<&str> = outline
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["format_name"], "round {round}");
    }
    assert!(client.shutdown().success());
}
