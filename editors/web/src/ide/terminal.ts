// Terminals: xterm.js driven by our attach state machine (terminal-attach.ts),
// several per workspace, resized with the panel, reattached with the
// server's replay after a reload (session ids are kept in localStorage) or
// a network drop. "Suggest" asks the language server for a command and
// puts it at the prompt without running it.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { ApiError, call, json, socketUrl, ws } from "../api.js";
import { h, prompt, toast } from "../dom.js";
import { TerminalAttach, type Effect } from "./terminal-attach.js";

export interface TerminalsOptions {
  workspace: string;
  readOnly: boolean;
  /** Open terminals by themselves (the workspace runs). */
  autoOpen: boolean;
  suggest(description: string): Promise<{ command: string; explanation?: string }>;
  explain(text: string): void;
}

class TerminalView {
  readonly term: Terminal;
  readonly fit = new FitAddon();
  readonly el = h("div.terminal");
  readonly machine: TerminalAttach;
  private socket: WebSocket | null = null;
  private encoder = new TextEncoder();

  constructor(
    private owner: Terminals,
    session: string | null,
    readonly label: string,
  ) {
    this.machine = new TerminalAttach(session);
    this.term = new Terminal({
      cursorBlink: true,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 13,
      scrollback: 5000,
      theme: owner.theme(),
      disableStdin: owner.options.readOnly,
    });
    this.term.loadAddon(this.fit);
    this.term.onData((data) => this.input(data));
    this.term.onResize(({ cols, rows }) => this.run(this.machine.resize(cols, rows)));
  }

  mount(): void {
    if (!this.term.element) this.term.open(this.el);
    this.resize();
  }

  resize(): void {
    if (!this.el.isConnected || this.el.clientHeight === 0) return;
    try {
      this.fit.fit();
    } catch {
      // Not laid out yet.
    }
  }

  input(data: string): void {
    if (this.machine.readOnly) return;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(this.encoder.encode(data));
  }

  connect(): void {
    const path = this.machine.path(ws(this.owner.options.workspace));
    const socket = new WebSocket(socketUrl(path));
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.asked = false;
      this.run(this.machine.opened());
    };
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") this.run(this.machine.text(event.data));
      else this.run(this.machine.binary(new Uint8Array(event.data as ArrayBuffer)));
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      if (opened || this.asked) {
        this.run(this.machine.closed());
        return;
      }
      // A refused upgrade shows no status to a WebSocket. Ask once over
      // plain HTTP: a 401 brings up the sign-in form and a 403
      // reauth_required the password dialog (a terminal on the local
      // backend is a shell on the server's host); then reconnect.
      this.asked = true;
      void call(path).then(
        () => this.run(this.machine.closed()),
        (error: unknown) => {
          // Refused for good (the dialog was cancelled, no password, no
          // access): say so and stop, rather than knock every few seconds.
          if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
            this.machine.dispose();
            this.run([{ kind: "notice", text: `${error.message}: close this terminal and open a new one to try again` }]);
            return;
          }
          // Over a quota (too many connections or shells): say so, and try
          // again later as after any drop.
          if (error instanceof ApiError && error.status === 429) this.run([{ kind: "notice", text: error.message }]);
          this.run(this.machine.closed());
        },
      );
    };
  }

  /** A failed open was looked into over HTTP since the last open. */
  private asked = false;

  private run(effects: Effect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "reset":
          this.term.reset();
          break;
        case "write":
          this.term.write(effect.data);
          break;
        case "notice":
          this.term.write(`\r\n\x1b[2m[${effect.text}]\x1b[0m\r\n`);
          break;
        case "send":
          if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(effect.frame);
          break;
        case "reconnect":
          this.owner.status(`terminal ${this.label}: reconnecting`);
          setTimeout(() => {
            this.machine.retry();
            if (this.machine.state === "connecting") this.connect();
          }, effect.afterMs);
          break;
        case "remember":
          this.owner.remember();
          break;
        case "readOnly":
          this.term.options.disableStdin = effect.readOnly;
          this.el.classList.toggle("read-only", effect.readOnly);
          break;
      }
    }
  }

  /** Put text at the prompt, not run: a terminal runs what follows a CR or
   * LF, and ESC starts a sequence, so every control character becomes a space. */
  type(text: string): void {
    // eslint-disable-next-line no-control-regex -- control characters are what it removes
    this.input(text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " "));
    this.term.focus();
  }

  dispose(): void {
    this.machine.dispose();
    this.socket?.close();
    this.term.dispose();
  }
}

