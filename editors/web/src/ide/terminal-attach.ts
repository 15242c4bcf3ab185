// The terminal protocol's client side as a pure state machine: what to do
// on each socket event. Binary frames are the terminal's bytes; text
// frames are JSON control messages (see docs/api.md): from the server
// `session` (first, with the id to reattach to), `exit`, `shutdown`,
// `error`; from us `resize`. After a drop or a reload we reconnect with
// `?session=<id>` and the server replays the last 64 KiB, so the screen is
// reset first and the replay redraws it.

import { reconnectDelay } from "./rpc.js";

export type AttachState = "connecting" | "open" | "waiting" | "exited" | "closed";

export type Effect =
  | { kind: "reset" }
  | { kind: "write"; data: Uint8Array }
  | { kind: "notice"; text: string }
  | { kind: "send"; frame: string }
  | { kind: "reconnect"; afterMs: number }
  | { kind: "remember"; session: string }
  | { kind: "readOnly"; readOnly: boolean };

export interface ControlMessage {
  type: string;
  id?: string;
  read_only?: boolean;
  replaced?: boolean;
  code?: number | null;
  message?: string;
}

export class TerminalAttach {
  state: AttachState = "connecting";
  session: string | null;
  readOnly = false;
  private attempts = 0;
  /** Whether the screen already shows output (a reattach must reset it). */
  private drawn = false;
  cols = 80;
  rows = 24;

  constructor(session: string | null = null) {
    this.session = session;
  }

  /** The path (with query) to open the socket on. */
  path(workspacePath: string): string {
    const query = new URLSearchParams();
    if (this.session) query.set("session", this.session);
    query.set("cols", String(this.cols));
    query.set("rows", String(this.rows));
    return `${workspacePath}/terminal?${query.toString()}`;
  }

  opened(): Effect[] {
    this.state = "open";
    this.attempts = 0;
    return [];
  }

  text(frame: string): Effect[] {
    let message: ControlMessage;
    try {
      message = JSON.parse(frame) as ControlMessage;
    } catch {
      return [{ kind: "notice", text: "the server sent a control message that is not JSON" }];
    }
    switch (message.type) {
      case "session": {
        const effects: Effect[] = [];
        if (this.drawn) effects.push({ kind: "reset" });
        if (message.replaced && this.session) effects.push({ kind: "notice", text: "the earlier shell had ended: this is a new one" });
        this.session = message.id ?? this.session;
        this.readOnly = Boolean(message.read_only);
        if (this.session) effects.push({ kind: "remember", session: this.session });
        effects.push({ kind: "readOnly", readOnly: this.readOnly });
        // Tell the server our size now (the replay was drawn at the old one).
        if (!this.readOnly) effects.push({ kind: "send", frame: this.resizeFrame() });
        return effects;
      }
      case "exit":
        this.state = "exited";
        return [{ kind: "notice", text: `the shell ended${message.code === null || message.code === undefined ? "" : ` (exit status ${message.code})`}` }];
      case "shutdown":
        return [{ kind: "notice", text: "the server is restarting: reattaching when it is back" }];
      case "error":
        return [{ kind: "notice", text: message.message ?? "terminal error" }];
      default:
        return [];
    }
  }

  binary(data: Uint8Array): Effect[] {
    this.drawn = true;
    return [{ kind: "write", data }];
  }

  /** The socket closed (or failed to open). */
  closed(): Effect[] {
    if (this.state === "exited" || this.state === "closed") return [];
    this.state = "waiting";
    const afterMs = reconnectDelay(this.attempts++);
    return [{ kind: "reconnect", afterMs }];
  }

  /** The reconnect timer fired. */
  retry(): void {
    if (this.state === "waiting") this.state = "connecting";
  }

  resize(cols: number, rows: number): Effect[] {
    if (cols === this.cols && rows === this.rows) return [];
    this.cols = cols;
    this.rows = rows;
    return this.state === "open" && !this.readOnly ? [{ kind: "send", frame: this.resizeFrame() }] : [];
  }

  /** The user closed the panel: no reconnects. */
  dispose(): void {
    this.state = "closed";
  }

  private resizeFrame(): string {
    return JSON.stringify({ type: "resize", cols: this.cols, rows: this.rows });
  }
}
