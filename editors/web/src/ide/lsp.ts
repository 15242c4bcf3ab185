// The language server over the workspace's WebSocket (`…/lsp`, one JSON-RPC
// message per text frame). @codemirror/lsp-client does the editor features;
// this file owns the socket: it reconnects by itself after a drop or a
// server restart (the editors keep their text, and the client re-opens the
// documents), answers the server's own requests, routes `$/progress` and
// `aicockpit/didChangeStatus` to the UI, and sends AI requests itself with
// longer timeouts than the client's 3 s.

import { LSPClient, Workspace, type Transport, type WorkspaceFile, LSPPlugin } from "@codemirror/lsp-client";
import type { ChangeSet, Text, TransactionSpec } from "@codemirror/state";
import type { EditorView } from "@codemirror/view";
import { OwnRequests, errorFrame, parseFrame, reconnectDelay, resultFrame, type Message } from "./rpc.js";
import { ApiError, call, socketUrl } from "../api.js";

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

export interface LspEvents {
  state(state: ConnectionState, detail?: string): void;
  progress(token: string | number, value: ProgressValue): void;
  aiStatus(status: { state: string; service?: string; message?: string }): void;
  message(type: number, text: string): void;
  /** `aicockpit/status`, asked once per connection. */
  serverStatus(status: ServerStatus): void;
  /** Open (or find) the editor of a file, for cross-file jumps. */
  display(uri: string): Promise<EditorView | null>;
}

export interface ServerStatus {
  root?: string;
  readOnly?: boolean;
  indexing?: boolean;
  files?: number;
  symbols?: number;
  ai?: { service?: string | null; lastError?: string | null } | null;
}

export interface ProgressValue {
  kind?: "begin" | "report" | "end";
  title?: string;
  message?: string;
  percentage?: number;
  delta?: string;
}

/** What `syncFiles` reports (the package does not export its name). */
interface WorkspaceFileUpdate {
  file: WorkspaceFile;
  prevDoc: Text;
  changes: ChangeSet;
}

class OpenFile implements WorkspaceFile {
  constructor(
    readonly uri: string,
    readonly languageId: string,
    public version: number,
    public doc: Text,
    readonly view: EditorView,
  ) {}
  getView(): EditorView {
    return this.view;
  }
}

/** One editor per file; files shown through the IDE's tabs. */
class TabsWorkspace extends Workspace {
  files: OpenFile[] = [];
  private versions = new Map<string, number>();

  constructor(
    client: LSPClient,
    private events: LspEvents,
  ) {
    super(client);
  }

  private nextVersion(uri: string): number {
    const version = (this.versions.get(uri) ?? -1) + 1;
    this.versions.set(uri, version);
    return version;
  }

  syncFiles(): readonly WorkspaceFileUpdate[] {
    const result: WorkspaceFileUpdate[] = [];
    for (const file of this.files) {
      const plugin = LSPPlugin.get(file.view);
      if (!plugin) continue;
      const changes = plugin.unsyncedChanges;
      if (!changes.empty) {
        result.push({ changes, file, prevDoc: file.doc });
        file.doc = file.view.state.doc;
        file.version = this.nextVersion(file.uri);
        plugin.clear();
      }
    }
    return result;
  }

  openFile(uri: string, languageId: string, view: EditorView): void {
    if (this.getFile(uri)) return;
    const file = new OpenFile(uri, languageId, this.nextVersion(uri), view.state.doc, view);
    this.files.push(file);
    if (this.client.serverCapabilities) this.client.didOpen(file);
  }

  closeFile(uri: string): void {
    const file = this.getFile(uri);
    if (!file) return;
    this.files = this.files.filter((f) => f !== file);
    if (this.client.serverCapabilities) this.client.didClose(uri);
  }

  /** Re-open every document once the (re)connected server is initialised. */
  override connected(): void {
    this.client.initializing.then(
      () => {
        for (const file of this.files) {
          // The server lost the old session: send the editor's text as it is now.
          const plugin = LSPPlugin.get(file.view);
          plugin?.clear();
          file.doc = file.view.state.doc;
          file.version = this.nextVersion(file.uri);
          this.client.didOpen(file);
        }
      },
      () => undefined,
    );
  }

