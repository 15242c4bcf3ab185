//! The AiCockpit extension: starts `aicockpit-lsp`, keeps it running, and
//! gives its features commands, a status bar item and a chat view.

import * as fs from "node:fs";
import * as os from "node:os";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  ProgressType,
  type ServerOptions,
  State,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
  type WorkDoneProgressEnd,
} from "vscode-languageclient/node";
import { ChatViewProvider } from "./chat";
import {
  acceptedLength,
  Backoff,
  type ExtensionSettings,
  INSTALL_INSTRUCTIONS,
  resolveServerPath,
  searchHitLabel,
  serviceChoices,
  type StatusState,
  statusBarView,
  toServerSettings,
} from "./logic";

const INDEX_TOKEN = "aicockpit/index";
const LANGUAGES = ["rust", "python", "javascript", "javascriptreact", "typescript", "typescriptreact", "go", "java", "c", "cpp"];

/** The last ghost text shown, for word-by-word accept feedback. */
interface ShownSuggestion {
  uri: string;
  text: string;
  accepted: number;
  item: unknown;
}

interface SearchHit {
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  score: number;
  snippet: string;
  symbol?: { name: string; kind: number; kindName: string; container?: string | null; signature: string } | null;
}

/** Everything one activation owns. */
class Cockpit implements vscode.Disposable {
  client: LanguageClient | undefined;
  private readonly output = vscode.window.createOutputChannel("AiCockpit", { log: true });
  private readonly statusItem = vscode.window.createStatusBarItem("aicockpit.status", vscode.StatusBarAlignment.Right, 100);
  private readonly backoff = new Backoff();
  private state: StatusState = { server: "starting" };
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private shown: ShownSuggestion | undefined;
  private root: string | undefined;
  private readonly clientDisposables: vscode.Disposable[] = [];
  readonly chat: ChatViewProvider;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.statusItem.name = "AiCockpit";
    this.statusItem.command = "aicockpit.chooseService";
    this.chat = new ChatViewProvider(context.extensionUri, this);
    this.render();
    this.statusItem.show();
  }

  log(message: string): void {
    this.output.info(message);
  }

  rootFolder(): string | undefined {
    return this.root ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  private render(): void {
    const view = statusBarView(this.state);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  private setState(change: Partial<StatusState>): void {
    this.state = { ...this.state, ...change };
    this.render();
  }

  private settings(): ReturnType<typeof toServerSettings> {
    const config = vscode.workspace.getConfiguration("aicockpit");
    return toServerSettings((key: keyof ExtensionSettings) => config.get(key));
  }

  /** Start the server, or offer install instructions when it cannot be found. */
  async start(): Promise<void> {
    const config = vscode.workspace.getConfiguration("aicockpit");
    const location = resolveServerPath({
      setting: config.get<string | null>("serverPath"),
      pathEnv: process.env["PATH"],
      home: os.homedir(),
      platform: process.platform,
      isExecutable: (file) => {
        try {
          fs.accessSync(file, fs.constants.X_OK);
          return fs.statSync(file).isFile();
        } catch {
          return false;
        }
      },
    });
    if (location.kind === "missing") {
      this.setState({ server: "missing", detail: location.reason });
      this.log(location.reason);
      const choice = await vscode.window.showErrorMessage(`AiCockpit: ${location.reason}.`, "Show Install Instructions", "Open Settings");
      if (choice === "Show Install Instructions") {
        const doc = await vscode.workspace.openTextDocument({ language: "markdown", content: INSTALL_INSTRUCTIONS });
        await vscode.window.showTextDocument(doc);
      } else if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "aicockpit.serverPath");
      }
      return;
    }
    this.log(`Starting ${location.path} (from ${location.from})`);
    const args = config.get<string[]>("serverArgs") ?? [];
    const serverOptions: ServerOptions = { command: location.path, args, options: { env: process.env } };
    const clientOptions: LanguageClientOptions = {
      documentSelector: LANGUAGES.map((language) => ({ scheme: "file", language })),
      outputChannel: this.output,
      initializationOptions: this.settings(),
      markdown: { isTrusted: false, supportHtml: false },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        // We restart the server ourselves, with backoff, and say so.
        closed: () => {
          if (!this.stopping) {
            this.scheduleRestart("the process exited");
          }
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!vscode.workspace.getConfiguration("aicockpit").get<boolean>("inlineCompletions.enable", true)) {
            return undefined;
          }
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : result?.items;
          const first = items?.[0];
          if (first && typeof first.insertText === "string" && first.insertText !== "") {
            const item = {
              insertText: first.insertText,
              range: first.range ? this.client?.code2ProtocolConverter.asRange(first.range) : undefined,
              command: first.command ? { title: first.command.title, command: first.command.command, arguments: first.command.arguments } : undefined,
            };
            this.shown = { uri: document.uri.toString(), text: first.insertText, accepted: 0, item };
            this.client?.sendNotification("textDocument/didShowCompletion", { item }).catch(() => undefined);
          }
          return result;
        },
      },
    };
    const client = new LanguageClient("aicockpit", "AiCockpit", serverOptions, clientOptions);
    this.client = client;
    this.setState({ server: "starting", detail: undefined });
    try {
      await client.start();
    } catch (error) {
      this.log(`The server did not start: ${String(error)}`);
      // Unregister what the failed client registered (its server commands), so the next start can.
      await client.dispose(2000).catch(() => undefined);
      if (!this.stopping) {
        this.scheduleRestart(error instanceof Error ? error.message : String(error));
      }
      return;
    }
    this.backoff.started(Date.now());
    this.setState({ server: "running", detail: undefined });
    this.hookClient(client);
  }

  private hookClient(client: LanguageClient): void {
    for (const disposable of this.clientDisposables.splice(0)) {
      disposable.dispose();
    }
    this.clientDisposables.push(
      client.onNotification("aicockpit/didChangeStatus", (params: { state: string; service?: string | null; message?: string | null }) => {
        const wasFailing = this.state.ai?.state === "failing";
        this.setState({ ai: { state: params.state, service: params.service ?? null, message: params.message ?? null } });
        if (params.state === "failing" && !wasFailing) {
          this.log(`AI service ${params.service ?? ""} is failing: ${params.message ?? ""}`);
        }
      }),
      // Index progress goes to our status bar item as well as VS Code's.
      client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
        this.watchProgress(client, token);
      }),
      client.onDidChangeState((event) => {
        if (event.newState === State.Stopped && !this.stopping && this.state.server === "running") {
          this.setState({ server: "stopped" });
        }
      }),
    );
    void this.refreshStatus(client, 20);
  }

  /**
   * Read the root and the active service from `aicockpit/status`. The server
   * builds its engine after `initialized`, so until then the status has no
   * root: ask again a few times.
   */
  private async refreshStatus(client: LanguageClient, tries: number, serviceChanged = false): Promise<void> {
    for (let attempt = 0; attempt < tries && client === this.client && client.isRunning(); attempt++) {
      try {
        const status = await client.sendRequest<{ root?: string | null; ai?: { service?: string | null } }>("aicockpit/status", {});
        if (status.root) {
          this.root = status.root;
          const service = status.ai?.service ?? null;
          if (serviceChanged || !this.state.ai || this.state.ai.state !== "failing") {
            this.setState({ ai: { state: this.state.ai?.state ?? "ok", service, message: null } });
          }
          return;
        }
      } catch (error) {
        this.log(`aicockpit/status failed: ${String(error)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  private watchProgress(client: LanguageClient, token: string | number): void {
    let finish: (() => void) | undefined;
    let report: ((value: { message?: string; increment?: number }) => void) | undefined;
    let last = 0;
    const subscription = client.onProgress(WorkDoneProgress.type, token, (value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => {
      const isIndex = token === INDEX_TOKEN;
      if (value.kind === "begin") {
        this.log(`progress ${String(token)} began: ${value.title}${value.message ? ` (${value.message})` : ""}`);
        void vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: value.title }, (progress) => {
          report = (update) => progress.report(update);
          return new Promise<void>((resolve) => {
            finish = resolve;
          });
        });
        if (isIndex) {
          this.setState({ indexing: { percentage: value.percentage, message: value.message } });
        }
      } else if (value.kind === "report") {
        const increment = value.percentage !== undefined ? value.percentage - last : undefined;
        last = value.percentage ?? last;
        report?.({ message: value.message, increment });
        if (isIndex) {
          this.setState({ indexing: { percentage: value.percentage, message: value.message } });
        }
      } else {
        this.log(`progress ${String(token)} ended${value.message ? `: ${value.message}` : ""}`);
        finish?.();
        subscription.dispose();
        if (isIndex) {
          this.setState({ indexing: undefined, detail: value.message ? `Index: ${value.message}` : undefined });
          void this.refreshStatus(client, 3);
        }
      }
    });
    this.clientDisposables.push(subscription);
  }

  private scheduleRestart(reason: string): void {
    if (this.restartTimer) {
      return;
    }
    const delay = this.backoff.crashed(Date.now());
    this.setState({ server: "restarting", restartInMs: delay, detail: reason });
    const message = `AiCockpit: the language server stopped (${reason}); restarting in ${Math.ceil(delay / 1000)} s (attempt ${this.backoff.attempts}).`;
    this.log(message);
    void vscode.window.showWarningMessage(message, "Show Log").then((choice) => {
      if (choice === "Show Log") {
        this.output.show();
      }
    });
    const old = this.client;
    this.client = undefined;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void (async () => {
        try {
          await old?.dispose(2000);
        } catch {
          // it is already gone
        }
        await this.start();
      })();
    }, delay);
  }

  async restart(): Promise<void> {
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    await this.stop();
    this.stopping = false;
    await this.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.log(`Stopping the server: ${String(error)}`);
      }
    }
  }

  /** The running client, or a message saying why there is none. */
  ready(): LanguageClient | undefined {
    if (this.client?.isRunning()) {
      return this.client;
    }
    void vscode.window.showWarningMessage("AiCockpit: the language server is not running.", "Restart").then((choice) => {
      if (choice === "Restart") {
        void this.restart();
      }
    });
    return undefined;
  }

  /** Settings changed: send them again. */
  async configurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (event.affectsConfiguration("aicockpit.serverPath") || event.affectsConfiguration("aicockpit.serverArgs")) {
      await this.restart();
      return;
    }
    if (!event.affectsConfiguration("aicockpit")) {
      return;
    }
    const client = this.client;
    if (client?.isRunning()) {
      await client.sendNotification("workspace/didChangeConfiguration", { settings: this.settings() });
      // The active service may have changed: show the one the server now uses.
      await this.refreshStatus(client, 3, true);
    }
  }

  /** Ctrl+Right on ghost text: accept a word, and tell the server how much is accepted. */
  async acceptNextWord(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const before = editor?.document.getText().length ?? 0;
    await vscode.commands.executeCommand("editor.action.inlineSuggest.acceptNextWord");
    const shown = this.shown;
    if (!editor || !shown || shown.uri !== editor.document.uri.toString()) {
      return;
    }
    const after = editor.document.getText().length;
    const total = acceptedLength(shown.accepted, before, after, shown.text.length);
    // Only our suggestion counts (another provider's ghost text may be the one shown).
    const cursor = editor.document.offsetAt(editor.selection.active);
    const start = editor.document.positionAt(Math.max(0, cursor - total));
    const ours = editor.document.getText(new vscode.Range(start, editor.selection.active)) === shown.text.slice(0, total);
    if (ours && total > shown.accepted) {
      shown.accepted = total;
      await this.client?.sendNotification("textDocument/didPartiallyAcceptCompletion", { item: shown.item, acceptedLength: total });
    }
  }

  search(): Promise<void> {
    const client = this.ready();
    if (!client) {
      return Promise.resolve();
    }
    const limit = vscode.workspace.getConfiguration("aicockpit").get<number | null>("search.maxResults") ?? undefined;
    const pick = vscode.window.createQuickPick<vscode.QuickPickItem & { hit?: SearchHit }>();
    pick.placeholder = "Search the project (symbols and code)";
    pick.matchOnDescription = true;
    pick.matchOnDetail = true;
    const selection = vscode.window.activeTextEditor?.selection;
    const selected = selection && !selection.isEmpty ? vscode.window.activeTextEditor?.document.getText(selection) : undefined;
    if (selected && !selected.includes("\n")) {
      pick.value = selected;
    }
    let generation = 0;
    let timer: NodeJS.Timeout | undefined;
    const run = (query: string): void => {
      const mine = ++generation;
      if (query.trim() === "") {
        pick.items = [];
        return;
      }
      pick.busy = true;
      client.sendRequest<SearchHit[]>("aicockpit/search", { query, limit }).then(
        (hits) => {
          if (mine !== generation) {
            return;
          }
          pick.busy = false;
          pick.items = hits.map((hit) => ({ ...searchHitLabel(hit, this.rootFolder()), hit, alwaysShow: true }));
        },
        (error: unknown) => {
          if (mine === generation) {
            pick.busy = false;
            pick.items = [{ label: `$(error) ${error instanceof Error ? error.message : String(error)}` }];
          }
        },
      );
    };
    const show = async (hit: SearchHit, preview: boolean): Promise<void> => {
      const uri = vscode.Uri.parse(hit.uri);
      const range = client.protocol2CodeConverter.asRange(hit.range);
      await vscode.window.showTextDocument(uri, { preview, preserveFocus: preview, selection: range });
    };
    pick.onDidChangeValue((value) => {
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(() => run(value), 120);
    });
    pick.onDidChangeActive((items) => {
      const hit = items[0]?.hit;
      if (hit) {
        void show(hit, true);
      }
    });
    pick.onDidAccept(() => {
      const hit = pick.selectedItems[0]?.hit;
      pick.hide();
      if (hit) {
        void show(hit, false);
      }
    });
    pick.onDidHide(() => pick.dispose());
    pick.show();
    if (pick.value) {
      run(pick.value);
    }
    return Promise.resolve();
  }

  /** Explain, refactor, document or fix the selection through the server's code actions. */
  async codeAction(action: "explain" | "refactor" | "document" | "fix"): Promise<void> {
    const client = this.ready();
    const editor = vscode.window.activeTextEditor;
    if (!client || !editor) {
      return;
    }
    const document = editor.document;
    const range = editor.selection;
    const diagnostics = vscode.languages.getDiagnostics(document.uri).filter((d) => d.range.intersection(range) !== undefined);
    const c2p = client.code2ProtocolConverter;
    const actions = await client.sendRequest<Array<{ title: string; kind?: string; data?: { action?: string }; edit?: unknown; command?: { command: string; arguments?: unknown[] } }> | null>(
      "textDocument/codeAction",
      {
        textDocument: { uri: c2p.asUri(document.uri) },
        range: c2p.asRange(range),
        context: { diagnostics: await c2p.asDiagnostics(diagnostics), triggerKind: 1 },
      },
    );
    // An action that edits carries its `data` (resolved lazily); explain is
    // always a command whose argument is that same data.
    const actionOf = (candidate: (typeof actions & object)[number]): string | undefined => {
      const argument = candidate.command?.arguments?.[0];
      const fromCommand =
        typeof argument === "object" && argument !== null && "action" in argument ? String(argument.action) : undefined;
      return candidate.data?.action ?? fromCommand;
    };
    const offered = (actions ?? []).find((candidate) => actionOf(candidate) === action);
    if (!offered) {
      void vscode.window.showInformationMessage(
        action === "fix" ? "AiCockpit: there is no diagnostic in the selection to fix." : `AiCockpit: the server offers no "${action}" here.`,
      );
      return;
    }
    if (!offered.data && offered.command) {
      // Computed by the command itself (explain): its result is the answer.
      const { command: name, arguments: args } = offered.command;
      const answer = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `AiCockpit: ${offered.title}`, cancellable: true },
        (_progress, token) => client.sendRequest<unknown>("workspace/executeCommand", { command: name, arguments: args }, token),
      );
      if (typeof answer === "string") {
        await this.chat.showExplanation(offered.title, answer);
      }
      return;
    }
    const resolved = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `AiCockpit: ${offered.title}`, cancellable: true },
      (_progress, token) => client.sendRequest<typeof offered>("codeAction/resolve", offered, token),
    );
    if (resolved.edit) {
      const edit = await client.protocol2CodeConverter.asWorkspaceEdit(resolved.edit as Parameters<typeof client.protocol2CodeConverter.asWorkspaceEdit>[0]);
      if (!edit || !(await vscode.workspace.applyEdit(edit))) {
        void vscode.window.showWarningMessage("AiCockpit: the edit was not applied (the document changed meanwhile).");
      }
    }
    const command = resolved.command;
    if (command?.command === "aicockpit.explain" && typeof command.arguments?.[0] === "string") {
      await this.chat.showExplanation(offered.title, command.arguments[0]);
    } else if (command) {
      await client.sendRequest("workspace/executeCommand", { command: command.command, arguments: command.arguments });
    }
  }

  /** Ask the server to index everything again: a changed `.gitignore` makes it refresh the whole project. */
  async reindex(): Promise<void> {
    const client = this.ready();
    const root = this.rootFolder();
    if (!client || !root) {
      return;
    }
    await client.sendNotification("workspace/didChangeWatchedFiles", {
      changes: [{ uri: vscode.Uri.joinPath(vscode.Uri.file(root), ".gitignore").toString(), type: 2 }],
    });
    void vscode.window.setStatusBarMessage("AiCockpit: reindexing the project", 3000);
  }

  async chooseService(): Promise<void> {
    const client = this.ready();
    if (!client) {
      return;
    }
    const status = await client.sendRequest<unknown>("aicockpit/status", {});
    const { names, active } = serviceChoices(status);
    const other = "$(edit) Another service…";
    const items: vscode.QuickPickItem[] = names.map((name) => ({
      label: name,
      description: name === active ? "active" : undefined,
      picked: name === active,
    }));
    items.push({ label: other, description: "a name from config.toml (aicockpit ai list)" });
    const picked = await vscode.window.showQuickPick(items, { placeHolder: "Choose the active AI service" });
    if (!picked) {
      return;
    }
    let name: string | undefined = picked.label;
    if (name === other) {
      name = await vscode.window.showInputBox({ prompt: "The name of an AI service in config.toml", placeHolder: "service name" });
    }
    if (!name) {
      return;
    }
    const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    // The setting change sends workspace/didChangeConfiguration.
    await vscode.workspace.getConfiguration("aicockpit").update("ai.active", name, target);
  }

  async suggestCommand(): Promise<void> {
    const client = this.ready();
    if (!client) {
      return;
    }
    const description = await vscode.window.showInputBox({ prompt: "What should the command do?", placeHolder: "e.g. find files over 10 MB changed this week" });
    if (!description) {
      return;
    }
    const terminal = vscode.window.activeTerminal ?? vscode.window.createTerminal("AiCockpit");
    const suggestion = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "AiCockpit: suggesting a command", cancellable: true },
      (_progress, token) =>
        client.sendRequest<{ command: string; explanation: string }>(
          "aicockpit/suggestCommand",
          { description, cwd: this.rootFolder(), shell: vscode.env.shell || undefined },
          token,
        ),
    );
    // Typed into the terminal, never run: the user presses Enter. A terminal
    // runs whatever follows a line break (sendText turns LF into CR), so a
    // command with any control character is refused here too, not only
    // made one line by the server.
    // eslint-disable-next-line no-control-regex -- control characters are what it refuses
    if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(suggestion.command)) {
      void vscode.window.showErrorMessage("AiCockpit: the suggested command has line breaks or control characters; it was not typed.");
      return;
    }
    terminal.show();
    terminal.sendText(suggestion.command, false);
    if (suggestion.explanation) {
      void vscode.window.showInformationMessage(`AiCockpit: ${suggestion.explanation}`);
    }
  }

  async showStatus(): Promise<void> {
    const client = this.ready();
    if (!client) {
      return;
    }
    const status = await client.sendRequest<unknown>("aicockpit/status", {});
    const doc = await vscode.workspace.openTextDocument({ language: "json", content: JSON.stringify(status, null, 2) });
    await vscode.window.showTextDocument(doc, { preview: true });
  }

  /** `aicockpit/chat`, streaming each piece of the answer to `onDelta`. */
  async ask(
    messages: Array<{ role: string; content: string }>,
    onDelta: (delta: string) => void,
    token: vscode.CancellationToken,
  ): Promise<{ content: string; sources: string[] }> {
    const client = this.client;
    if (!client?.isRunning()) {
      throw new Error("the language server is not running");
    }
    const partialResultToken = `aicockpit-chat-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const progress = client.onProgress(new ProgressType<{ delta?: string }>(), partialResultToken, (value) => {
      if (typeof value.delta === "string") {
        onDelta(value.delta);
      }
    });
    const editor = vscode.window.activeTextEditor;
    const params: Record<string, unknown> = { messages, partialResultToken };
    if (editor && editor.document.uri.scheme === "file") {
      params["uri"] = client.code2ProtocolConverter.asUri(editor.document.uri);
      params["range"] = client.code2ProtocolConverter.asRange(editor.selection);
    }
    try {
      return await client.sendRequest<{ content: string; sources: string[] }>("aicockpit/chat", params, token);
    } finally {
      progress.dispose();
    }
  }

  dispose(): void {
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
    }
    for (const disposable of this.clientDisposables.splice(0)) {
      disposable.dispose();
    }
    this.statusItem.dispose();
    this.output.dispose();
  }
}

let cockpit: Cockpit | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const instance = new Cockpit(context);
  cockpit = instance;
  const guarded = (name: string, run: () => Promise<void>) =>
    vscode.commands.registerCommand(name, async () => {
      try {
        await run();
      } catch (error) {
        if (error instanceof vscode.CancellationError) {
          return;
        }
        const message = error instanceof Error ? error.message : String(error);
        instance.log(`${name}: ${message}`);
        void vscode.window.showErrorMessage(`AiCockpit: ${message}`);
      }
    });
  context.subscriptions.push(
    instance,
    vscode.window.registerWebviewViewProvider("aicockpit.chat", instance.chat, { webviewOptions: { retainContextWhenHidden: true } }),
    guarded("aicockpit.search", () => instance.search()),
    guarded("aicockpit.explainSelection", () => instance.codeAction("explain")),
    guarded("aicockpit.refactorSelection", () => instance.codeAction("refactor")),
    guarded("aicockpit.documentSelection", () => instance.codeAction("document")),
    guarded("aicockpit.fixSelection", () => instance.codeAction("fix")),
    guarded("aicockpit.reindex", () => instance.reindex()),
    guarded("aicockpit.chooseService", () => instance.chooseService()),
    guarded("aicockpit.suggestCommand", () => instance.suggestCommand()),
    guarded("aicockpit.showStatus", () => instance.showStatus()),
    guarded("aicockpit.restartServer", () => instance.restart()),
    guarded("aicockpit.acceptNextWord", () => instance.acceptNextWord()),
    guarded("aicockpit.openChat", () => instance.chat.reveal()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      instance.configurationChanged(event).catch((error: unknown) => instance.log(`settings: ${String(error)}`));
    }),
    vscode.workspace.registerTextDocumentContentProvider(ChatViewProvider.PROPOSAL_SCHEME, instance.chat.proposals),
  );
  await instance.start();
}

export async function deactivate(): Promise<void> {
  await cockpit?.stop();
  cockpit = undefined;
}
