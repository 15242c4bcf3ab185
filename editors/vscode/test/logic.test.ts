//! Unit tests of the extension's pure logic, run with `node --test`.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  acceptedLength,
  Backoff,
  codeBlocks,
  parseSource,
  resolveServerPath,
  searchHitLabel,
  serviceChoices,
  splitAnswer,
  statusBarView,
  toServerSettings,
  withoutSourcesLine,
} from "../src/logic";

describe("resolveServerPath", () => {
  const base = { home: "/home/me", platform: "linux" as const };
  it("prefers the setting, expanding ~", () => {
    const seen: string[] = [];
    const found = resolveServerPath({
      ...base,
      setting: "~/bin/aicockpit-lsp",
      pathEnv: "/usr/bin",
      isExecutable: (file) => {
        seen.push(file);
        return true;
      },
    });
    assert.deepEqual(found, { kind: "found", path: "/home/me/bin/aicockpit-lsp", from: "setting" });
    assert.deepEqual(seen, ["/home/me/bin/aicockpit-lsp"]);
  });
  it("does not fall back to PATH when the setting is wrong", () => {
    const result = resolveServerPath({ ...base, setting: "/nope/aicockpit-lsp", pathEnv: "/usr/bin", isExecutable: (f) => f === "/usr/bin/aicockpit-lsp" });
    assert.equal(result.kind, "missing");
    assert.match(result.kind === "missing" ? result.reason : "", /aicockpit\.serverPath is set to \/nope\/aicockpit-lsp/);
  });
  it("searches PATH in order when the setting is empty", () => {
    const result = resolveServerPath({
      ...base,
      setting: "  ",
      pathEnv: "/a::/b:/c",
      isExecutable: (f) => f === "/b/aicockpit-lsp" || f === "/c/aicockpit-lsp",
    });
    assert.deepEqual(result, { kind: "found", path: "/b/aicockpit-lsp", from: "PATH" });
  });
  it("says what is missing", () => {
    const result = resolveServerPath({ ...base, setting: null, pathEnv: undefined, isExecutable: () => false });
    assert.deepEqual(result, { kind: "missing", reason: "aicockpit-lsp is not on PATH and aicockpit.serverPath is not set" });
  });
});

describe("Backoff", () => {
  it("doubles up to the cap", () => {
    const backoff = new Backoff(1000, 8000, 60_000);
    const delays = [0, 1, 2, 3, 4, 5].map((i) => {
      backoff.started(i * 10);
      return backoff.crashed(i * 10 + 5);
    });
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
    assert.equal(backoff.attempts, 6);
  });
  it("starts again from the base after a stable run", () => {
    const backoff = new Backoff(1000, 60_000, 60_000);
    backoff.started(0);
    assert.equal(backoff.crashed(10), 1000);
    backoff.started(20);
    assert.equal(backoff.crashed(30), 2000);
    backoff.started(100);
    assert.equal(backoff.crashed(100 + 60_000), 1000);
  });
  it("counts a start that never came up as a crash", () => {
    const backoff = new Backoff(500, 60_000, 1000);
    assert.equal(backoff.crashed(0), 500);
    assert.equal(backoff.crashed(5000), 1000);
  });
});

describe("toServerSettings", () => {
  it("maps set values to config.toml keys under aicockpit", () => {
    const values: Record<string, unknown> = {
      "ai.active": " ollama ",
      "completion.debounceMs": 30,
      "index.maxFileBytes": 2_000_000,
      "search.maxResults": null,
      "completion.maxContextTokens": undefined,
      "index.updateDebounceMs": Number.NaN,
    };
    assert.deepEqual(toServerSettings((key) => values[key]), {
      aicockpit: { ai: { active: "ollama" }, completion: { debounce_ms: 30 }, index: { max_file_bytes: 2_000_000 } },
    });
  });
  it("sends nothing for unset settings, so config.toml wins", () => {
    assert.deepEqual(toServerSettings(() => undefined), { aicockpit: {} });
    assert.deepEqual(toServerSettings(() => ""), { aicockpit: {} });
  });
  it("never carries a key", () => {
    const json = JSON.stringify(toServerSettings(() => "secret"));
    assert.doesNotMatch(json, /key/i);
  });
});

describe("statusBarView", () => {
  it("shows index progress and the service", () => {
    const view = statusBarView({ server: "running", indexing: { percentage: 41.6, message: "40/96 files" }, ai: { state: "ok", service: "local" } });
    assert.equal(view.text, "AiCockpit $(sync~spin) indexing 42% $(sparkle) local");
    assert.match(view.tooltip, /Indexing: 40\/96 files/);
    assert.equal(view.error, false);
  });
  it("gives the failure reason on hover", () => {
    const view = statusBarView({ server: "running", ai: { state: "failing", service: "openai", message: "HTTP 401: bad key" } });
    assert.equal(view.text, "AiCockpit $(warning) openai");
    assert.match(view.tooltip, /AI service openai is failing: HTTP 401: bad key/);
    assert.equal(view.error, true);
  });
  it("says when the server restarts", () => {
    const view = statusBarView({ server: "restarting", restartInMs: 3500, detail: "the process exited" });
    assert.equal(view.text, "$(sync~spin) AiCockpit: restarting in 4s");
    assert.match(view.tooltip, /stopped unexpectedly: the process exited/);
  });
  it("says when the server is missing", () => {
    assert.equal(statusBarView({ server: "missing" }).text, "$(error) AiCockpit: no server");
  });
});