  override updateFile(uri: string, update: TransactionSpec): void {
    this.getFile(uri)?.view.dispatch(update);
  }

  override async displayFile(uri: string): Promise<EditorView | null> {
    return this.events.display(uri);
  }

  override getFile(uri: string): OpenFile | null {
    return this.files.find((f) => f.uri === uri) ?? null;
  }

  override async requestFile(uri: string): Promise<WorkspaceFile | null> {
    const existing = this.getFile(uri);
    if (existing) return existing;
    await this.events.display(uri);
    return this.getFile(uri);
  }
}

/** Timeouts of the requests this app sends itself. */
export const AI_TIMEOUT_MS = { inline: 20_000, chat: 180_000, command: 60_000, search: 15_000, other: 15_000 };

export class LspConnection {
  readonly client: LSPClient;
  private socket: WebSocket | null = null;
  private handlers: ((value: string) => void)[] = [];
  readonly own: OwnRequests;
  state: ConnectionState = "connecting";
  private attempts = 0;
  private stopped = false;
  /** The server's project root (from aicockpit/status), for file URIs. */
  root = "/workspace";
  readOnly = false;
  private markReady: () => void = () => undefined;
  /** Settles once the root is known (or after a few seconds without a server). */
  readonly ready = new Promise<void>((resolve) => {
    this.markReady = resolve;
    setTimeout(resolve, 4000);
  });

  constructor(
    private path: string,
    private events: LspEvents,
    extensions: NonNullable<ConstructorParameters<typeof LSPClient>[0]>["extensions"],
    sanitizeHTML: (html: string) => string,
  ) {
    this.own = new OwnRequests((frame) => this.send(frame));
    this.client = new LSPClient({
      timeout: 10_000,
      sanitizeHTML,
      workspace: (client) => new TabsWorkspace(client, events),
      extensions: [
        ...(extensions ?? []),
        {
          clientCapabilities: {
            window: { workDoneProgress: true },
            textDocument: {
              inlineCompletion: {},
              synchronization: { didSave: true },
              documentSymbol: { hierarchicalDocumentSymbolSupport: true },
            },
            workspace: { workspaceEdit: { documentChanges: true }, applyEdit: true, symbol: {} },
          },
        },
      ],
      notificationHandlers: {
        "window/showMessage": (_client, params: { type: number; message: string }) => {
          events.message(params.type, params.message);
          return true;
        },
      },
      unhandledNotification: () => undefined,
    });
  }

  private send(frame: string): void {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new Error("the language server is not connected");
    this.socket.send(frame);
  }

