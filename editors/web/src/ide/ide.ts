// The IDE view of one workspace: file tree, tabs and editors speaking LSP,
// search, outline, quick open, terminals, chat and the status bar.

import { keymap } from "@codemirror/view";
import { LSPPlugin, serverDiagnostics } from "@codemirror/lsp-client";
import { ws, type User, type WorkspaceView, json } from "../api.js";
import { busy, h, toast } from "../dom.js";
import { sanitize } from "../markdown.js";
import { showHelp } from "../help.js";
import { ChatPanel, type ChatMessage } from "./chat.js";
import { Editors, type Tab } from "./editors.js";
import { AI_TIMEOUT_MS, LspConnection, describe, type ConnectionState, type Range } from "./lsp.js";
import { quickOpen, type QuickItem } from "./quickopen.js";
import { SearchPanel, renderOutline, type DocumentSymbol, type SearchHit } from "./search.js";
import { Terminals } from "./terminal.js";
import { FileTree } from "./tree.js";

/** Measurements the benchmark and the e2e test read (window.aicockpitMetrics). */
export const metrics = { ghostLatenciesMs: [] as number[], interactiveAt: 0, connectedAt: 0 };
declare global {
  interface Window {
    aicockpitMetrics?: typeof metrics;
  }
}

export async function showIde(root: HTMLElement, name: string, user: User): Promise<() => void> {
  const workspace = await json<WorkspaceView>(ws(name));
  const readOnly = workspace.role === "viewer";
  let chatCounter = 0;
  const chatStreams = new Map<string, (delta: string) => void>();

  const connectionEl = h("span.status-item.connection", { "data-state": "connecting" }, "● connecting");
  const indexEl = h("span.status-item.index", {}, "");
  const aiEl = h("span.status-item.ai", { title: "the active AI service" }, "AI: –");
  const cursorEl = h("span.status-item.cursor", {}, "");
  const messageEl = h("span.status-item.message", {}, "");

  const setConnection = (state: ConnectionState, detail?: string): void => {
    if (state === "connected" && !metrics.connectedAt) metrics.connectedAt = performance.now();
    connectionEl.dataset.state = state;
    const labels: Record<ConnectionState, string> = { connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…", offline: "offline" };
    connectionEl.textContent = `● ${labels[state]}`;
    connectionEl.title = detail ?? `language server: ${labels[state]}`;
  };

  const lsp: LspConnection = new LspConnection(
    `${ws(name)}/lsp`,
    {
      state: setConnection,
      progress(token, value) {
        if (typeof token === "string" && chatStreams.has(token)) {
          if (value.delta) chatStreams.get(token)?.(value.delta);
          return;
        }
        if (value.kind === "end") {
          indexEl.textContent = value.message ? `indexed: ${value.message}` : "indexed";
          indexEl.dataset.state = "done";
        } else if (value.kind === "begin" || value.kind === "report") {
          indexEl.dataset.state = "indexing";
          indexEl.textContent = `indexing ${value.percentage ?? 0}%${value.message ? ` (${value.message})` : ""}`;
        }
      },
      aiStatus(status) {
        aiEl.dataset.state = status.state;
        aiEl.textContent = `AI: ${status.service ?? "?"} ${status.state === "working" ? "⋯" : status.state === "ok" ? "✓" : "✗"}`;
        aiEl.title = status.message ?? `${status.service ?? "AI"}: ${status.state}`;
      },
      serverStatus(status) {
        if (!status.indexing && status.files !== undefined) {
          indexEl.dataset.state = "done";
          indexEl.textContent = `indexed: ${status.files} files, ${status.symbols ?? 0} symbols`;
        }
        if (status.ai?.service && !aiEl.dataset.state) {
          aiEl.textContent = `AI: ${status.ai.service}`;
          aiEl.title = status.ai.lastError ?? `the active AI service: ${status.ai.service}`;
        }
        if (status.readOnly && !readOnly) messageEl.textContent = "the language server is read-only here";
      },
      message(type, text) {
        messageEl.textContent = text;
        if (type === 1) toast(text, "error");
      },
      display: async (uri) => {
        const path = lsp.pathOf(uri);
        if (path === null) return null;
        try {
          return (await editors.open(path)).view;
        } catch {
          return null;
        }
      },
    },
    [serverDiagnostics()],
    sanitize,
  );

  const ideKeys = keymap.of([
    { key: "Mod-Shift-f", run: () => (showSide("search"), true) },
    { key: "Mod-p", run: () => (openQuick(), true) },
  ]);

  const editors: Editors = new Editors({
    workspace: name,
    readOnly,
    lsp,
    keys: ideKeys,
    ghost: {
      request: (_uri, params, signal) => lsp.request("textDocument/inlineCompletion", params, AI_TIMEOUT_MS.inline, signal),
      notify: (method, params) => lsp.notify(method, params),
      execute: (command) => {
        lsp.request("workspace/executeCommand", { command: command.command, arguments: command.arguments ?? [] }, AI_TIMEOUT_MS.other).catch(() => undefined);
      },
      shown: (requestedAt) => {
        if (requestedAt) metrics.ghostLatenciesMs.push(performance.now() - requestedAt);
      },
    },
    onActive(tab) {
      void refreshOutline(tab);
      updateCursor(tab);
    },
  });

  const tree = new FileTree({
    workspace: name,
    readOnly,
    open: (path) => void editors.open(path).catch((e: unknown) => toast(describe(e), "error")),
    renamed: (from, to) => editors.renamed(from, to),
    removed: (path) => editors.removed(path),
  });

  const search = new SearchPanel({
    search: (query) => lsp.request<SearchHit[]>("aicockpit/search", { query, limit: 100 }, AI_TIMEOUT_MS.search),
    pathOf: (uri) => lsp.pathOf(uri) ?? uri,
    open: (path, at) => void editors.open(path, at).catch((e: unknown) => toast(describe(e), "error")),
  });

  const outline = h("div.outline-pane");
  const refreshOutline = async (tab: Tab | null): Promise<void> => {
    if (!tab || tab.binary) return void outline.replaceChildren(h("div.muted.pad", {}, "No file open."));
    try {
      const symbols = await lsp.request<DocumentSymbol[] | null>("textDocument/documentSymbol", { textDocument: { uri: lsp.uriOf(tab.path) } }, AI_TIMEOUT_MS.other);
      outline.replaceChildren(renderOutline(symbols ?? [], (at) => void editors.open(tab.path, at)));
    } catch (error) {
      outline.replaceChildren(h("div.muted.pad", {}, `outline unavailable: ${describe(error)}`));
    }
  };

  const selectionOf = (): { path: string; from: number; to: number; text: string; uri: string; range: Range } | null => {
    const tab = editors.active;
    const plugin = tab && LSPPlugin.get(tab.view);
    if (!tab || !plugin) return null;
    const { from, to } = tab.view.state.selection.main;
    return { path: tab.path, from, to, text: tab.view.state.sliceDoc(from, to), uri: plugin.uri, range: { start: plugin.toPosition(from), end: plugin.toPosition(to) } };
  };

  const chat = new ChatPanel({
    readOnly,
    ask: (messages: ChatMessage[], context, onDelta) => {
      const token = `aicockpit-chat-${++chatCounter}`;
      chatStreams.set(token, onDelta);
      return lsp
        .request<{ content: string; sources?: unknown[] }>("aicockpit/chat", { messages, ...context, partialResultToken: token }, AI_TIMEOUT_MS.chat)
        .finally(() => chatStreams.delete(token));
    },
    selection: selectionOf,
    insert(text) {
      const view = editors.active?.view;
      if (!view) return toast("open a file first", "error");
      view.dispatch(view.state.replaceSelection(text));
      view.focus();
    },
    resolve(target) {
      const tab = editors.find(target.path);
      if (!tab) return null;
      const view = tab.view;
      const to = target.to < 0 ? view.state.doc.length : target.to;
      return {
        before: view.state.sliceDoc(target.from, to),
        apply: (text) => {
          view.dispatch({ changes: { from: target.from, to, insert: text } });
          editors.activate(tab);
        },
      };
    },
    openSource(source) {
      const path = source.startsWith("file://") ? lsp.pathOf(source) : source.replace(/:\d+(-\d+)?$/, "");
      if (path) void editors.open(path.replace(/^\/workspace\//, "")).catch((e: unknown) => toast(describe(e), "error"));
    },
  });

  const terminals = new Terminals({
    workspace: name,
    readOnly,
    autoOpen: workspace.state === "running",
    suggest: (description) => lsp.request("aicockpit/suggestCommand", { description, shell: "sh" }, AI_TIMEOUT_MS.command),
    explain: (text) => {
      showChat();
      void chat.send(`Explain this terminal output or command:\n\n\`\`\`\n${text}\n\`\`\``);
    },
  });

  // Layout.
  const sideTabs = { files: h("div.side-pane", {}, tree.toolbar(), tree.el), search: search.el, outline };
  const sideBar = h("div.side-tabs", { role: "tablist" });
  const sideBody = h("div.side-body");
  let sideActive: keyof typeof sideTabs = "files";
  const showSide = (which: keyof typeof sideTabs): void => {
    sideActive = which;
    sideBar.replaceChildren(
      ...(["files", "search", "outline"] as const).map((k) =>
        h(`button.side-tab${k === sideActive ? ".active" : ""}`, { role: "tab", onclick: () => showSide(k), "data-pane": k }, k[0]?.toUpperCase() + k.slice(1)),
      ),
    );
    sideBody.replaceChildren(sideTabs[which]);
    if (which === "search") search.focus();
    if (which === "outline") void refreshOutline(editors.active);
  };
  showSide("files");

  const chatPane = h("aside.chat-pane", { "aria-label": "chat" }, h("div.pane-title", {}, "Chat"), chat.el);
  const showChat = (): void => {
    chatPane.classList.remove("hidden");
    chat.focus();
  };
  const terminalPane = h("section.terminal-pane", { "aria-label": "terminals" }, terminals.el);
  const toggleTerminal = (): void => {
    terminalPane.classList.toggle("hidden");
    if (!terminalPane.classList.contains("hidden")) {
      terminals.resize();
      terminals.focus();
    }
  };

  const actionButtons = readOnly
    ? [h("button", { onclick: () => void chat.action("explain") }, "Explain")]
    : (["explain", "refactor", "document", "fix"] as const).map((k) =>
        h("button", { title: `${k} the selection with the AI (chat)`, "data-action": k, onclick: () => (showChat(), void chat.action(k)) }, k[0]?.toUpperCase() + k.slice(1)),
      );

  const openQuick = (initial = ""): void =>
    quickOpen(
      {
        files: () => tree.allFiles(),
        symbols: async (query) => {
          const found = await lsp.request<{ name: string; location: { uri: string; range: Range }; containerName?: string }[] | null>("workspace/symbol", { query }, AI_TIMEOUT_MS.other);
          return (found ?? []).map(
            (s): QuickItem => ({
              label: s.name,
              detail: lsp.pathOf(s.location.uri) ?? s.location.uri,
              run: () => {
                const path = lsp.pathOf(s.location.uri);
                if (path) void editors.open(path, s.location.range.start);
              },
            }),
          );
        },
        open: (path) => void editors.open(path).catch((e: unknown) => toast(describe(e), "error")),
      },
      initial,
    );

  const header = h(
    "header.topbar",
    {},
    h("a.back", { href: "#/", title: "Back to the dashboard" }, "◀ Workspaces"),
    h("strong.ws-name", {}, name),
    h(`span.badge.role-${workspace.role ?? "none"}`, {}, workspace.role ?? ""),
    readOnly ? h("span.badge.readonly", { role: "status" }, "Viewer: files and terminals are read-only") : null,
    h("span.spacer"),
    ...actionButtons,
    h("button", { onclick: () => openQuick(), title: "Quick open (Ctrl+P)" }, "Go to file"),
    h("button", { onclick: () => toggleTerminal(), title: "Toggle the terminal (Ctrl+`)" }, "Terminal"),
    h("button", { onclick: () => chatPane.classList.toggle("hidden"), title: "Toggle the chat (Ctrl+Alt+I)" }, "Chat"),
    h("button", { onclick: () => showHelp(), title: "Keyboard shortcuts (F1)" }, "?"),
    h("span.user", {}, user.name),
  );
  // A stopped workspace: files and the language server work, terminals need it running.
  const stoppedBanner =
    workspace.state === "running"
      ? null
      : h(
          "div.banner",
          { role: "status" },
          `This workspace is ${workspace.state}: terminals need it running.`,
          readOnly
            ? null
            : h(
                "button.primary",
                {
                  onclick: (e: Event) =>
                    void busy(e.target as HTMLElement, () => json(`${ws(name)}/start`, "POST"), `${name} started`).then((ok) => {
                      if (ok) location.reload();
                    }),
                },
                "Start it",
              ),
        );
  const center = h("main.center", {}, stoppedBanner, editors.tabBar, editors.area, terminalPane);
  const layout = h("div.ide", { "data-workspace": name, "data-readonly": String(readOnly) }, header, h("div.ide-body", {}, h("nav.sidebar", {}, sideBar, sideBody), center, chatPane), h("footer.statusbar", {}, connectionEl, indexEl, aiEl, messageEl, h("span.spacer"), cursorEl));
  root.replaceChildren(layout);

  const updateCursor = (tab: Tab | null): void => {
    if (!tab) return void (cursorEl.textContent = "");
    const head = tab.view.state.selection.main.head;
    const line = tab.view.state.doc.lineAt(head);
    cursorEl.textContent = `${tab.path}  Ln ${line.number}, Col ${head - line.from + 1}`;
  };

  const onKey = (e: KeyboardEvent): void => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let handled = true;
    if (e.key === "F1") showHelp();
    else if (mod && e.shiftKey && key === "f") showSide("search");
    else if (mod && e.shiftKey && key === "e") showSide("files");
    else if (mod && e.shiftKey && key === "o") showSide("outline");
    else if (mod && !e.shiftKey && key === "p") openQuick();
    else if (mod && e.shiftKey && key === "p") openQuick("#");
    else if (mod && e.key === "`") toggleTerminal();
    else if (mod && e.shiftKey && e.key === "~") terminals.add(null);
    else if (mod && e.altKey && key === "i") showChat();
    else if (mod && !e.shiftKey && key === "s") void editors.save();
    else if ((mod || e.altKey) && key === "w" && !e.shiftKey) void editors.close();
    else if (mod && key === "b") document.querySelector(".sidebar")?.classList.toggle("hidden");
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  };
  document.addEventListener("keydown", onKey, true);
  const onUnload = (e: BeforeUnloadEvent): void => {
    if (editors.anyDirty()) e.preventDefault();
  };
  window.addEventListener("beforeunload", onUnload);
  const cursorTimer = setInterval(() => updateCursor(editors.active), 500);

  lsp.start();
  await tree.refresh();
  void terminals.start();
  // Files change in the container (terminal, tools): re-read open folders and clean tabs.
  const poll = setInterval(() => {
    if (document.visibilityState !== "visible") return;
    void tree.refresh();
    void editors.refreshClean();
  }, 4000);
  metrics.interactiveAt = performance.now();
  window.aicockpitMetrics = metrics;

  return () => {
    clearInterval(poll);
    clearInterval(cursorTimer);
    document.removeEventListener("keydown", onKey, true);
    window.removeEventListener("beforeunload", onUnload);
    lsp.stop();
  };
}
