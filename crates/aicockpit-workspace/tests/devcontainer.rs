//! Tests for reading devcontainer.json: JSONC tolerance, refusal of
//! isolation-weakening fields, type errors, syntax positions and lookup order.

use std::collections::BTreeMap;
use std::fs;

use aicockpit_workspace::devcontainer::{
    self, DevContainerBuild, DevContainerError, LifecycleCommand,
};

const REALISTIC: &str = r#"// Dev container for the web app.
{
    /* The name is shown in editors; AiCockpit does not use it. */
    "name": "web // not a comment",
    "build": {
        "dockerfile": "Dockerfile", // relative to this file
        "context": "..",
        "args": { "NODE_VERSION": "20", "URL": "http://example.com/*x*/", },
        "target": "dev",
    },
    "containerEnv": {
        "GREETING": "say \"hi\" // twice",
        "PATH_EXTRA": "C:\\tools\\",
    },
    "remoteUser": "node",
    "containerUser": "node",
    "workspaceFolder": "/workspaces/web",
    "postCreateCommand": ["npm", "ci",],
    "forwardPorts": [3000, /* api */ 8080,],
    "features": {},
    "customizations": { "vscode": { "extensions": ["dbaeumer.vscode-eslint"] } },
    "privileged": false,
    "capAdd": [],
    "init": true,
}
"#;

#[test]
fn a_realistic_file_with_comments_and_trailing_commas_is_read() {
    let config = devcontainer::parse(REALISTIC).expect("the realistic file parses");
    assert_eq!(config.image, None);
    assert_eq!(
        config.build,
        Some(DevContainerBuild {
            dockerfile: "Dockerfile".to_string(),
            context: Some("..".to_string()),
            args: BTreeMap::from([
                ("NODE_VERSION".to_string(), "20".to_string()),
                ("URL".to_string(), "http://example.com/*x*/".to_string()),
            ]),
        })
    );
    assert_eq!(
        config.container_env.get("GREETING").map(String::as_str),
        Some("say \"hi\" // twice")
    );
    assert_eq!(
        config.container_env.get("PATH_EXTRA").map(String::as_str),
        Some("C:\\tools\\")
    );
    assert_eq!(config.remote_user.as_deref(), Some("node"));
    assert_eq!(config.container_user.as_deref(), Some("node"));
    assert_eq!(config.workspace_folder.as_deref(), Some("/workspaces/web"));
    assert_eq!(
        config.post_create_command,
        Some(LifecycleCommand::Args(vec![
            "npm".to_string(),
            "ci".to_string()
        ]))
    );
    assert_eq!(
        config.ignored,
        vec![
            "build.target",
            "customizations",
            "features",
            "forwardPorts",
            "init",
            "name"
        ]
    );
}

#[test]
fn lifecycle_commands_take_every_form_of_the_specification() {
    let cases: [(&str, LifecycleCommand); 3] = [
        (
            r#"{"postCreateCommand": "make setup && make test"}"#,
            LifecycleCommand::Shell("make setup && make test".to_string()),
        ),
        (
            r#"{"postCreateCommand": ["make", "setup"]}"#,
            LifecycleCommand::Args(vec!["make".to_string(), "setup".to_string()]),
        ),
        (
            r#"{"postCreateCommand": {"deps": "npm ci", "db": ["./migrate", "--yes"]}}"#,
            LifecycleCommand::Parallel(BTreeMap::from([
                (
                    "db".to_string(),
                    LifecycleCommand::Args(vec!["./migrate".to_string(), "--yes".to_string()]),
                ),
                (
                    "deps".to_string(),
                    LifecycleCommand::Shell("npm ci".to_string()),
                ),
            ])),
        ),
    ];
    for (text, expected) in cases {
        let config = devcontainer::parse(text).expect(text);
        assert_eq!(config.post_create_command, Some(expected), "{text}");
    }
}

