// The login page, and the same form as an overlay when a session expires
// mid-work (the page underneath, with its unsaved text, stays as it is).

import { call, json, type User } from "./api.js";
import { dialog, h, toast } from "./dom.js";

function form(onDone: (user: User) => void, note?: string): HTMLElement {
  const name = h("input", { name: "name", autocomplete: "username", required: true, "aria-label": "user name" }) as HTMLInputElement;
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "aria-label": "password" }) as HTMLInputElement;
  const error = h("div.error", { role: "alert" });
  const button = h("button.primary", { type: "submit" }, "Sign in");
  const el = h(
    "form.login",
    {},
    h("h1", {}, "AiCockpit"),
    note ? h("p.muted", {}, note) : null,
    h("label.field", {}, "User", name),
    h("label.field", {}, "Password", password),
    button,
    error,
    h("p.muted.small", {}, "First start? Open the one-time login link the server printed (or run `aicockpit admin login-link`)."),
  );
  el.addEventListener("submit", (e) => {
    e.preventDefault();
    button.setAttribute("disabled", "");
    error.textContent = "";
    json<User>("/api/v1/auth/login", "POST", { name: name.value, password: password.value })
      .then(onDone, (err: unknown) => {
        error.textContent = err instanceof Error ? err.message : String(err);
      })
      .finally(() => button.removeAttribute("disabled"));
  });
  setTimeout(() => name.focus(), 0);
  return el;
}

export function showLogin(root: HTMLElement, onDone: (user: User) => void): void {
  root.replaceChildren(h("div.login-page", {}, form(onDone)));
}

let pending: Promise<void> | null = null;

/** The session expired: sign in again over the current page. */
export function loginOverlay(): Promise<void> {
  pending ??= new Promise<void>((resolve) => {
    const overlay = h("div.modal-backdrop.login-overlay");
    overlay.append(
      h(
        "div.modal",
        {},
        form(() => {
          overlay.remove();
          pending = null;
          resolve();
        }, "Your session ended. Sign in again: your open files and unsaved changes are kept."),
      ),
    );
    document.body.append(overlay);
  });
  return pending;
}

let confirming: Promise<boolean> | null = null;

/** A recent password is needed (403 `reauth_required`): ask for it and
 * confirm it in this session. True once confirmed; false if cancelled. */
export function confirmPasswordDialog(): Promise<boolean> {
  confirming ??= (async () => {
    try {
      for (;;) {
        const password = h("input", { name: "confirm-password", type: "password", autocomplete: "current-password", "aria-label": "your password" }) as HTMLInputElement;
        setTimeout(() => password.focus(), 0);
        password.addEventListener("keydown", (e) => {
          if (e.key === "Enter") (password.closest(".modal")?.querySelector("button.primary") as HTMLButtonElement | null)?.click();
        });
        const body = h("div", {}, h("p.muted", {}, "This needs your password again (it was last entered a while ago in this session)."), h("label.field", {}, "Password", password));
        if ((await dialog("Confirm your password", body, [{ label: "Confirm", value: "confirm", primary: true }])) !== "confirm") return false;
        try {
          await call("/api/v1/auth/confirm", { method: "POST", body: JSON.stringify({ password: password.value }), headers: { "content-type": "application/json" } }, false);
          return true;
        } catch (error) {
          toast(error instanceof Error ? error.message : String(error), "error");
        }
      }
    } finally {
      confirming = null;
    }
  })();
  return confirming;
}
