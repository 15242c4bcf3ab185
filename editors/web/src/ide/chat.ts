// The chat panel over `aicockpit/chat`: the answer streams in through
// `$/progress` deltas, is rendered as sanitised Markdown, names the files it
// drew on as links, and each code block offers "insert at cursor" and
// "apply to file" (a diff first). Editor code actions (explain, refactor,
// document, fix) arrive here with the selection.

import { dialog, h, toast } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { lineDiff } from "./diff.js";
import type { Range } from "./lsp.js";

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface ChatTarget {
  path: string;
  from: number;
  to: number;
}

export interface ChatOptions {
  readOnly: boolean;
  ask(messages: ChatMessage[], context: { uri?: string; range?: Range }, onDelta: (delta: string) => void): Promise<{ content: string; sources?: unknown[] }>;
  /** The active editor's selection, as a target for "apply". */
  selection(): (ChatTarget & { text: string; uri: string; range: Range }) | null;
  insert(text: string): void;
  /** Current text of a target, and a function replacing it. */
  resolve(target: ChatTarget): { before: string; apply(text: string): void } | null;
  openSource(source: string): void;
}

/** The source names of a chat result: strings, or objects with a path or uri. */
export function sourceNames(sources: unknown[] | undefined): string[] {
  return (sources ?? [])
    .map((s) => {
      if (typeof s === "string") return s;
      if (s && typeof s === "object") {
        const o = s as Record<string, unknown>;
        for (const key of ["path", "uri", "file", "name"]) if (typeof o[key] === "string") return o[key];
      }
      return "";
    })
    .filter((s) => s.length > 0);
}

/** The answer without its last line when that line lists the sources. */
export function withoutSourcesLine(content: string): string {
  return content.replace(/\n*Sources?:[^\n]*\n*$/, "\n");
}

export class ChatPanel {
  private history: ChatMessage[] = [];
  private log = h("div.chat-log", { "aria-live": "polite" });
  private input = h("textarea.chat-input", { rows: 3, placeholder: "Ask about this project (Enter sends, Shift+Enter a new line)", "aria-label": "chat message" }) as HTMLTextAreaElement;
  private sendButton = h("button.primary", { onclick: () => void this.send() }, "Send");
  readonly el = h("div.chat", {}, this.log, h("div.chat-compose", {}, this.input, this.sendButton));
  private target: ChatTarget | null = null;
  private running = false;

  constructor(private options: ChatOptions) {
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        void this.send();
      }
    });
  }

  focus(): void {
    this.input.focus();
  }

  /** A code action on the editor's selection. */
  async action(kind: "explain" | "refactor" | "document" | "fix"): Promise<void> {
    const selection = this.options.selection();
    if (!selection || !selection.text.trim()) return toast("select some code first", "error");
    this.target = kind === "explain" ? null : { path: selection.path, from: selection.from, to: selection.to };
    const asks = {
      explain: "Explain what this code does.",
      refactor: "Refactor this code for clarity; answer with the whole replacement in one code block.",
      document: "Add documentation comments to this code; answer with the whole replacement in one code block.",
      fix: "Find and fix the bugs in this code; answer with the whole replacement in one code block.",
    };
    await this.send(`${asks[kind]}\n\n\`\`\`\n${selection.text}\n\`\`\``, { uri: selection.uri, range: selection.range });
  }

  async send(text = this.input.value, context: { uri?: string; range?: Range } = {}): Promise<void> {
    if (!text.trim() || this.running) return;
    this.running = true;
    this.sendButton.setAttribute("disabled", "");
    if (text === this.input.value) this.input.value = "";
    this.history.push({ role: "user", content: text });
    this.log.append(h("div.chat-message.user", {}, h("div.chat-who", {}, "You"), h("div.chat-text", {}, text)));
    const body = h("div.chat-text.markdown", {}, h("span.muted", {}, "…"));
    const message = h("div.chat-message.assistant", { "aria-busy": "true" }, h("div.chat-who", {}, "AiCockpit"), body);
    this.log.append(message);
    let streamed = "";
    let pending = false;
    let finished = false;
    const draw = (content: string): void => {
      body.innerHTML = renderMarkdown(content);
      this.decorateCode(body);
      this.log.scrollTop = this.log.scrollHeight;
    };
    try {
      let deltas = 0;
      const result = await this.options.ask(this.history, context, (delta) => {
        streamed += delta;
        message.dataset.deltas = String(++deltas);
        if (!pending) {
          pending = true;
          requestAnimationFrame(() => {
            pending = false;
            if (!finished) draw(streamed);
          });
        }
      });
      finished = true;
      const content = result.content || streamed;
      this.history.push({ role: "assistant", content });
      const sources = sourceNames(result.sources);
      // The links below replace the answer's own closing "Sources: …" line.
      draw(sources.length ? withoutSourcesLine(content) : content);
      if (sources.length) {
        body.append(
          h(
            "div.chat-sources",
            {},
            "Sources: ",
            sources.map((s) => h("a.source-link", { href: "#", "data-source": s, onclick: (e: Event) => (e.preventDefault(), this.options.openSource(s)) }, s)),
          ),
        );
      }
    } catch (error) {
      body.replaceChildren(h("div.error", {}, `no answer: ${error instanceof Error ? error.message : String(error)}`));
      this.history.pop();
    } finally {
      message.removeAttribute("aria-busy");
      message.classList.add("done");
      this.running = false;
      this.sendButton.removeAttribute("disabled");
    }
  }

  private decorateCode(body: HTMLElement): void {
    for (const pre of Array.from(body.querySelectorAll("pre"))) {
      const code = pre.textContent ?? "";
      const actions = h("div.code-actions");
      if (!this.options.readOnly) {
        actions.append(
          h("button", { "data-code-action": "insert", onclick: () => this.options.insert(code.replace(/\n$/, "")) }, "Insert at cursor"),
          h("button", { "data-code-action": "apply", onclick: () => void this.apply(code.replace(/\n$/, "")) }, "Apply to file"),
        );
      }
      actions.append(h("button", { "data-code-action": "copy", onclick: () => void navigator.clipboard.writeText(code) }, "Copy"));
      pre.after(actions);
    }
  }

  /** Show the change as a diff, then apply it to the selection the action was on (or the whole file). */
  private async apply(code: string): Promise<void> {
    const selection = this.options.selection();
    const target = this.target ?? (selection ? { path: selection.path, from: 0, to: -1 } : null);
    if (!target) return toast("open the file to apply this to first", "error");
    const resolved = this.options.resolve(target);
    if (!resolved) return toast(`${target.path} is not open`, "error");
    const diff = lineDiff(resolved.before, code);
    const view = h(
      "pre.diff",
      {},
      diff.map((line) => h(`div.diff-${line.kind}`, {}, `${line.kind === "add" ? "+" : line.kind === "del" ? "-" : " "} ${line.text}`)),
    );
    const choice = await dialog(`Apply to ${target.path}`, view, [{ label: "Apply", value: "apply", primary: true }]);
    if (choice === "apply") {
      resolved.apply(code);
      this.target = null;
    }
  }
}