export class Terminals {
  readonly el = h("div.terminals");
  private bar = h("div.terminal-tabs");
  private body = h("div.terminal-body");
  private views: TerminalView[] = [];
  private active: TerminalView | null = null;
  private counter = 0;
  private storageKey: string;

  constructor(readonly options: TerminalsOptions) {
    this.storageKey = `aicockpit.terminals.${options.workspace}`;
    this.el.append(this.bar, this.body);
    new ResizeObserver(() => this.active?.resize()).observe(this.body);
  }

  theme(): Record<string, string> {
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    return dark
      ? { background: "#1e1e1e", foreground: "#d4d4d4", cursor: "#d4d4d4", selectionBackground: "#264f78" }
      : { background: "#ffffff", foreground: "#1e1e1e", cursor: "#1e1e1e", selectionBackground: "#add6ff" };
  }

  status(text: string): void {
    this.el.dataset.status = text;
  }

  /** Attach to the sessions of the last visit (or, for viewers, the open ones); else open one. */
  async start(): Promise<void> {
    let sessions: string[];
    try {
      sessions = JSON.parse(localStorage.getItem(this.storageKey) ?? "[]") as string[];
    } catch {
      sessions = [];
    }
    if (this.options.readOnly) {
      try {
        const open = await json<{ session: string }[]>(`${ws(this.options.workspace)}/terminals`);
        sessions = open.map((s) => s.session);
      } catch (error) {
        toast(`cannot list terminals: ${String(error)}`, "error");
      }
    }
    if (!this.options.autoOpen) {
      this.body.replaceChildren(h("div.muted.pad", {}, "The workspace is not running: start it to open a terminal."));
      this.renderBar();
      return;
    }
    for (const session of sessions) this.add(session);
    if (!this.views.length && !this.options.readOnly) this.add(null);
    this.renderBar();
  }

  add(session: string | null): TerminalView {
    const view = new TerminalView(this, session, String(++this.counter));
    this.views.push(view);
    this.show(view);
    view.connect();
    this.renderBar();
    return view;
  }

  private show(view: TerminalView): void {
    this.active = view;
    this.body.replaceChildren(view.el);
    view.mount();
    this.renderBar();
  }

  close(view: TerminalView): void {
    view.dispose();
    this.views = this.views.filter((v) => v !== view);
    this.remember();
    const next = this.views[this.views.length - 1];
    if (next) this.show(next);
    else {
      this.active = null;
      this.body.replaceChildren(h("div.muted.pad", {}, this.options.readOnly ? "No terminal is open in this workspace." : "No terminal: press + to open one."));
    }
    this.renderBar();
  }

  remember(): void {
    const ids = this.views.map((v) => v.machine.session).filter((s): s is string => Boolean(s));
    localStorage.setItem(this.storageKey, JSON.stringify(ids));
  }

  private renderBar(): void {
    const tabs = this.views.map((view) =>
      h(
        `div.terminal-tab${view === this.active ? ".active" : ""}`,
        { onclick: () => this.show(view), title: view.machine.session ?? "" },
        `Terminal ${view.label}${view.machine.readOnly ? " (read-only)" : ""}`,
        h("button.tab-close", { "aria-label": "close terminal", onclick: (e: Event) => (e.stopPropagation(), this.close(view)) }, "×"),
      ),
    );
    const actions = this.options.readOnly
      ? [h("span.muted", {}, "read-only: you watch these terminals")]
      : [
          h("button.icon", { title: "New terminal (Ctrl+Shift+`)", "aria-label": "new terminal", onclick: () => this.add(null) }, "+"),
          h("button", { title: "Suggest a command and put it at the prompt", onclick: () => void this.suggest() }, "✦ Suggest command"),
          h("button", { title: "Explain the selected terminal text in the chat", onclick: () => this.explainSelection() }, "Explain selection"),
        ];
    this.bar.replaceChildren(...tabs, h("span.spacer"), ...actions);
  }

  focus(): void {
    this.active?.term.focus();
  }

  async suggest(): Promise<void> {
    const view = this.active;
    if (!view) return;
    const description = await prompt("Suggest a command", "What should the command do?");
    if (!description) return;
    this.status("asking the AI for a command…");
    try {
      const answer = await this.options.suggest(description);
      view.type(answer.command);
      if (answer.explanation) toast(answer.explanation);
    } catch (error) {
      toast(`no suggestion: ${error instanceof Error ? error.message : String(error)}`, "error");
    }
  }

  explainSelection(): void {
    const text = this.active?.term.getSelection() ?? "";
    if (!text.trim()) return toast("select some terminal text first", "error");
    this.options.explain(text);
  }

  resize(): void {
    this.active?.resize();
  }
}
