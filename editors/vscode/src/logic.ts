//! The extension's pure logic: no `vscode` import, so Node's test runner
//! covers it directly (test/logic.test.ts).

import * as path from "node:path";

/** The binary the extension starts. */
export const SERVER_BINARY = "aicockpit-lsp";

export type ServerLocation =
  | { kind: "found"; path: string; from: "setting" | "PATH" }
  | { kind: "missing"; reason: string };

/**
 * Where `aicockpit-lsp` is: the `aicockpit.serverPath` setting when set (a
 * leading `~/` is the home folder), else the first executable on `PATH`.
 * `isExecutable` is injected so tests need no real files.
 */
export function resolveServerPath(options: {
  setting: string | null | undefined;
  pathEnv: string | undefined;
  home: string;
  platform: NodeJS.Platform;
  isExecutable: (file: string) => boolean;
}): ServerLocation {
  const setting = options.setting?.trim();
  if (setting) {
    const expanded = setting === "~" || setting.startsWith("~/")
      ? path.join(options.home, setting.slice(1))
      : setting;
    if (options.isExecutable(expanded)) {
      return { kind: "found", path: expanded, from: "setting" };
    }
    return {
      kind: "missing",
      reason: `aicockpit.serverPath is set to ${setting}, which is not an executable file`,
    };
  }
  const separator = options.platform === "win32" ? ";" : ":";
  const names = options.platform === "win32" ? [`${SERVER_BINARY}.exe`, SERVER_BINARY] : [SERVER_BINARY];
  for (const folder of (options.pathEnv ?? "").split(separator)) {
    if (!folder) {
      continue;
    }
    for (const name of names) {
      const candidate = path.join(folder, name);
      if (options.isExecutable(candidate)) {
        return { kind: "found", path: candidate, from: "PATH" };
      }
    }
  }
  return { kind: "missing", reason: `${SERVER_BINARY} is not on PATH and aicockpit.serverPath is not set` };
}

/** What to run to install the server, shown when it cannot be found. */
export const INSTALL_INSTRUCTIONS = [
  "# Installing aicockpit-lsp",
  "",
  "The AiCockpit extension needs the `aicockpit-lsp` language server.",
  "From a checkout of the AiCockpit repository:",
  "",
  "```sh",
  "cargo install --locked --path .",
  "```",
  "",
  "This puts `aicockpit` and `aicockpit-lsp` in `~/.cargo/bin`. Make sure that",
  "folder is on the `PATH` VS Code starts with, or set the `aicockpit.serverPath`",
  "setting to the binary's full path, then run **AiCockpit: Restart the Language Server**.",
  "",
].join("\n");

/**
 * Restart delays after the server exits unexpectedly: 1 s, 2 s, 4 s … up to
 * 60 s; a server that ran for `stableMs` counts as healthy again, so the
 * next crash starts from 1 s.
 */
export class Backoff {
  private failures = 0;
  private startedAt: number | undefined;

  constructor(
    private readonly baseMs = 1000,
    private readonly maxMs = 60_000,
    private readonly stableMs = 60_000,
  ) {}

  /** The server started (or restarted) at `now`. */
  started(now: number): void {
    this.startedAt = now;
  }

  /** The server exited at `now`: how long to wait before starting it again. */
  crashed(now: number): number {
    if (this.startedAt !== undefined && now - this.startedAt >= this.stableMs) {
      this.failures = 0;
    }
    const delay = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    this.startedAt = undefined;
    return delay;
  }

  /** How many crashes in a row so far. */
  get attempts(): number {
    return this.failures;
  }
}

/** The `aicockpit.*` settings the extension maps onto the server's configuration. */
export interface ExtensionSettings {
  "ai.active"?: string | null;
  "completion.debounceMs"?: number | null;
  "completion.maxContextTokens"?: number | null;
  "index.maxFileBytes"?: number | null;
  "index.updateDebounceMs"?: number | null;
  "search.maxResults"?: number | null;
  "search.maxWorkspaceSymbols"?: number | null;
}

