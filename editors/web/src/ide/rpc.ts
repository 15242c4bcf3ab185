// JSON-RPC over a WebSocket, one message per text frame (no Content-Length
// header): parsing a frame, telling its kind, and the requests this app
// sends itself (AI requests with their own, longer timeouts and cancellation),
// apart from the ones @codemirror/lsp-client makes. Pure: no DOM, no socket.

export type Id = number | string;

export interface RpcError {
  code: number;
  message: string;
  data?: unknown;
}

export type Message =
  | { kind: "request"; id: Id; method: string; params: unknown }
  | { kind: "notification"; method: string; params: unknown }
  | { kind: "response"; id: Id | null; result?: unknown; error?: RpcError };

/** Parse one frame. Anything that is not one JSON-RPC 2.0 message is an Error. */
export function parseFrame(frame: string): Message | Error {
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch (error) {
    return new Error(`not JSON: ${String(error)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return new Error("a frame must hold one JSON-RPC object");
  }
  const v = value as Record<string, unknown>;
  if (v.jsonrpc !== "2.0") return new Error('missing "jsonrpc": "2.0"');
  const id = v.id;
  const validId = typeof id === "number" || typeof id === "string";
  if (typeof v.method === "string") {
    return validId
      ? { kind: "request", id: id, method: v.method, params: v.params }
      : { kind: "notification", method: v.method, params: v.params };
  }
  if ("result" in v || "error" in v) {
    const response: Message = { kind: "response", id: validId ? id : null };
    if ("error" in v && v.error) response.error = v.error as RpcError;
    else response.result = v.result;
    return response;
  }
  return new Error("neither a request, a notification nor a response");
}

export function requestFrame(id: Id, method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params });
}

export function notificationFrame(method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", method, params });
}

export function resultFrame(id: Id, result: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id, result });
}

export function errorFrame(id: Id, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } });
}

/** Our own request ids start here, far above the LSP client's counter. */
export const OWN_ID_BASE = 1_000_000_000;

interface Pending {
  method: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** An error answered by the server, with its JSON-RPC code. */
export class ResponseError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Requests sent by this app (not the LSP client): each with its own
 * timeout; a timed-out or aborted request is cancelled at the server with
 * `$/cancelRequest`. `send` is the socket's; it throws when disconnected.
 */
export class OwnRequests {
  private next = OWN_ID_BASE;
  private pending = new Map<number, Pending>();

  constructor(private send: (frame: string) => void) {}

  request<T>(method: string, params: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const cancel = (why: string): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        try {
          this.send(notificationFrame("$/cancelRequest", { id }));
        } catch {
          // Disconnected: nothing to cancel.
        }
        reject(new Error(why));
      };
      const timer = setTimeout(() => cancel(`${method} timed out after ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
      signal?.addEventListener("abort", () => cancel(`${method} cancelled`), { once: true });
      this.pending.set(id, { method, resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.send(requestFrame(id, method, params));
      } catch (error) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Take a response if it answers one of ours; false when it is the LSP client's. */
  settle(message: Message): boolean {
    if (message.kind !== "response" || typeof message.id !== "number" || message.id < OWN_ID_BASE) return false;
    const pending = this.pending.get(message.id);
    if (!pending) return true;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.error) pending.reject(new ResponseError(message.error.code, message.error.message));
    else pending.resolve(message.result);
    return true;
  }

  /** The connection dropped: every pending request fails. */
  failAll(reason: string): void {
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`${pending.method}: ${reason}`));
      this.pending.delete(id);
    }
  }

  get size(): number {
    return this.pending.size;
  }
}

/** The delay before reconnect attempt `attempt` (0-based): 0.5 s doubling to 8 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(8000, 500 * 2 ** Math.min(attempt, 4));
}
