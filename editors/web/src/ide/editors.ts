// Tabs and their editors: one CodeMirror view per open file, kept while
// its tab is open (so switching tabs keeps undo history and the language
// server's document). Ctrl+S saves with the file's version in `If-Match`;
// a 409 offers reload or overwrite and never drops either side silently.

import { EditorState, type Extension, type Text } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting } from "@codemirror/language";
import { classHighlighter } from "@lezer/highlight";
import {
  findReferencesKeymap,
  formatKeymap,
  hoverTooltips,
  jumpToDefinitionKeymap,
  renameKeymap,
  serverCompletion,
  signatureHelp,
} from "@codemirror/lsp-client";
import { ApiError, call, fileUrl, json, type FileView } from "../api.js";
import { dialog, h, toast } from "../dom.js";
import { languageOf } from "./languages.js";
import { ghostText, type GhostHost } from "./ghost.js";
import type { LspConnection } from "./lsp.js";

export interface Tab {
  path: string;
  view: EditorView;
  /** The version on disk the editor's text is based on; null for a new file. */
  version: string | null;
  savedDoc: Text;
  tab: HTMLElement;
  binary: boolean;
}

export interface EditorsOptions {
  workspace: string;
  readOnly: boolean;
  lsp: LspConnection;
  ghost: GhostHost;
  /** Extra key bindings (the IDE's own shortcuts). */
  keys: Extension;
  onActive(tab: Tab | null): void;
}

export class Editors {
  readonly tabs: Tab[] = [];
  active: Tab | null = null;
  readonly tabBar = h("div.tabs", { role: "tablist" });
  readonly area = h("div.editor-area");

  constructor(private options: EditorsOptions) {
    this.area.append(h("div.empty-editor", {}, "Open a file from the tree, or press Ctrl+P."));
  }

  find(path: string): Tab | undefined {
    return this.tabs.find((t) => t.path === path);
  }

  dirty(tab: Tab): boolean {
    return !tab.view.state.doc.eq(tab.savedDoc);
  }

  anyDirty(): boolean {
    return this.tabs.some((t) => this.dirty(t));
  }

  /** Open (or show) a file; optionally put the cursor at a 0-based line and column. */
  async open(path: string, at?: { line: number; character: number }): Promise<Tab> {
    let tab = this.find(path);
    if (!tab) {
      await this.options.lsp.ready;
      const file = await json<FileView>(fileUrl(this.options.workspace, path));
      if (file.kind !== "file") throw new Error(`${path} is a folder`);
      tab = this.create(path, file);
    }
    this.activate(tab);
    if (at) {
      const doc = tab.view.state.doc;
      const line = doc.line(Math.min(Math.max(at.line + 1, 1), doc.lines));
      const pos = Math.min(line.from + at.character, line.to);
      tab.view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
    }
    tab.view.focus();
    return tab;
  }