/** The VS Code setting (under `aicockpit.`) and the `config.toml` key it sets. */
export const SETTING_KEYS: ReadonlyArray<readonly [keyof ExtensionSettings, string, string]> = [
  ["ai.active", "ai", "active"],
  ["completion.debounceMs", "completion", "debounce_ms"],
  ["completion.maxContextTokens", "completion", "max_context_tokens"],
  ["index.maxFileBytes", "index", "max_file_bytes"],
  ["index.updateDebounceMs", "index", "update_debounce_ms"],
  ["search.maxResults", "search", "max_results"],
  ["search.maxWorkspaceSymbols", "search", "max_workspace_symbols"],
];

export type ServerSettings = { aicockpit: Record<string, Record<string, string | number>> };

/**
 * The settings in the shape of `config.toml` under an `aicockpit` key, as
 * `initializationOptions` and `workspace/didChangeConfiguration` carry them.
 * Only settings the user set are sent, so `config.toml` keeps every other
 * value. There is no key setting: the server refuses keys from an editor.
 */
export function toServerSettings(read: (key: keyof ExtensionSettings) => unknown): ServerSettings {
  const out: Record<string, Record<string, string | number>> = {};
  for (const [key, section, name] of SETTING_KEYS) {
    const value = read(key);
    const usable =
      (typeof value === "string" && value.trim() !== "") ||
      (typeof value === "number" && Number.isFinite(value));
    if (!usable) {
      continue;
    }
    (out[section] ??= {})[name] = typeof value === "string" ? value.trim() : value;
  }
  return { aicockpit: out };
}

/** What the status bar knows. */
export interface StatusState {
  server: "starting" | "running" | "restarting" | "missing" | "stopped";
  restartInMs?: number;
  indexing?: { percentage?: number; message?: string };
  ai?: { state: string; service?: string | null; message?: string | null };
  detail?: string;
}

/** The status bar item's text and hover for a state. */
export function statusBarView(state: StatusState): { text: string; tooltip: string; error: boolean } {
  const lines: string[] = [];
  let text: string;
  let error = false;
  switch (state.server) {
    case "missing":
      text = "$(error) AiCockpit: no server";
      error = true;
      lines.push(state.detail ?? "aicockpit-lsp was not found");
      break;
    case "restarting": {
      const seconds = Math.ceil((state.restartInMs ?? 0) / 1000);
      text = `$(sync~spin) AiCockpit: restarting in ${seconds}s`;
      error = true;
      lines.push(`aicockpit-lsp stopped unexpectedly${state.detail ? `: ${state.detail}` : ""}`);
      break;
    }
    case "stopped":
      text = "$(circle-slash) AiCockpit: stopped";
      lines.push(state.detail ?? "The language server is stopped");
      break;
    case "starting":
      text = "$(sync~spin) AiCockpit";
      lines.push("Starting aicockpit-lsp");
      break;
    default: {
      const parts: string[] = [];
      if (state.indexing) {
        const percent = state.indexing.percentage;
        parts.push(percent === undefined ? "$(sync~spin) indexing" : `$(sync~spin) indexing ${Math.round(percent)}%`);
        if (state.indexing.message) {
          lines.push(`Indexing: ${state.indexing.message}`);
        }
      }
      if (state.ai) {
        const service = state.ai.service ?? "no service";
        const icon = state.ai.state === "failing" ? "$(warning)" : state.ai.state === "working" ? "$(loading~spin)" : "$(sparkle)";
        parts.push(`${icon} ${service}`);
        if (state.ai.state === "failing") {
          error = true;
          lines.push(`AI service ${service} is failing: ${state.ai.message ?? "no reason given"}`);
        } else {
          lines.push(`AI service: ${service} (${state.ai.state})`);
        }
      }
      text = parts.length > 0 ? `AiCockpit ${parts.join(" ")}` : "$(sparkle) AiCockpit";
      if (state.detail) {
        lines.push(state.detail);
      }
    }
  }
  lines.push("Click to choose the AI service");
  return { text, tooltip: lines.join("\n"), error };
}