describe("chat answers", () => {
  const answer = "Use this:\n```rust\nfn a() {}\n```\nand\n~~~\nx = 1\n~~~\n\nSources: src/lib.rs";
  it("finds fenced code blocks", () => {
    assert.deepEqual(codeBlocks(answer), [
      { language: "rust", code: "fn a() {}" },
      { language: "", code: "x = 1" },
    ]);
  });
  it("keeps an unclosed fence while streaming", () => {
    assert.deepEqual(codeBlocks("```py\nprint(1)"), [{ language: "py", code: "print(1)" }]);
  });
  it("does not close a fence with a shorter one", () => {
    assert.deepEqual(codeBlocks("````md\n```\ninner\n```\n````"), [{ language: "md", code: "```\ninner\n```" }]);
  });
  it("drops the closing Sources line the view shows as links", () => {
    assert.equal(withoutSourcesLine("It trims.\n\nSources: src/lib.rs\n"), "It trims.\n");
    assert.equal(withoutSourcesLine("No sources here."), "No sources here.");
  });
  it("splits text and code in order", () => {
    assert.deepEqual(
      splitAnswer(answer).map((p) => p.kind),
      ["text", "code", "text", "code", "text"],
    );
  });
});

describe("parseSource", () => {
  it("resolves relative paths and lines", () => {
    assert.deepEqual(parseSource("src/lib.rs:12-20", "/p"), { file: "/p/src/lib.rs", line: 11 });
    assert.deepEqual(parseSource("src/lib.rs", "/p"), { file: "/p/src/lib.rs" });
    assert.deepEqual(parseSource("file:///p/a%20b.rs", "/p"), { file: "/p/a b.rs" });
  });
  it("never leaves the project for a relative source", () => {
    assert.equal(parseSource("../../etc/passwd", "/p"), undefined);
    assert.equal(parseSource("src/lib.rs", undefined), undefined);
  });
});

describe("acceptedLength", () => {
  it("adds what each word accept inserted, up to the suggestion", () => {
    assert.equal(acceptedLength(0, 100, 106, 20), 6);
    assert.equal(acceptedLength(6, 106, 112, 20), 12);
    assert.equal(acceptedLength(12, 112, 140, 20), 20);
    assert.equal(acceptedLength(5, 100, 90, 20), 5);
  });
});

describe("serviceChoices", () => {
  it("lists the server's services, the active one first among them, then the built-ins", () => {
    assert.deepEqual(serviceChoices({ ai: { service: "mock", services: [{ name: "work" }, "mock"] } }), { names: ["work", "mock", "lmstudio", "ollama"], active: "mock" });
    assert.deepEqual(serviceChoices({ ai: { service: null } }), { names: ["lmstudio", "ollama"], active: undefined });
    assert.deepEqual(serviceChoices(undefined), { names: ["lmstudio", "ollama"], active: undefined });
  });
});

describe("searchHitLabel", () => {
  it("labels symbol and code hits with a project-relative place", () => {
    const symbol = searchHitLabel(
      { uri: "file:///p/src/net.rs", range: { start: { line: 1 } }, snippet: "pub fn parse()", symbol: { name: "parse", kindName: "function", container: "Http" } },
      "/p",
    );
    assert.deepEqual(symbol, { label: "$(symbol-function) Http::parse", description: "src/net.rs:2", detail: "pub fn parse()" });
    const code = searchHitLabel({ uri: "file:///elsewhere/x.py", range: { start: { line: 0 } }, snippet: "\n  x = 1\n", symbol: null }, "/p");
    assert.deepEqual(code, { label: "$(search) x = 1", description: "/elsewhere/x.py:1", detail: "x = 1" });
  });
});

describe("package.json", () => {
  it("contributes no command the language client registers for the server", async () => {
    const { readFile } = await import("node:fs/promises");
    const manifest = JSON.parse(await readFile("package.json", "utf8")) as { contributes: { commands: Array<{ command: string }> } };
    // The server's executeCommandProvider commands (crates/aicockpit-lsp): the
    // client registers each one, and a second registration fails its start.
    const serverCommands = ["aicockpit.acceptCompletion", "aicockpit.explain"];
    const ours = manifest.contributes.commands.map((c) => c.command);
    assert.deepEqual(ours.filter((c) => serverCommands.includes(c)), []);
    assert.ok(ours.includes("aicockpit.explainSelection"));
  });

  it("lets an untrusted workspace set nothing that picks a program, a service or how much code is sent", async () => {
    const { readFile } = await import("node:fs/promises");
    const manifest = JSON.parse(await readFile("package.json", "utf8")) as {
      capabilities: { untrustedWorkspaces: { restrictedConfigurations: string[] } };
    };
    const restricted = manifest.capabilities.untrustedWorkspaces.restrictedConfigurations;
    for (const setting of ["aicockpit.serverPath", "aicockpit.serverArgs", "aicockpit.ai.active", "aicockpit.completion.maxContextTokens"]) {
      assert.ok(restricted.includes(setting), setting);
    }
  });
});
