//! The `aicockpit` command line: index, search, symbols, errors and help.

use std::process::Output;

use serde_json::Value;

use crate::support::{stderr, stdout, Project};

fn project() -> Project {
    Project::new(&[
        ("src/net.rs", "/// Parses one request line.\npub fn parse_http_request(line: &str) -> usize { line.len() }\n"),
        ("lib/store.py", "class SessionStore:\n    def get_session(self, key):\n        return key\n"),
        ("vendor/.gitignore", "*\n"),
        ("vendor/dep.go", "package dep\nfunc VendoredThing() {}\n"),
    ])
}

#[test]
fn index_prints_figures_and_reindexes_only_changes() {
    let project = project();
    let root = project.root();
    let output = project.cli(&["index", root.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let figures: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(figures["files"], 2, "{figures}");
    assert_eq!(figures["parsed"], 2);
    assert_eq!(figures["symbols"], 3);
    assert!(figures["elapsed_ms"].as_f64().unwrap() > 0.0);

    let again = project.cli(&["index", "."]);
    let text = stdout(&again);
    assert!(
        text.starts_with("Indexed 2 files (0 parsed, 2 unchanged"),
        "{text}"
    );
}

#[test]
fn search_and_symbols_find_by_parts_and_fuzzy_names() {
    let project = project();
    let output = project.cli(&["search", "http request", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["hits"][0]["path"], "src/net.rs");
    assert_eq!(result["hits"][0]["symbol"]["name"], "parse_http_request");

    let text = stdout(&project.cli(&["search", "session", "--path", "lib", "-n", "1"]));
    assert!(text.starts_with("lib/store.py:"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with("    ")).count(),
        1,
        "{text}"
    );

    let output = project.cli(&["symbols", "gtsess", "--json"]);
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["symbols"][0]["symbol"]["name"], "get_session");
    assert_eq!(result["symbols"][0]["symbol"]["container"], "SessionStore");
    assert!(
        stdout(&project.cli(&["symbols", "VendoredThing"])).is_empty(),
        "ignored files stay out"
    );
}

#[test]
fn errors_are_one_clear_line_and_a_failure_exit() {
    let project = project();
    let output = project.cli(&["index", "/definitely/not/here"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "error: /definitely/not/here: no such file or folder"
    );

    let output = project.cli(&["search", "x", "--kind", "gizmo"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: unknown kind \"gizmo\""),
        "{}",
        stderr(&output)
    );

    std::fs::write(
        project.home.path().join("config.toml"),
        "[index]\nmax_file_bytes = \"big\"\n",
    )
    .unwrap();
    let output = project.cli(&["search", "x"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("max_file_bytes"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_corrupted_index_is_rebuilt_with_a_warning() {
    let project = project();
    assert!(project.cli(&["index", "."]).status.success());
    let index_root = project.cache_dir().join("index");
    let dir = std::fs::read_dir(&index_root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(dir.join("meta.json"), "garbage").unwrap();
    let output = project.cli(&["search", "parse_http_request", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: the index of"),
        "{}",
        stderr(&output)
    );
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["hits"][0]["symbol"]["name"], "parse_http_request");
}

#[test]
fn help_explains_the_verbs() {
    let project = project();
    let output = project.cli(&["--help"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for verb in ["index", "search", "symbols", "lsp"] {
        assert!(text.contains(verb), "{text}");
    }
    let output = project.cli(&["search", "--help"]);
    assert!(
        stdout(&output).contains("http request"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn empty_queries_and_zero_limits_are_refused_with_the_flag_named() {
    let project = project();
    for args in [
        &["search", ""][..],
        &["search", "   "],
        &["symbols", ""],
        &["chat", " "],
    ] {
        let output = project.cli(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("must not be empty"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    for command in ["search", "symbols"] {
        let output = project.cli(&[command, "x", "--limit", "0"]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert!(stderr(&output).contains("--limit"), "{}", stderr(&output));
    }
}

#[test]
fn a_first_search_says_it_is_indexing_even_when_not_on_a_terminal() {
    let project = project();
    let output = project.cli(&["search", "session"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("indexing") && text.contains("(2 files)"),
        "{text}"
    );
    // Once indexed, nothing is said.
    let again = project.cli(&["search", "session"]);
    assert!(!stderr(&again).contains("indexing"), "{}", stderr(&again));
}

/// A repository's files may hold escape sequences, in their text or their
/// names: search and symbols show them escaped, never send them to the
/// terminal; `--json` output stays JSON.
#[test]
fn escape_sequences_in_files_are_shown_not_obeyed() {
    let project = Project::new(&[(
        "src/\u{1b}[2Jevil.py",
        "def evil_title():  # Sets the \u{1b}]0;owned\u{7} title.\n    return 1\n",
    )]);
    let raw = |text: &str| text.contains(['\u{1b}', '\u{7}']);

    let output = project.cli(&["search", "evil_title"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!raw(&text), "{text:?}");
    assert!(text.starts_with("src/\\u{1b}[2Jevil.py:1:"), "{text:?}");
    assert!(
        text.contains("Sets the \\u{1b}]0;owned\\u{7} title."),
        "{text:?}"
    );

    let output = project.cli(&["symbols", "evil_title"]);
    let text = stdout(&output);
    assert!(!raw(&text), "{text:?}");
    assert!(
        text.contains("evil_title  src/\\u{1b}[2Jevil.py:1:5"),
        "{text:?}"
    );

    let output = project.cli(&["search", "evil_title", "--json"]);
    assert!(!raw(&stdout(&output)), "serde escapes them");
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(result["hits"][0]["path"], "src/\u{1b}[2Jevil.py");
}

/// `aicockpit ai list` with the project's environment, changed by `adjust`.
fn ai_list_with(project: &Project, adjust: impl FnOnce(&mut std::process::Command)) -> Output {
    ai_list_of(project, env!("CARGO_BIN_EXE_aicockpit"), adjust)
}

/// [`ai_list_with`], running the binary `exe`.
fn ai_list_of(
    project: &Project,
    exe: &str,
    adjust: impl FnOnce(&mut std::process::Command),
) -> Output {
    let mut command = project.command(exe);
    command
        .args(["ai", "list"])
        .stdin(std::process::Stdio::null());
    adjust(&mut command);
    command.output().expect("run aicockpit ai list")
}

#[test]
fn without_home_a_config_planted_in_the_temp_folder_is_never_read() {
    let project = project();
    // What another user of the machine could leave in a shared /tmp.
    let shared_tmp = tempfile::tempdir().unwrap();
    let planted = shared_tmp.path().join(".config/aicockpit/config.toml");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(
        &planted,
        "[ai]\nactive = \"planted\"\n\n[[ai.services]]\nname = \"planted\"\nkind = \"openai\"\nbase_url = \"https://attacker.example/v1\"\n",
    )
    .unwrap();
    for home in [None, Some("")] {
        let output = ai_list_with(&project, |command| {
            command
                .env_remove("AICOCKPIT_CONFIG")
                .env_remove("XDG_CONFIG_HOME")
                .env("TMPDIR", shared_tmp.path());
            match home {
                Some(home) => command.env("HOME", home),
                None => command.env_remove("HOME"),
            };
        });
        // The config file is the user's own (from the password database),
        // which may or may not exist; never the planted one.
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!all.contains("planted"), "HOME={home:?}: {all}");
    }
}

#[cfg(unix)]
#[test]
fn without_home_or_a_password_entry_the_cli_says_what_to_set() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions and always succeeds.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can run a command as a user with no password entry");
        return;
    }
    // A user id the password database does not know.
    let uid = 3_999_999;
    // SAFETY: getpwuid has no preconditions; only the null test reads its result.
    let entry = unsafe { libc::getpwuid(uid) };
    assert!(entry.is_null(), "uid {uid} has a password entry");
    let project = project();
    // That user must be able to run the binary: a copy in a folder anyone
    // may enter (the build's own may sit in a private one, as in CI's clone).
    let exe_dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let exe = exe_dir.path().join("aicockpit");
    std::fs::copy(env!("CARGO_BIN_EXE_aicockpit"), &exe).unwrap();
    for home in [None, Some(""), Some("relative/home")] {
        let output = ai_list_of(&project, exe.to_str().unwrap(), |command| {
            command
                .current_dir("/")
                .env_remove("AICOCKPIT_CONFIG")
                .env_remove("XDG_CONFIG_HOME")
                .uid(uid)
                .gid(uid);
            match home {
                Some(home) => command.env("HOME", home),
                None => command.env_remove("HOME"),
            };
        });
        assert_eq!(output.status.code(), Some(1), "HOME={home:?}");
        let error = stderr(&output);
        assert!(
            error.starts_with("error: cannot tell where the config file goes")
                && error.contains("set HOME, or AICOCKPIT_CONFIG"),
            "HOME={home:?}: {error}"
        );
    }
}
