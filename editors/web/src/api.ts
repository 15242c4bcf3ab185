// The REST client: same-origin fetch with the session cookie, errors in
// the server's one shape ({error, message}) turned into ApiError, and a 401
// routed to the login overlay, which retries the call once signed in again
// (so an expired session never loses what the page holds).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface User {
  id: number;
  name: string;
  role: "admin" | "member" | "auditor";
  created_at: number;
}

export interface WorkspaceView {
  name: string;
  state: string;
  image: string;
  backend: string;
  owner: string | null;
  role: "owner" | "editor" | "viewer" | null;
  created_at: number;
  last_used_at: number;
  memory_bytes: number;
  cpus: number;
  pids: number;
  network: string;
  env: string[];
}

export interface StatsView {
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  pids: number;
  pids_limit: number;
}

export interface FileEntry {
  name: string;
  kind: "file" | "dir" | "symlink";
  size: number;
}

export interface FileView {
  path: string;
  kind: "file" | "dir";
  entries?: FileEntry[];
  /** A folder of more entries than the server lists (10,000). */
  truncated?: boolean;
  encoding?: "utf-8" | "base64";
  content?: string;
  size?: number;
  version?: string;
}

export interface ServiceView {
  name: string;
  kind: string;
  base_url: string;
  chat_model: string | null;
  completion_model: string | null;
  deployment: string | null;
  api_version: string | null;
  api_key_env: string | null;
  key_stored: boolean;
  active: boolean;
}

export interface Member {
  user: string;
  role: "viewer" | "editor";
}

/** Called on a 401: shows the login overlay, resolves once signed in again. */
let reauthenticate: (() => Promise<void>) | null = null;

export function onUnauthorized(handler: () => Promise<void>): void {
  reauthenticate = handler;
}

/** Called on a 403 `reauth_required`: asks for the password, true once confirmed. */
let confirmPassword: (() => Promise<boolean>) | null = null;

export function onReauthRequired(handler: () => Promise<boolean>): void {
  confirmPassword = handler;
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = "http_" + String(response.status);
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: string; message?: string };
    if (body.error) code = body.error;
    if (body.message) message = body.message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

/** A raw call; 401s go through the login overlay and are retried once. */
export async function call(path: string, init: RequestInit = {}, retry = true): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...init });
  } catch (error) {
    throw new ApiError(0, "network", `cannot reach the server (${String(error)})`);
  }
  if (response.status === 401 && retry && reauthenticate && !path.startsWith("/api/v1/auth/")) {
    await reauthenticate();
    return call(path, init, false);
  }
  // Making tokens or users, or changing AI services, needs a password
  // proved recently in this session: ask for it, then try again once.
  if (response.status === 403 && retry && confirmPassword) {
    const error = await errorOf(response.clone());
    if (error.code === "reauth_required") {
      if (!(await confirmPassword())) throw error;
      return call(path, init, false);
    }
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function json<T>(path: string, method = "GET", body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const response = await call(path, init);
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const ws = (name: string): string => `/api/v1/workspaces/${encodeURIComponent(name)}`;

export function fileUrl(workspace: string, path: string): string {
  return `${ws(workspace)}/files?path=${encodeURIComponent(path)}`;
}

/** The WebSocket URL of a path on this server. */
export function socketUrl(path: string): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export async function me(): Promise<User | null> {
  try {
    const response = await call("/api/v1/me", {}, false);
    return (await response.json()) as User;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}
