//! The chat view's script, run inside the webview. It builds every node with
//! textContent (never innerHTML), so nothing in an answer becomes markup.

import { splitAnswer, withoutSourcesLine } from "../markdown";

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

type ToView =
  | { type: "start" }
  | { type: "question"; text: string }
  | { type: "delta"; delta: string }
  | { type: "done"; turn: number; content: string; sources: string[] }
  | { type: "error"; message: string };

const vscode = acquireVsCodeApi();

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function byId<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) {
    throw new Error(`missing #${id}`);
  }
  return node as T;
}

const log = byId<HTMLDivElement>("log");
const form = byId<HTMLFormElement>("form");
const input = byId<HTMLTextAreaElement>("input");
const send = byId<HTMLButtonElement>("send");
const stop = byId<HTMLButtonElement>("stop");
const clear = byId<HTMLButtonElement>("clear");
let current: HTMLDivElement | undefined;

function busy(on: boolean): void {
  send.disabled = on;
  stop.disabled = !on;
}

function addQuestion(text: string): void {
  log.appendChild(element("div", "message user", text));
}

function scroll(): void {
  log.scrollTop = log.scrollHeight;
}

function renderAnswer(target: HTMLDivElement, turn: number, content: string, sources: string[]): void {
  target.textContent = "";
  target.classList.remove("streaming");
  const shown = sources.length > 0 ? withoutSourcesLine(content) : content;
  for (const part of splitAnswer(shown)) {
    if (part.kind === "text") {
      target.appendChild(element("div", "text", part.text));
      continue;
    }
    const block = element("div", "code-block");
    const bar = element("div", "code-bar");
    bar.appendChild(element("span", "language", part.language));
    const insert = element("button", "insert", "Insert");
    insert.type = "button";
    insert.title = "Insert at the cursor of the active editor";
    insert.addEventListener("click", () => vscode.postMessage({ type: "insert", turn, block: part.index }));
    const apply = element("button", "apply", "Apply…");
    apply.type = "button";
    apply.title = "Replace the selection, after showing the diff";
    apply.addEventListener("click", () => vscode.postMessage({ type: "apply", turn, block: part.index }));
    bar.append(insert, apply);
    block.append(bar, element("pre", undefined, part.code));
    target.appendChild(block);
  }
  if (sources.length > 0) {
    const list = element("div", "sources");
    list.appendChild(element("span", undefined, "Sources: "));
    sources.forEach((source, i) => {
      const link = element("a", "source", source);
      link.href = "#";
      link.addEventListener("click", (event) => {
        event.preventDefault();
        vscode.postMessage({ type: "open", source });
      });
      if (i > 0) {
        list.appendChild(document.createTextNode(", "));
      }
      list.appendChild(link);
    });
    target.appendChild(list);
  }
}

window.addEventListener("message", (event: MessageEvent<ToView>) => {
  const message = event.data;
  switch (message.type) {
    case "start":
      current = element("div", "message assistant streaming");
      log.appendChild(current);
      busy(true);
      break;
    case "question":
      addQuestion(message.text);
      break;
    case "delta":
      if (!current) {
        current = element("div", "message assistant streaming");
        log.appendChild(current);
      }
      current.textContent = (current.textContent ?? "") + message.delta;
      // How many pieces arrived: the end-to-end test checks the answer streamed.
      current.dataset["deltas"] = String(Number(current.dataset["deltas"] ?? "0") + 1);
      break;
    case "done": {
      const target = current ?? element("div", "message assistant");
      if (!current) {
        log.appendChild(target);
      }
      renderAnswer(target, message.turn, message.content, message.sources);
      target.dataset["done"] = "true";
      current = undefined;
      busy(false);
      break;
    }
    case "error":
      (current ?? log).appendChild(element("div", "error", message.message));
      current?.classList.remove("streaming");
      current = undefined;
      busy(false);
      break;
  }
  scroll();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (text.trim() === "" || send.disabled) {
    return;
  }
  addQuestion(text);
  input.value = "";
  vscode.postMessage({ type: "ask", text });
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stop.addEventListener("click", () => vscode.postMessage({ type: "stop" }));
clear.addEventListener("click", () => {
  log.textContent = "";
  vscode.postMessage({ type: "clear" });
});
