//! `aicockpit ai …` against the mock OpenAI-compatible server.

use aicockpit_ai::mock::{Behavior, MockServer};
use serde_json::Value;

use crate::support::{stderr, stdout, Project};

const KEY: &str = "sk-never-print-me-42";

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "stderr: {}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

#[test]
fn add_list_test_use_and_remove_services() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("a + b");
    let project = Project::new(&[]);

    let services = json(&project.cli(&["ai", "list", "--json"]));
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["lmstudio", "ollama"],
        "a fresh install has the local services"
    );
    assert_eq!(services[0]["active"], true);

    let url = mock.url();
    let output = project.cli(&[
        "ai",
        "add",
        "mock",
        "--kind",
        "custom",
        "--url",
        &url,
        "--chat-model",
        "mock-chat",
        "--completion-model",
        "mock-coder",
        "--api-key-env",
        "MOCK_KEY",
        "--use",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = std::fs::read_to_string(project.home.path().join("config.toml")).unwrap();
    assert!(
        config.contains("active = \"mock\"") && config.contains("api_key_env = \"MOCK_KEY\""),
        "{config}"
    );

    let services = json(&project.cli(&["ai", "list", "--json"]));
    let mock_row = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mock")
        .unwrap()
        .clone();
    assert_eq!(mock_row["active"], true);
    assert_eq!(
        mock_row["key"],
        serde_json::json!({"source": "env", "variable": "MOCK_KEY", "set": false})
    );

    // Without the key set, the test says which variable to set.
    let output = project.cli(&["ai", "test"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("$MOCK_KEY is not set"),
        "{}",
        stderr(&output)
    );

    // The mock stands in for a FIM model: each answer follows its suffix.
    mock.set_fim(true);
    let output = project.cli_with(&["ai", "test", "--json"], &[("MOCK_KEY", KEY)], None);
    let report = json(&output);
    assert_eq!(report["test"]["ok"], true, "{report}");
    assert_eq!(report["test"]["models"][0], "mock-chat");
    assert_eq!(report["fim_probe"]["fim_capable"], true, "{report}");
    assert_eq!(report["fim_probe"]["method"], "suffix");
    assert_eq!(report["fim_probe"]["inline_completion"], "suffix");
    assert!(report["fim_probe"]["warning"].is_null());
    assert!(
        !stdout(&output).contains(KEY) && !stderr(&output).contains(KEY),
        "the key is never printed"
    );
    let requests = mock.requests();
    assert_eq!(requests[0].path, "/v1/models");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(requests[1].path, "/v1/completions");
    assert_eq!(requests[1].body["model"], "mock-coder");
    assert_ne!(
        requests[1].body["suffix"], requests[2].body["suffix"],
        "two suffixes, one prefix"
    );
    assert_eq!(requests[1].body["prompt"], requests[2].body["prompt"]);
    let verdicts = std::fs::read_to_string(project.home.path().join("data/fim-verdicts.json"))
        .expect("the verdict is recorded");
    assert!(verdicts.contains("\"fim_capable\": true"), "{verdicts}");

    // A model that ignores the suffix answers both gaps alike: not FIM-capable,
    // and inline completion switches to chat prompts.
    mock.set_fim(false);
    let output = project.cli_with(&["ai", "test"], &[("MOCK_KEY", KEY)], None);
    assert!(output.status.success());
    assert!(
        stdout(&output).contains(
            "warning: mock: not fill-in-the-middle capable: the model gave the same answer for two different suffixes"
        ) && stdout(&output).contains("mock: inline completion uses chat prompts"),
        "{}",
        stdout(&output)
    );
    let verdicts =
        std::fs::read_to_string(project.home.path().join("data/fim-verdicts.json")).unwrap();
    assert!(verdicts.contains("\"fim_capable\": false"), "{verdicts}");

    let output = project.cli(&["ai", "use", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("configured: lmstudio, ollama, mock"),
        "{}",
        stderr(&output)
    );
    assert!(project.cli(&["ai", "use", "ollama"]).status.success());
    assert!(project.cli(&["ai", "remove", "mock"]).status.success());
    let services = json(&project.cli(&["ai", "list", "--json"]));
    assert_eq!(services.as_array().unwrap().len(), 2);
    assert_eq!(services[1]["active"], true, "ollama stays active");
}

#[test]
fn keys_from_stdin_are_stored_privately_and_bad_services_are_refused() {
    let project = Project::new(&[]);
    let output = project.cli_with(
        &[
            "ai",
            "add",
            "cloud",
            "--kind",
            "openai",
            "--url",
            "https://api.openai.com/v1",
            "--chat-model",
            "gpt-4o-mini",
            "--api-key-stdin",
        ],
        &[],
        Some(&format!("{KEY}\n")),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let key_file = project.home.path().join("data/keys/cloud.key");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), KEY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let listing = project.cli(&["ai", "list"]);
    assert!(
        stdout(&listing).contains("cloud") && stdout(&listing).contains("stored key"),
        "{}",
        stdout(&listing)
    );
    assert!(!stdout(&listing).contains(KEY));
    assert!(
        !std::fs::read_to_string(project.home.path().join("config.toml"))
            .unwrap()
            .contains(KEY)
    );

    let output = project.cli(&[
        "ai",
        "add",
        "az",
        "--kind",
        "azure",
        "--url",
        "https://x.openai.azure.com",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("deployment"),
        "{}",
        stderr(&output)
    );
    let output = project.cli(&[
        "ai",
        "add",
        "odd",
        "--kind",
        "gpt",
        "--url",
        "http://127.0.0.1:9",
    ]);
    assert!(
        stderr(&output).contains("unknown kind \"gpt\""),
        "{}",
        stderr(&output)
    );

    // A service that does not answer: a clear error and a failure exit, quickly.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/v1");
    assert!(project
        .cli(&[
            "ai",
            "add",
            "dead",
            "--kind",
            "lmstudio",
            "--url",
            &url,
            "--chat-model",
            "m"
        ])
        .status
        .success());
    let output = project.cli(&["ai", "test", "dead"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("error: dead: cannot connect to {url}/models")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn chat_streams_an_answer_with_project_context() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("Sessions are kept in SessionStore.");
    let project = Project::new(&[(
        "lib/store.py",
        "class SessionStore:\n    def get_session(self, key):\n        return key\n",
    )]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!("[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n", mock.url()),
    )
    .unwrap();
    let output = project.cli(&["chat", "where are sessions stored?"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Sessions are kept in SessionStore.\n\nSources: lib/store.py\n"
    );
    let request = mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(request.body["stream"], true);
    assert!(
        request.body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("class SessionStore:"),
        "search hits are in the prompt"
    );

    // Without an active service: a clear error.
    std::fs::write(
        project.home.path().join("config.toml"),
        "[ai]\nservices = []\n",
    )
    .unwrap();
    let output = project.cli(&["chat", "hello?"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no AI service is active"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn chat_and_test_name_an_unset_key_variable_before_any_request() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = Project::new(&[("lib.rs", "pub fn answer() -> u32 { 42 }\n")]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"needs\"\n\n[[ai.services]]\nname = \"needs\"\nkind = \"openai\"\nbase_url = \"{}\"\nchat_model = \"gpt-4o-mini\"\napi_key_env = \"AICOCKPIT_TEST_UNSET_KEY\"\n",
            mock.url()
        ),
    )
    .unwrap();
    for args in [&["chat", "what is the answer"][..], &["ai", "test"][..]] {
        let output = project.cli(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output)
                .contains("needs: no API key: $AICOCKPIT_TEST_UNSET_KEY is not set; set it (`export AICOCKPIT_TEST_UNSET_KEY=…`)"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(
        mock.requests().is_empty(),
        "no HTTP request without the key"
    );
}

#[test]
fn add_names_the_flags_typed_and_warns_about_a_cloud_service_without_a_key() {
    let project = Project::new(&[]);
    let output = project.cli(&["ai", "add", "odd", "--kind", "custom", "--url", "ftp://x"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains("--url: \"ftp://x\" is not an http(s) URL"),
        "{text}"
    );
    assert!(!text.contains("base_url"), "{text}");
    let output = project.cli(&[
        "ai",
        "add",
        "az",
        "--kind",
        "azure",
        "--url",
        "https://x.openai.azure.com",
    ]);
    assert!(
        stderr(&output).contains("--deployment"),
        "{}",
        stderr(&output)
    );

    let output = project.cli(&[
        "ai",
        "add",
        "cloud",
        "--kind",
        "openai",
        "--url",
        "https://api.openai.com/v1",
        "--chat-model",
        "gpt-4o-mini",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("warning: cloud has no API key") && text.contains("--api-key-env"),
        "{text}"
    );
    let output = project.cli_with(
        &[
            "ai",
            "add",
            "cloud2",
            "--kind",
            "openai",
            "--url",
            "https://api.openai.com/v1",
            "--api-key-env",
            "MY_KEY",
        ],
        &[],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
    // A local service needs no key: no warning.
    let output = project.cli(&[
        "ai",
        "add",
        "local",
        "--kind",
        "ollama",
        "--url",
        "http://127.0.0.1:11434/v1",
    ]);
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

/// A large file named with `--path` contributes its outline and the chunks
/// most relevant to the question, and is the first source.
#[test]
fn chat_about_a_large_file_sends_its_outline_and_relevant_chunks() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("It retries with backoff.");
    let mut big = String::new();
    for i in 0..300 {
        big.push_str(&format!(
            "def helper_{i}(value):\n    \"\"\"Filler {i}.\"\"\"\n    return value + {i}\n\n\n"
        ));
    }
    big.push_str("def reconnect_with_backoff(client, attempts):\n    \"\"\"Reconnects, doubling the wait.\"\"\"\n    delay = 1\n    for _ in range(attempts):\n        delay *= 2\n    return delay\n");
    assert!(big.len() > 8000);
    let project = Project::new(&[
        ("net/big.py", &big),
        (
            "net/other.py",
            "def reconnect_backoff_elsewhere():\n    pass\n",
        ),
    ]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!("[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n", mock.url()),
    )
    .unwrap();
    let output = project.cli(&[
        "chat",
        "how does reconnect backoff work?",
        "--path",
        project.root().join("net/big.py").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        // No .git and no index above: the file's folder is the project.
        text.ends_with("Sources: big.py, other.py\n"),
        "the file first: {text}"
    );
    let request = mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    let system = request.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("The file the user asks about, big.py"),
        "{system}"
    );
    assert!(
        system.contains("function reconnect_with_backoff (line 1501)"),
        "outline: {system}"
    );
    assert!(
        system.contains("delay *= 2"),
        "the relevant chunk: {system}"
    );
    assert!(!system.contains("return value + 7\n"), "not the whole file");
}

/// A symlink planted in a project (`notes.md -> a host secret`, `sub -> /`)
/// given as `--path` is refused: its target never reaches the AI service,
/// and the disk behind it is never indexed.
#[test]
fn chat_path_never_follows_a_planted_symlink() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("nothing");
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("credentials"), "topsecret123\n").unwrap();
    let project = Project::new(&[("src/lib.py", "def ok():\n    pass\n")]);
    std::os::unix::fs::symlink(
        secret.path().join("credentials"),
        project.root().join("notes.md"),
    )
    .unwrap();
    std::os::unix::fs::symlink(secret.path(), project.root().join("sub")).unwrap();
    std::fs::write(
        project.home.path().join("config.toml"),
        format!("[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n", mock.url()),
    )
    .unwrap();
    for planted in ["notes.md", "sub", "sub/"] {
        let path = format!("{}/{planted}", project.root().display());
        let output = project.cli(&["chat", "what is this?", "--path", &path]);
        assert!(!output.status.success(), "{planted}: {}", stdout(&output));
        assert!(
            stderr(&output).contains("symlink"),
            "{planted}: {}",
            stderr(&output)
        );
    }
    assert!(
        mock.requests()
            .iter()
            .all(|r| !r.body.to_string().contains("topsecret123")),
        "the secret never reached the service"
    );
}

/// What a service writes reaches the terminal as text, never as commands to
/// it: escape sequences in an answer, in model names and in an error message
/// are shown escaped (`\u{1b}`); `--json` output stays JSON.
#[test]
fn escape_sequences_from_a_service_are_shown_not_obeyed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    let project = Project::new(&[("lib.rs", "pub fn answer() -> u32 { 42 }\n")]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!("[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"custom\"\nbase_url = \"{}\"\nchat_model = \"mock-chat\"\n", mock.url()),
    )
    .unwrap();
    let raw = |output: &std::process::Output| {
        let both = format!("{}{}", stdout(output), stderr(output));
        both.contains(['\u{1b}', '\u{7}', '\u{9b}', '\r'])
    };

    // A title change, a screen clear and a C1 CSI in the answer.
    mock.set_reply("\u{1b}]0;owned\u{7}Hello \u{1b}[2Jthere\r\u{9b}31m");
    let output = project.cli(&["chat", "hi"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!raw(&output), "{:?}", stdout(&output));
    assert!(
        stdout(&output).starts_with("\\u{1b}]0;owned\\u{7}Hello \\u{1b}[2Jthere\\u{d}\\u{9b}31m"),
        "{:?}",
        stdout(&output)
    );

    // Model names are the service's to choose.
    mock.set_models(&["evil\u{1b}[8mhidden", "fine"]);
    let output = project.cli(&["ai", "test"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!raw(&output), "{:?} {:?}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("mock: OK in ")
            && stdout(&output).contains("models: evil\\u{1b}[8mhidden, fine"),
        "{:?}",
        stdout(&output)
    );
    let report = json(&project.cli(&["ai", "test", "--json"]));
    assert_eq!(
        report["test"]["models"][0], "evil\u{1b}[8mhidden",
        "JSON carries the name as it is, escaped by JSON"
    );

    // The service's own error message, on stderr.
    mock.set_behavior(Behavior::Refuse {
        status: 400,
        message: "bad \u{1b}[2Jrequest".into(),
    });
    for args in [&["chat", "hi"][..], &["ai", "test"]] {
        let output = project.cli(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(!raw(&output), "{args:?}: {:?}", stderr(&output));
        assert!(
            stderr(&output).contains("mock: HTTP 400: bad \\u{1b}[2Jrequest"),
            "{args:?}: {:?}",
            stderr(&output)
        );
    }
}