#[test]
fn the_older_top_level_dockerfile_and_context_are_understood() {
    let config = devcontainer::parse(r#"{"dockerFile": "Containerfile", "context": "."}"#)
        .expect("legacy fields parse");
    let build = config.build.expect("a build section is derived");
    assert_eq!(build.dockerfile, "Containerfile");
    assert_eq!(build.context.as_deref(), Some("."));
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
}

#[test]
fn fields_that_weaken_isolation_are_refused_by_name() {
    let cases = [
        (r#"{"privileged": true}"#, "privileged"),
        (r#"{"capAdd": ["SYS_PTRACE"]}"#, "capAdd"),
        (r#"{"securityOpt": ["seccomp=unconfined"]}"#, "securityOpt"),
        (r#"{"runArgs": ["--network=host"]}"#, "runArgs"),
        (
            r#"{"mounts": ["source=/,target=/host,type=bind"]}"#,
            "mounts",
        ),
        (
            r#"{"workspaceMount": "source=/,target=/w,type=bind"}"#,
            "workspaceMount",
        ),
        (
            r#"{"build": {"dockerfile": "D", "options": ["--network=host"]}}"#,
            "build.options",
        ),
        // Several at once: the first in the fixed order is named.
        (
            r#"{"runArgs": ["--pid=host"], "capAdd": ["NET_ADMIN"], "privileged": true}"#,
            "privileged",
        ),
        (
            r#"{"runArgs": ["--pid=host"], "capAdd": ["NET_ADMIN"]}"#,
            "capAdd",
        ),
    ];
    for (text, expected_field) in cases {
        match devcontainer::parse(text) {
            Err(error @ DevContainerError::Refused { field, .. }) => {
                assert_eq!(field, expected_field, "{text}");
                let message = error.to_string();
                assert!(
                    message.contains(&format!("`{expected_field}`")),
                    "{message}"
                );
                assert!(message.contains("refuses"), "{message}");
            }
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn empty_or_false_isolation_fields_ask_for_nothing() {
    let text = r#"{"image": "rust:1", "privileged": false, "capAdd": [], "securityOpt": [],
                  "runArgs": [], "mounts": [], "workspaceMount": "", "build": null}"#;
    let config = devcontainer::parse(text).expect("harmless values are accepted");
    assert_eq!(config.image.as_deref(), Some("rust:1"));
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
}

#[test]
fn docker_compose_is_unsupported() {
    match devcontainer::parse(r#"{"dockerComposeFile": "compose.yml", "service": "app"}"#) {
        Err(DevContainerError::Unsupported { field, .. }) => {
            assert_eq!(field, "dockerComposeFile")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        (r#"{"image": 3}"#, "image"),
        (r#"{"containerEnv": ["A=1"]}"#, "containerEnv"),
        (r#"{"containerEnv": {"PORT": 8080}}"#, "containerEnv.PORT"),
        (r#"{"remoteUser": true}"#, "remoteUser"),
        (r#"{"build": "Dockerfile"}"#, "build"),
        (r#"{"build": {"context": ".."}}"#, "build.dockerfile"),
        (
            r#"{"build": {"dockerfile": "D", "args": {"N": 1}}}"#,
            "build.args.N",
        ),
        (r#"{"postCreateCommand": 7}"#, "postCreateCommand"),
        (r#"{"postCreateCommand": []}"#, "postCreateCommand"),
        (r#"{"postCreateCommand": ["ls", 1]}"#, "postCreateCommand"),
        (
            r#"{"postCreateCommand": {"a": {"b": "ls"}}}"#,
            "postCreateCommand.a",
        ),
        (r#"{"privileged": "yes please"}"#, "privileged"),
        (r#"{"capAdd": {"all": true}}"#, "capAdd"),
        (r#"["not", "an", "object"]"#, "(top level)"),
    ];
    for (text, expected_field) in cases {
        match devcontainer::parse(text) {
            Err(error @ DevContainerError::Invalid { .. }) => {
                let DevContainerError::Invalid { ref field, .. } = error else {
                    unreachable!("matched as Invalid above");
                };
                assert_eq!(field, expected_field, "{text}");
                assert!(error.to_string().contains(expected_field), "{error}");
            }
            other => panic!("{text}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors_point_at_the_original_text() {
    // Line 4 has a missing comma after a comment-laden line 3; comments must
    // not shift the reported position.
    let text = "{\n  // a comment /* with an opener\n  \"image\": \"x\" /* trailing */\n  \"remoteUser\": \"y\"\n}\n";
    match devcontainer::parse(text) {
        Err(DevContainerError::Syntax { line, column, .. }) => {
            assert_eq!(line, 4, "column {column}");
            assert_eq!(column, 3);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }

    let unterminated = "{\n  \"image\": \"x\"\n  /* never closed\n}";
    match devcontainer::parse(unterminated) {
        Err(DevContainerError::Syntax { line, column, .. }) => {
            assert_eq!((line, column), (3, 3));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }

    // Non-ASCII text before the error is counted in characters, not bytes.
    let accented = "{\"name\": \"é\" \"image\": 1}";
    match devcontainer::parse(accented) {
        Err(DevContainerError::Syntax { line, column, .. }) => {
            assert_eq!((line, column), (1, 14));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }

    // A comma with nothing before it is not a trailing comma and stays an error.
    for text in ["[,]", "{,}", "{\"a\": [1,,]}"] {
        assert!(
            matches!(
                devcontainer::parse(text),
                Err(DevContainerError::Syntax { .. }) | Err(DevContainerError::Invalid { .. })
            ),
            "{text} should not parse"
        );
    }
}

#[test]
fn find_prefers_the_devcontainer_folder_then_the_root_file() {
    let root = tempfile::tempdir().expect("temp dir");
    assert_eq!(devcontainer::find(root.path()), None);
    assert!(matches!(devcontainer::load(root.path()), Ok(None)));

    fs::write(
        root.path().join(".devcontainer.json"),
        r#"{"image": "root"}"#,
    )
    .expect("write");
    assert_eq!(
        devcontainer::find(root.path()),
        Some(root.path().join(".devcontainer.json"))
    );
    let loaded = devcontainer::load(root.path())
        .expect("load")
        .expect("present");
    assert_eq!(loaded.image.as_deref(), Some("root"));

    fs::create_dir(root.path().join(".devcontainer")).expect("mkdir");
    // A folder without the file does not count.
    assert_eq!(
        devcontainer::find(root.path()),
        Some(root.path().join(".devcontainer.json"))
    );
    fs::write(
        root.path().join(".devcontainer/devcontainer.json"),
        "// folder wins\n{\"image\": \"folder\",}",
    )
    .expect("write");
    assert_eq!(
        devcontainer::find(root.path()),
        Some(root.path().join(".devcontainer/devcontainer.json"))
    );
    let loaded = devcontainer::load(root.path())
        .expect("load")
        .expect("present");
    assert_eq!(loaded.image.as_deref(), Some("folder"));
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_workspace_is_not_read() {
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = outside.path().join("secret.json");
    fs::write(&secret, r#"{"image": "secret"}"#).expect("write");
    let root = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&secret, root.path().join(".devcontainer.json")).expect("symlink");

    assert_eq!(devcontainer::find(root.path()), None);
    match devcontainer::load(root.path()) {
        Err(DevContainerError::Io { path, .. }) => {
            assert_eq!(path, root.path().join(".devcontainer.json"))
        }
        other => panic!("expected an Io error naming the link, got {other:?}"),
    }
}

#[test]
fn an_oversized_file_is_refused() {
    let root = tempfile::tempdir().expect("temp dir");
    let padding = " ".repeat(devcontainer::MAX_BYTES as usize);
    fs::write(
        root.path().join(".devcontainer.json"),
        format!("{{{padding}}}"),
    )
    .expect("write");
    assert!(matches!(
        devcontainer::load(root.path()),
        Err(DevContainerError::TooLarge { .. })
    ));
}

#[test]
fn arbitrary_text_gives_an_error_or_a_config_never_a_panic() {
    // Fragments that stress the comment and trailing-comma handling.
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        "/",
        "*",
        "//",
        "/*",
        "*/",
        "\n",
        "\r\n",
        " ",
        "é",
        "\"image\"",
        "\"x\"",
        "1",
        "null",
        "true",
        "\"containerEnv\"",
        "{\"a\":\"b\"}",
    ];
    let mut state = 0x2545_f491_u32;
    for _ in 0..20_000 {
        let mut text = String::new();
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let length = (state % 24) as usize;
        for _ in 0..length {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            text.push_str(fragments[state as usize % fragments.len()]);
        }
        if let Err(DevContainerError::Syntax { line, column, .. }) = devcontainer::parse(&text) {
            let lines = text.split('\n').count();
            assert!(
                line >= 1 && line <= lines,
                "line {line} of {lines} in {text:?}"
            );
            let line_length = text
                .split('\n')
                .nth(line - 1)
                .map_or(0, |l| l.chars().count());
            assert!(
                column >= 1 && column <= line_length + 1,
                "column {column} of {line_length} in {text:?}"
            );
        }
    }
}

/// The container owns the folder: a devcontainer.json that is a symlink to
/// a host file, or a FIFO, is refused without being read or blocking.
#[test]
fn planted_links_and_fifos_are_refused_without_reading() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), b"{ \"image\": \"host-secret\" }").unwrap();
    std::os::unix::fs::symlink(secret.path(), dir.path().join(".devcontainer.json")).unwrap();
    let error = aicockpit_workspace::devcontainer::load(dir.path()).unwrap_err();
    assert!(error.to_string().contains("symlink"), "{error}");
    assert!(!error.to_string().contains("host-secret"));

    std::fs::remove_file(dir.path().join(".devcontainer.json")).unwrap();
    std::fs::create_dir(dir.path().join(".devcontainer")).unwrap();
    let fifo = dir.path().join(".devcontainer/devcontainer.json");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Not a regular file: passed over, like a folder would be.
    assert!(aicockpit_workspace::devcontainer::load(dir.path())
        .unwrap()
        .is_none());
}
