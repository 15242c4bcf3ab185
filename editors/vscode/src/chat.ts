//! The chat view: a webview with a strict content security policy (no remote
//! content, one nonce'd script from the extension) that streams
//! `aicockpit/chat` answers, links their sources, and inserts or applies
//! code blocks (apply shows a diff first).

import * as crypto from "node:crypto";
import * as vscode from "vscode";
import { codeBlocks, parseSource } from "./logic";

/** What the chat view needs from the extension. */
export interface ChatBackend {
  ask(
    messages: Array<{ role: string; content: string }>,
    onDelta: (delta: string) => void,
    token: vscode.CancellationToken,
  ): Promise<{ content: string; sources: string[] }>;
  rootFolder(): string | undefined;
  log(message: string): void;
}

/** Messages from the webview. */
type FromView =
  | { type: "ask"; text: string }
  | { type: "stop" }
  | { type: "clear" }
  | { type: "open"; source: string }
  | { type: "insert"; turn: number; block: number }
  | { type: "apply"; turn: number; block: number };

/** Proposed texts shown on the right of the apply diff. */
class Proposals implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  delete(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }
}

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly PROPOSAL_SCHEME = "aicockpit-proposal";
  readonly proposals = new Proposals();
  private view: vscode.WebviewView | undefined;
  private readonly history: Array<{ role: string; content: string }> = [];
  private running: vscode.CancellationTokenSource | undefined;
  private pending: Array<() => void> = [];
  private proposalCount = 0;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly backend: ChatBackend,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, "dist");
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = this.html(view.webview);
    view.webview.onDidReceiveMessage((message: FromView) => {
      this.receive(message).catch((error: unknown) => {
        this.backend.log(`chat: ${String(error)}`);
        void vscode.window.showErrorMessage(`AiCockpit: ${error instanceof Error ? error.message : String(error)}`);
      });
    });
    view.onDidDispose(() => {
      this.view = undefined;
    });
    for (const waiting of this.pending.splice(0)) {
      waiting();
    }
  }

  /** Show the view (and run what waited for it). */
  async reveal(): Promise<void> {
    await vscode.commands.executeCommand("aicockpit.chat.focus");
  }

  private async whenVisible(): Promise<vscode.WebviewView> {
    if (this.view) {
      return this.view;
    }
    await this.reveal();
    if (this.view) {
      return this.view;
    }
    return new Promise((resolve) => {
      this.pending.push(() => {
        if (this.view) {
          resolve(this.view);
        }
      });
    });
  }

  private post(message: unknown): void {
    void this.view?.webview.postMessage(message);
  }

  /** An explanation from the "explain" code action, shown as an answer. */
  async showExplanation(title: string, text: string): Promise<void> {
    await this.whenVisible();
    this.history.push({ role: "user", content: title }, { role: "assistant", content: text });
    const turn = this.history.length - 1;
    this.post({ type: "question", text: title });
    this.post({ type: "done", turn, content: text, sources: [] });
  }

  private async receive(message: FromView): Promise<void> {
    switch (message.type) {
      case "ask":
        await this.ask(message.text);
        return;
      case "stop":
        this.running?.cancel();
        return;
      case "clear":
        this.running?.cancel();
        this.history.length = 0;
        return;
      case "open":
        await this.openSource(message.source);
        return;
      case "insert":
        await this.insert(this.block(message.turn, message.block));
        return;
      case "apply":
        await this.apply(this.block(message.turn, message.block));
        return;
    }
  }

  private block(turn: number, block: number): string | undefined {
    const content = this.history[turn]?.content;
    return content === undefined ? undefined : codeBlocks(content)[block]?.code;
  }

  private async ask(text: string): Promise<void> {
    if (text.trim() === "" || this.running) {
      return;
    }
    this.history.push({ role: "user", content: text });
    const source = new vscode.CancellationTokenSource();
    this.running = source;
    this.post({ type: "start" });
    try {
      const result = await this.backend.ask(
        this.history.slice(),
        (delta) => this.post({ type: "delta", delta }),
        source.token,
      );
      this.history.push({ role: "assistant", content: result.content });
      this.post({ type: "done", turn: this.history.length - 1, content: result.content, sources: result.sources });
    } catch (error) {
      // A failed question is not part of the conversation.
      this.history.pop();
      const reason = source.token.isCancellationRequested ? "stopped" : error instanceof Error ? error.message : String(error);
      this.post({ type: "error", message: reason });
    } finally {
      source.dispose();
      this.running = undefined;
    }
  }

  private async openSource(source: string): Promise<void> {
    const parsed = parseSource(source, this.backend.rootFolder());
    if (!parsed) {
      void vscode.window.showWarningMessage(`AiCockpit: cannot open ${source}`);
      return;
    }
    const position = new vscode.Position(parsed.line ?? 0, 0);
    await vscode.window.showTextDocument(vscode.Uri.file(parsed.file), {
      preview: true,
      selection: new vscode.Range(position, position),
    });
  }

  private target(): vscode.TextEditor | undefined {
    const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
    if (!editor) {
      void vscode.window.showWarningMessage("AiCockpit: open the file to put the code in first.");
    }
    return editor;
  }

  private async insert(code: string | undefined): Promise<void> {
    const editor = this.target();
    if (!editor || code === undefined) {
      return;
    }
    await editor.edit((builder) => {
      for (const selection of editor.selections) {
        builder.replace(selection, code);
      }
    });
  }

  /** Replace the selection (or insert at the cursor) after showing the change as a diff. */
  private async apply(code: string | undefined): Promise<void> {
    const editor = this.target();
    if (!editor || code === undefined) {
      return;
    }
    const document = editor.document;
    const version = document.version;
    const selection = editor.selection;
    const text = document.getText();
    const start = document.offsetAt(selection.start);
    const end = document.offsetAt(selection.end);
    const proposed = text.slice(0, start) + code + text.slice(end);
    const name = document.uri.path.split("/").pop() ?? "file";
    const uri = vscode.Uri.from({ scheme: ChatViewProvider.PROPOSAL_SCHEME, path: `/${++this.proposalCount}/${name}` });
    this.proposals.set(uri, proposed);
    await vscode.commands.executeCommand("vscode.diff", document.uri, uri, `${name} ↔ AiCockpit's change`, { preview: true });
    const choice = await vscode.window.showInformationMessage(`Apply AiCockpit's change to ${name}?`, "Apply", "Discard");
    // The diff has served its purpose either way.
    const diffs = vscode.window.tabGroups.all
      .flatMap((group) => group.tabs)
      .filter((tab) => tab.input instanceof vscode.TabInputTextDiff && tab.input.modified.toString() === uri.toString());
    await vscode.window.tabGroups.close(diffs);
    this.proposals.delete(uri);
    if (choice !== "Apply") {
      return;
    }
    if (document.version !== version) {
      void vscode.window.showWarningMessage(`AiCockpit: ${name} changed since the diff was shown; not applied.`);
      return;
    }
    const edit = new vscode.WorkspaceEdit();
    edit.replace(document.uri, new vscode.Range(selection.start, selection.end), code);
    await vscode.workspace.applyEdit(edit);
    await vscode.window.showTextDocument(document, editor.viewColumn);
  }

  private html(webview: vscode.Webview): string {
    const nonce = crypto.randomBytes(18).toString("base64url");
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, "dist", "webview.js"));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, "dist", "chat.css"));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      `font-src ${webview.cspSource}`,
      "img-src 'none'",
      "connect-src 'none'",
      "frame-src 'none'",
      "form-action 'none'",
      "base-uri 'none'",
    ].join("; ");
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>AiCockpit Chat</title>
</head>
<body>
<div id="log" role="log" aria-live="polite"></div>
<form id="form">
<textarea id="input" rows="3" placeholder="Ask about the project (Enter sends, Shift+Enter for a new line)"></textarea>
<div class="buttons"><button id="send" type="submit">Send</button><button id="stop" type="button" disabled>Stop</button><button id="clear" type="button">Clear</button></div>
</form>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }
}
