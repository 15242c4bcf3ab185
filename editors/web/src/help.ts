// The keyboard shortcuts overlay (F1).

import { h } from "./dom.js";

export const SHORTCUTS: [string, string][] = [
  ["Ctrl+P", "Quick open a file; type # for a symbol"],
  ["Ctrl+Shift+P", "Go to a workspace symbol"],
  ["Ctrl+Shift+F", "Search the project"],
  ["Ctrl+Shift+E", "Show the file tree"],
  ["Ctrl+Shift+O", "Outline of the current file"],
  ["Ctrl+S", "Save (a conflict asks: reload or overwrite)"],
  ["Ctrl+W / Alt+W", "Close the tab (browsers keep Ctrl+W for themselves)"],
  ["Ctrl+B", "Toggle the sidebar"],
  ["Ctrl+`", "Toggle the terminal"],
  ["Ctrl+Shift+`", "New terminal"],
  ["Ctrl+Alt+I", "Open the chat"],
  ["F12", "Go to definition (opens other files in tabs)"],
  ["Shift+F12", "Find references"],
  ["F2", "Rename symbol"],
  ["Ctrl+Space", "Completion"],
  ["Tab", "Accept the AI ghost text"],
  ["Ctrl+→", "Accept the next word of the ghost text"],
  ["Alt+]", "Next AI suggestion"],
  ["Esc", "Dismiss the ghost text"],
  ["Ctrl+F / Ctrl+H", "Find / replace in the file"],
  ["Ctrl+/", "Toggle comment"],
  ["Alt+↑ / Alt+↓", "Move the line"],
  ["Ctrl+D", "Select the next occurrence"],
  ["F1", "This help"],
];

export function showHelp(): void {
  document.querySelector(".help-overlay")?.remove();
  const close = (): void => overlay.remove();
  const overlay = h(
    "div.modal-backdrop.help-overlay",
    { onclick: (e: Event) => e.target === overlay && close() },
    h(
      "div.modal",
      { role: "dialog", "aria-label": "keyboard shortcuts" },
      h("h2", {}, "Keyboard shortcuts"),
      h("table.shortcuts", {}, SHORTCUTS.map(([key, what]) => h("tr", {}, h("td", {}, h("kbd", {}, key)), h("td", {}, what)))),
      h("div.modal-buttons", {}, h("button.primary", { onclick: close }, "Close")),
    ),
  );
  overlay.addEventListener("keydown", (e) => {
    if (e.key === "Escape") close();
  });
  document.body.append(overlay);
  overlay.querySelector("button")?.focus();
}