  private create(path: string, file: FileView): Tab {
    const binary = file.encoding === "base64";
    const text = binary ? `(binary file, ${file.size ?? 0} bytes: not shown)` : (file.content ?? "");
    const language = languageOf(path);
    const readOnly = this.options.readOnly || binary;
    const uri = this.options.lsp.uriOf(path);
    const extensions: Extension[] = [
      this.options.keys,
      keymap.of([{ key: "Mod-s", preventDefault: true, run: () => (void this.save(), true) }]),
      basicSetup,
      keymap.of([indentWithTab]),
      syntaxHighlighting(classHighlighter),
      EditorState.readOnly.of(readOnly),
      EditorView.editable.of(!readOnly),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) this.markDirty(tab);
      }),
      EditorView.contentAttributes.of({ "aria-label": `${path}${readOnly ? " (read-only)" : ""}`, "data-path": path }),
    ];
    if (language.support) extensions.push(language.support);
    if (!binary) {
      extensions.push(
        this.options.lsp.client.plugin(uri, language.id),
        serverCompletion(),
        hoverTooltips(),
        signatureHelp(),
        keymap.of([...jumpToDefinitionKeymap, ...findReferencesKeymap, ...renameKeymap, ...formatKeymap]),
      );
      if (!readOnly) extensions.push(ghostText(this.options.ghost));
    }
    const view = new EditorView({ state: EditorState.create({ doc: text, extensions }) });
    const name = path.split("/").pop() ?? path;
    const tabEl = h(
      "div.tab",
      { role: "tab", title: path, "data-path": path },
      h("span.tab-name", {}, name),
      h("span.dirty-mark", { title: "unsaved changes" }, "●"),
      h(
        "button.tab-close",
        {
          title: "Close (Ctrl+W)",
          "aria-label": `close ${name}`,
          onclick: (e: Event) => {
            e.stopPropagation();
            void this.close(tab);
          },
        },
        "×",
      ),
    );
    const tab: Tab = { path, view, version: file.version ?? null, savedDoc: view.state.doc, tab: tabEl, binary };
    tabEl.addEventListener("click", () => this.activate(tab));
    tabEl.addEventListener("auxclick", (e) => {
      if (e.button === 1) void this.close(tab);
    });
    this.tabs.push(tab);
    this.tabBar.append(tabEl);
    return tab;
  }

  private markDirty(tab: Tab): void {
    tab.tab.classList.toggle("dirty", this.dirty(tab));
  }

  activate(tab: Tab): void {
    this.active = tab;
    for (const t of this.tabs) {
      t.tab.classList.toggle("active", t === tab);
      t.tab.setAttribute("aria-selected", String(t === tab));
    }
    this.area.replaceChildren(tab.view.dom);
    this.options.onActive(tab);
  }

  async close(tab: Tab | null = this.active): Promise<void> {
    if (!tab) return;
    if (this.dirty(tab)) {
      const choice = await dialog(`Close ${tab.path}?`, "It has unsaved changes.", [
        { label: "Save", value: "save", primary: true },
        { label: "Discard", value: "discard", danger: true },
      ]);
      if (choice === null) return;
      if (choice === "save" && !(await this.save(tab))) return;
    }
    const index = this.tabs.indexOf(tab);
    this.tabs.splice(index, 1);
    tab.tab.remove();
    tab.view.destroy();
    if (this.active === tab) {
      const next = this.tabs[Math.min(index, this.tabs.length - 1)];
      if (next) this.activate(next);
      else {
        this.active = null;
        this.area.replaceChildren(h("div.empty-editor", {}, "Open a file from the tree, or press Ctrl+P."));
        this.options.onActive(null);
      }
    }
  }

  /** Save a tab; true when its text is on disk afterwards. */
  async save(tab: Tab | null = this.active, overwrite = false): Promise<boolean> {
    if (!tab || tab.binary) return false;
    if (this.options.readOnly) {
      toast("read-only: you are a viewer of this workspace", "error");
      return false;
    }
    const doc = tab.view.state.doc;
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (tab.version) headers["if-match"] = tab.version;
    else headers["if-none-match"] = "*";
    try {
      const response = await call(fileUrl(this.options.workspace, tab.path), { method: "PUT", headers, body: doc.toString() });
      const written = (await response.json()) as { version: string };
      tab.version = written.version;
      tab.savedDoc = doc;
      this.markDirty(tab);
      this.options.lsp.notify("textDocument/didSave", { textDocument: { uri: this.options.lsp.uriOf(tab.path) }, text: doc.toString() });
      toast(`saved ${tab.path}`);
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 409 && !overwrite) return this.conflict(tab);
      toast(`cannot save ${tab.path}: ${error instanceof Error ? error.message : String(error)}`, "error");
      return false;
    }
  }

  /** The file changed on disk since it was opened: the user decides. */
  private async conflict(tab: Tab): Promise<boolean> {
    const choice = await dialog(
      `${tab.path} changed on disk`,
      "Someone (or something in the container) changed this file since you opened it. Reload it (your unsaved changes are lost), or overwrite it with your text (theirs is lost)?",
      [
        { label: "Overwrite", value: "overwrite", danger: true },
        { label: "Reload", value: "reload", primary: true },
      ],
    );
    if (choice === "reload") {
      await this.reload(tab);
      return false;
    }
    if (choice === "overwrite") {
      try {
        const current = await json<FileView>(fileUrl(this.options.workspace, tab.path));
        tab.version = current.version ?? null;
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        tab.version = null;
      }
      return this.save(tab, true);
    }
    return false;
  }

  /** Replace a tab's text with the file on disk. */
  async reload(tab: Tab): Promise<void> {
    const file = await json<FileView>(fileUrl(this.options.workspace, tab.path));
    const text = file.content ?? "";
    tab.view.dispatch({ changes: { from: 0, to: tab.view.state.doc.length, insert: text } });
    tab.version = file.version ?? null;
    tab.savedDoc = tab.view.state.doc;
    this.markDirty(tab);
  }

  /** Files changed in the container: reload clean tabs whose version moved. */
  async refreshClean(): Promise<void> {
    for (const tab of [...this.tabs]) {
      if (tab.binary || this.dirty(tab)) continue;
      try {
        const file = await json<FileView>(fileUrl(this.options.workspace, tab.path));
        if (file.version && file.version !== tab.version && !this.dirty(tab)) await this.reload(tab);
      } catch {
        // Deleted or unreachable: leave the tab as it is.
      }
    }
  }

  /** A file or folder was renamed in the tree: clean tabs follow it; unsaved ones stay and say so. */
  renamed(from: string, to: string): void {
    for (const tab of [...this.tabs]) {
      if (tab.path !== from && !tab.path.startsWith(from + "/")) continue;
      const moved = to + tab.path.slice(from.length);
      if (this.dirty(tab)) {
        toast(`${tab.path} was renamed to ${moved}: its tab keeps your unsaved text under the old name`, "error");
        continue;
      }
      const wasActive = this.active === tab;
      void this.close(tab).then(() => (wasActive ? this.open(moved) : undefined));
    }
  }

  /** A file or folder was deleted in the tree: clean tabs under it close; unsaved ones stay (saving creates the file again). */
  removed(path: string): void {
    for (const tab of [...this.tabs]) {
      if (tab.path !== path && !tab.path.startsWith(path + "/")) continue;
      if (this.dirty(tab)) {
        toast(`${tab.path} was deleted: its tab keeps your unsaved text`, "error");
        tab.version = null;
      } else void this.close(tab);
    }
  }
}