export { type AnswerPart, type CodeBlock, codeBlocks, splitAnswer, withoutSourcesLine } from "./markdown";

/**
 * A chat source as the server names it (`src/lib.rs`, `src/lib.rs:12`,
 * `src/lib.rs:12-20`, an absolute path or a `file://` URI): the path, and the
 * 0-based line to show, if any.
 */
export function parseSource(source: string, root: string | undefined): { file: string; line?: number } | undefined {
  let text = source.trim();
  if (text === "") {
    return undefined;
  }
  if (text.startsWith("file://")) {
    try {
      text = decodeURIComponent(new URL(text).pathname);
    } catch {
      return undefined;
    }
  }
  let line: number | undefined;
  const match = /^(.*?):(\d+)(?:-\d+)?$/.exec(text);
  if (match?.[1] && match[2]) {
    text = match[1];
    line = Math.max(0, Number(match[2]) - 1);
  }
  if (!path.isAbsolute(text)) {
    if (!root) {
      return undefined;
    }
    const resolved = path.resolve(root, text);
    // A source never points outside the project.
    const relative = path.relative(root, resolved);
    if (relative.startsWith("..") || path.isAbsolute(relative)) {
      return undefined;
    }
    text = resolved;
  }
  return line === undefined ? { file: text } : { file: text, line };
}

/**
 * How many characters of a suggestion the user has accepted, after a
 * word-by-word accept changed the document from `before` to `after`
 * characters long: the running total, never more than the suggestion.
 */
export function acceptedLength(previous: number, beforeLength: number, afterLength: number, suggestionLength: number): number {
  const grown = Math.max(0, afterLength - beforeLength);
  return Math.min(suggestionLength, previous + grown);
}

/** The AI service names a quick pick offers: those the server lists, the active one, and the built-in ones. */
export function serviceChoices(status: unknown): { names: string[]; active: string | undefined } {
  const names: string[] = [];
  const add = (name: unknown): void => {
    if (typeof name === "string" && name !== "" && !names.includes(name)) {
      names.push(name);
    }
  };
  const ai = (status as { ai?: { service?: unknown; services?: unknown } } | undefined)?.ai;
  const active = typeof ai?.service === "string" ? ai.service : undefined;
  if (Array.isArray(ai?.services)) {
    for (const service of ai.services) {
      add(typeof service === "string" ? service : (service as { name?: unknown } | null)?.name);
    }
  }
  add(active);
  add("lmstudio");
  add("ollama");
  return { names, active };
}

/** The label and detail of a search hit in the quick pick. */
export function searchHitLabel(hit: {
  uri: string;
  range: { start: { line: number } };
  snippet: string;
  symbol?: { name: string; kindName: string; container?: string | null } | null;
}, root: string | undefined): { label: string; description: string; detail: string } {
  let file = hit.uri;
  try {
    file = decodeURIComponent(new URL(hit.uri).pathname);
  } catch {
    // not a URI: show it as it is
  }
  if (root) {
    const relative = path.relative(root, file);
    if (!relative.startsWith("..") && !path.isAbsolute(relative)) {
      file = relative;
    }
  }
  const where = `${file}:${hit.range.start.line + 1}`;
  if (hit.symbol) {
    const container = hit.symbol.container ? `${hit.symbol.container}::` : "";
    return { label: `$(symbol-${symbolIcon(hit.symbol.kindName)}) ${container}${hit.symbol.name}`, description: where, detail: hit.snippet.trim() };
  }
  const first = hit.snippet.split("\n").find((line) => line.trim() !== "") ?? hit.snippet;
  return { label: `$(search) ${first.trim()}`, description: where, detail: hit.snippet.trim() };
}

function symbolIcon(kindName: string): string {
  switch (kindName) {
    case "function":
    case "method":
    case "class":
    case "struct":
    case "interface":
    case "enum":
    case "constant":
    case "variable":
    case "module":
    case "field":
      return kindName;
    case "trait":
      return "interface";
    case "impl":
      return "class";
    default:
      return "misc";
  }
}
