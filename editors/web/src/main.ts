// The web IDE's entry: who is signed in, then the page the URL's hash
// names: `#/` (workspaces), `#/services`, `#/account` (password and API
// tokens; `#/tokens` is the same page), `#/users`, `#/audit`
// or `#/w/<workspace>` (the IDE).

import "@xterm/xterm/css/xterm.css";
import "./app.css";
import { me, onReauthRequired, onUnauthorized, type User } from "./api.js";
import { h, toast } from "./dom.js";
import { showDashboard } from "./dashboard.js";
import { showHelp } from "./help.js";
import { showIde } from "./ide/ide.js";
import { confirmPasswordDialog, loginOverlay, showLogin } from "./login.js";

const root = document.getElementById("app") ?? document.body;
let user: User | null = null;
let teardown: (() => void) | null = null;
let ideOpen = false;

async function route(): Promise<void> {
  if (!user) return;
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  teardown?.();
  teardown = null;
  ideOpen = false;
  if (hash.startsWith("w/")) {
    const name = hash.slice(2);
    root.replaceChildren(h("div.loading", {}, `Opening ${name}…`));
    try {
      ideOpen = true;
      teardown = await showIde(root, name, user);
    } catch (error) {
      root.replaceChildren(h("div.loading.error", {}, `cannot open ${name}: ${error instanceof Error ? error.message : String(error)}`, h("p", {}, h("a", { href: "#/" }, "Back to the workspaces"))));
    }
  } else {
    teardown = showDashboard(root, user, hash);
  }
}

async function boot(): Promise<void> {
  onUnauthorized(loginOverlay);
  onReauthRequired(confirmPasswordDialog);
  try {
    user = await me();
  } catch (error) {
    root.replaceChildren(h("div.loading.error", {}, `cannot reach the server: ${error instanceof Error ? error.message : String(error)}`));
    return;
  }
  if (!user) {
    showLogin(root, (signedIn) => {
      user = signedIn;
      void route();
    });
    return;
  }
  await route();
}

window.addEventListener("hashchange", () => {
  if (ideOpen && document.querySelector(".tab.dirty") && !confirm("Leave the IDE? Unsaved changes are lost.")) return;
  void route();
});
document.addEventListener("keydown", (e) => {
  if (e.key === "F1" && !ideOpen) {
    e.preventDefault();
    showHelp();
  }
});
window.addEventListener("unhandledrejection", (e) => toast(`unexpected error: ${String(e.reason)}`, "error"));
void boot();
