"""Fixtures for the conformance tests: a small project, and a client with the
capabilities of a real editor (pytest-lsp's presets) or of a minimal client,
connected to the `aicockpit-lsp` binary named by AICOCKPIT_LSP_BIN."""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile
from typing import Union

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = os.environ.get("AICOCKPIT_LSP_BIN", "")

LIB_RS = """\
mod helpers;

/// A greeter that remembers a name.
pub struct Greeter {
    name: String,
}

pub enum Mood {
    Glad,
}

impl Greeter {
    /// Makes a greeter.
    pub fn new(name: &str) -> Greeter {
        Greeter { name: helpers::format_name(name) }
    }
}
"""

HELPERS_RS = """\
/// Trims a name.
pub fn format_name(name: &str) -> String {
    name.trim().to_string()
}
"""

# The capability sets: real editors (pytest-lsp's recorded presets) and a
# client that declares nothing at all.
CLIENTS = [
    "visual-studio-code",
    "neovim@v0.10.0",
    "neovim@v0.11.0",
    "emacs",
    "minimal",
]


def capabilities_of(name: str) -> types.ClientCapabilities:
    if name == "minimal":
        return types.ClientCapabilities()
    return client_capabilities(name)


def pytest_configure(config):
    if not SERVER or not os.access(SERVER, os.X_OK):
        raise pytest.UsageError(
            "set AICOCKPIT_LSP_BIN to the aicockpit-lsp binary (cargo build --bin aicockpit-lsp)"
        )


_home = pathlib.Path(tempfile.mkdtemp(prefix="aicockpit-conformance-"))
PROJECT = _home / "project"
(PROJECT / "src").mkdir(parents=True)
(PROJECT / "src" / "lib.rs").write_text(LIB_RS)
(PROJECT / "src" / "helpers.rs").write_text(HELPERS_RS)
(PROJECT / "node_modules" / "dep").mkdir(parents=True)
(PROJECT / "node_modules" / "dep" / "index.js").write_text(
    "function vendoredOnly() {}\n"
)

SERVER_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "HOME": str(_home),
    "AICOCKPIT_CONFIG": str(_home / "config.toml"),
    "AICOCKPIT_CACHE_DIR": str(_home / "cache"),
    "AICOCKPIT_DATA_DIR": str(_home / "data"),
    "RUST_LOG": "warn",
}


def pytest_unconfigure(config):
    shutil.rmtree(_home, ignore_errors=True)


def uri(relative: str) -> str:
    return (PROJECT / relative).as_uri()


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=[SERVER], server_env=SERVER_ENV),
)
async def client(request, lsp_client: LanguageClient):
    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params):  # noqa: ARG001 - accepted, nothing to do
        return None

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params):
        lsp_client.applied_edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    # lsprotocol 2025.0.0 structures any `CodeAction | Command` that has a
    # `command` field as a Command, though a CodeAction may carry a command
    # object; editors tell them apart by the field's type, and so do we.
    converter = lsp_client.protocol._converter

    def code_action_or_command(object_, _):
        if isinstance(object_.get("command"), str):
            return converter.structure(object_, types.Command)
        return converter.structure(object_, types.CodeAction)

    converter.register_structure_hook(
        Union[types.Command, types.CodeAction], code_action_or_command
    )
    lsp_client.applied_edits = []
    lsp_client.client_name = request.param
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities_of(request.param),
            root_uri=PROJECT.as_uri(),
            workspace_folders=[
                types.WorkspaceFolder(uri=PROJECT.as_uri(), name="project")
            ],
        )
    )
    await wait_for_index(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def wait_for_index(client: LanguageClient) -> None:
    """Until aicockpit/status says the first index is done (bounded)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        status = await client.protocol.send_request_async("aicockpit/status", None)
        if not status.indexing and status.lastIndexMs is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the index was not built within 60 s")


sys.path.insert(0, str(pathlib.Path(__file__).parent))