  private transport(): Transport {
    return {
      send: (message) => {
        // Dropped while disconnected: on reconnect every document is re-opened with its current text.
        if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(message);
      },
      subscribe: (handler) => {
        this.handlers.push(handler);
      },
      unsubscribe: (handler) => {
        this.handlers = this.handlers.filter((h) => h !== handler);
      },
    };
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  private setState(state: ConnectionState, detail?: string): void {
    this.state = state;
    this.events.state(state, detail);
  }

  private open(): void {
    this.setState(this.attempts === 0 ? "connecting" : "reconnecting");
    const socket = new WebSocket(socketUrl(this.path));
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempts = 0;
      this.client.connect(this.transport());
      this.client.initializing.then(
        async () => {
          this.setState("connected");
          try {
            const status = await this.request<ServerStatus>("aicockpit/status", {}, AI_TIMEOUT_MS.other);
            if (status.root) this.root = status.root;
            this.readOnly = Boolean(status.readOnly);
            this.events.serverStatus(status);
          } catch {
            // Older servers: keep the default root.
          }
          this.markReady();
        },
        (error: unknown) => this.setState("offline", `initialize failed: ${describe(error)}`),
      );
    };
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") this.receive(event.data);
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.own.failAll("the connection to the server dropped");
      this.client.disconnect();
      if (this.stopped) return;
      const delay = reconnectDelay(this.attempts++);
      const retry = (why: string): void => {
        this.setState("offline", `${why}; retrying in ${Math.round(delay / 100) / 10} s`);
        setTimeout(() => {
          if (!this.stopped) this.open();
        }, delay);
      };
      if (opened) {
        retry(event.reason || "connection lost");
        return;
      }
      // A refused upgrade shows no status to a WebSocket: ask over plain
      // HTTP why (too many connections, no access), and show the answer.
      void call(this.path).then(
        () => retry("connection refused"),
        (error: unknown) => retry(error instanceof ApiError && error.code !== "not_a_websocket" ? error.message : "connection lost"),
      );
    };
  }

  private receive(frame: string): void {
    const message = parseFrame(frame);
    if (message instanceof Error) return;
    if (this.own.settle(message)) return;
    if (message.kind === "request") {
      this.answer(message);
      return;
    }
    if (message.kind === "notification") {
      if (message.method === "$/progress") {
        const params = message.params as { token: string | number; value: ProgressValue };
        this.events.progress(params.token, params.value);
        return;
      }
      if (message.method === "aicockpit/didChangeStatus") {
        this.events.aiStatus(message.params as { state: string; service?: string; message?: string });
        return;
      }
    }
    for (const handler of this.handlers) handler(frame);
  }

  /** The server's own requests. */
  private answer(message: Extract<Message, { kind: "request" }>): void {
    const reply = (frame: string): void => {
      try {
        this.send(frame);
      } catch {
        // Gone: the server forgets the request with the session.
      }
    };
    switch (message.method) {
      case "window/workDoneProgress/create":
      case "client/registerCapability":
      case "client/unregisterCapability":
        reply(resultFrame(message.id, null));
        return;
      case "workspace/applyEdit": {
        const applied = this.applyEdit((message.params as { edit: WorkspaceEdit }).edit);
        reply(resultFrame(message.id, { applied }));
        return;
      }
      case "window/showMessageRequest": {
        const params = message.params as { type: number; message: string };
        this.events.message(params.type, params.message);
        reply(resultFrame(message.id, null));
        return;
      }
      default:
        reply(errorFrame(message.id, -32601, `the web IDE does not handle ${message.method}`));
    }
  }

  /** Apply a workspace edit to the open documents (the only ones the server edits). */
  applyEdit(edit: WorkspaceEdit): boolean {
    const perUri = new Map<string, TextEdit[]>();
    for (const [uri, edits] of Object.entries(edit.changes ?? {})) perUri.set(uri, edits);
    for (const change of edit.documentChanges ?? []) {
      if ("textDocument" in change) perUri.set(change.textDocument.uri, change.edits);
    }
    let applied = true;
    for (const [uri, edits] of perUri) {
      const file = this.client.workspace.getFile(uri);
      const view = file?.getView();
      const plugin = view && LSPPlugin.get(view);
      if (!view || !plugin) {
        applied = false;
        continue;
      }
      view.dispatch({
        changes: edits.map((e) => ({ from: plugin.fromPosition(e.range.start), to: plugin.fromPosition(e.range.end), insert: e.newText })),
        userEvent: "input.lsp",
      });
    }
    return applied;
  }

  /** A request of ours, with its own timeout (documents are synced first). */
  request<T>(method: string, params: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    this.client.sync();
    return this.own.request<T>(method, params, timeoutMs, signal);
  }

  notify(method: string, params: unknown): void {
    try {
      this.send(JSON.stringify({ jsonrpc: "2.0", method, params }));
    } catch {
      // Feedback is best effort.
    }
  }

  uriOf(path: string): string {
    const root = this.root.replace(/\/+$/, "");
    return "file://" + encodeURI(`${root}/${path}`).replace(/\?/g, "%3F").replace(/#/g, "%23");
  }

  /** The workspace-relative path of a URI under the root, or null. */
  pathOf(uri: string): string | null {
    if (!uri.startsWith("file://")) return null;
    const path = decodeURIComponent(uri.slice("file://".length));
    const root = this.root.replace(/\/+$/, "") + "/";
    return path.startsWith(root) ? path.slice(root.length) : null;
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close();
  }
}

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}
export interface TextEdit {
  range: Range;
  newText: string;
}
export interface WorkspaceEdit {
  changes?: Record<string, TextEdit[]>;
  documentChanges?: ({ textDocument: { uri: string }; edits: TextEdit[] } | { kind: string })[];
}

export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error && "message" in error) return String(error.message);
  return String(error);
}
