// The file tree: folders load when opened and are re-read every few
// seconds while shown (so files made in the terminal appear), with new
// file, new folder, rename and delete from the toolbar or the context
// menu (no dragging needed). Viewers get no editing buttons.

import { call, fileUrl, json, ws, type FileEntry, type FileView } from "../api.js";
import { busy, dialog, h, prompt, toast } from "../dom.js";

export interface TreeOptions {
  workspace: string;
  readOnly: boolean;
  open(path: string): void;
  renamed(from: string, to: string): void;
  removed(path: string): void;
}

const join = (folder: string, name: string): string => (folder ? `${folder}/${name}` : name);

export class FileTree {
  readonly el = h("div.tree", { role: "tree", "aria-label": "files" });
  private expanded = new Set<string>([""]);
  private listings = new Map<string, FileEntry[]>();
  /** Folders the server listed in part (over its limit). */
  private truncated = new Set<string>();
  selected: { path: string; kind: string } | null = null;

  constructor(private options: TreeOptions) {}

  toolbar(): HTMLElement {
    if (this.options.readOnly) return h("div.pane-toolbar", {}, h("span.muted", {}, "read-only"));
    return h(
      "div.pane-toolbar",
      {},
      h("button.icon", { title: "New file", "aria-label": "new file", onclick: () => void this.newEntry("file") }, "+ File"),
      h("button.icon", { title: "New folder", "aria-label": "new folder", onclick: () => void this.newEntry("dir") }, "+ Folder"),
      h("button.icon", { title: "Rename (F2 in the tree)", "aria-label": "rename", onclick: () => void this.rename() }, "Rename"),
      h("button.icon", { title: "Delete", "aria-label": "delete", onclick: () => void this.remove() }, "Delete"),
      h("button.icon", { title: "Refresh", "aria-label": "refresh", onclick: () => void this.refresh() }, "Refresh"),
    );
  }

  /** Re-read every open folder and redraw if anything changed. */
  async refresh(): Promise<void> {
    let changed = false;
    for (const folder of [...this.expanded]) {
      try {
        const view = await json<FileView>(fileUrl(this.options.workspace, folder));
        const entries = (view.entries ?? []).slice().sort((a, b) => (a.kind === "dir" ? 0 : 1) - (b.kind === "dir" ? 0 : 1) || a.name.localeCompare(b.name));
        const before = JSON.stringify(this.listings.get(folder));
        if (before !== JSON.stringify(entries)) {
          this.listings.set(folder, entries);
          changed = true;
        }
        if (this.truncated.has(folder) !== Boolean(view.truncated)) {
          if (view.truncated) this.truncated.add(folder);
          else this.truncated.delete(folder);
          changed = true;
        }
      } catch {
        if (folder !== "") this.expanded.delete(folder);
        changed = this.listings.delete(folder) || changed;
      }
    }
    if (changed) this.render();
  }

  private render(): void {
    const build = (folder: string, depth: number): HTMLElement[] => {
      const rows: HTMLElement[] = [];
      for (const entry of this.listings.get(folder) ?? []) {
        const path = join(folder, entry.name);
        const isDir = entry.kind === "dir";
        const open = this.expanded.has(path);
        const row = h(
          "div.tree-row",
          {
            role: "treeitem",
            tabindex: "0",
            "data-path": path,
            "data-kind": entry.kind,
            "aria-expanded": isDir ? String(open) : undefined,
            style: `padding-left:${8 + depth * 14}px`,
          },
          h("span.twisty", {}, isDir ? (open ? "▾" : "▸") : ""),
          h("span.name", {}, entry.name),
        );
        if (this.selected?.path === path) row.classList.add("selected");
        const activate = (): void => {
          this.selected = { path, kind: entry.kind };
          if (isDir) {
            if (open) this.expanded.delete(path);
            else this.expanded.add(path);
            void this.refresh().then(() => this.render());
          } else {
            this.render();
            this.options.open(path);
          }
        };
        row.addEventListener("click", activate);
        row.addEventListener("keydown", (e) => {
          if (e.key === "Enter") activate();
          if (e.key === "F2") void this.rename();
          if (e.key === "Delete") void this.remove();
        });
        row.addEventListener("contextmenu", (e) => {
          e.preventDefault();
          this.selected = { path, kind: entry.kind };
          this.render();
          this.menu(e.clientX, e.clientY);
        });
        rows.push(row);
        if (isDir && open) rows.push(...build(path, depth + 1));
      }
      if (this.truncated.has(folder)) {
        rows.push(h("div.tree-row.muted", { style: `padding-left:${8 + depth * 14}px` }, "… more entries than the server lists; use search or the terminal"));
      }
      return rows;
    };
    this.el.replaceChildren(...build("", 0));
  }

  private menu(x: number, y: number): void {
    document.querySelector(".context-menu")?.remove();
    if (this.options.readOnly) return;
    const item = (label: string, action: () => void): HTMLElement =>
      h("button", { onclick: () => (menu.remove(), action()) }, label);
    const menu = h(
      "div.context-menu",
      { style: `left:${x}px;top:${y}px`, role: "menu" },
      item("New file…", () => void this.newEntry("file")),
      item("New folder…", () => void this.newEntry("dir")),
      item("Rename…", () => void this.rename()),
      item("Delete", () => void this.remove()),
    );
    document.body.append(menu);
    setTimeout(() => document.addEventListener("click", () => menu.remove(), { once: true }), 0);
  }

  /** The folder new entries go in: the selected folder, or the selected file's. */
  private targetFolder(): string {
    if (!this.selected) return "";
    if (this.selected.kind === "dir") return this.selected.path;
    return this.selected.path.includes("/") ? this.selected.path.slice(0, this.selected.path.lastIndexOf("/")) : "";
  }

  async newEntry(kind: "file" | "dir"): Promise<void> {
    const folder = this.targetFolder();
    const name = await prompt(kind === "file" ? "New file" : "New folder", `Name (in /${folder})`);
    if (!name) return;
    const path = join(folder, name.replace(/^\/+/, ""));
    const ok = await busy(null, async () => {
      if (kind === "dir") {
        await json(`${ws(this.options.workspace)}/files/folder`, "POST", { path });
      } else {
        await call(fileUrl(this.options.workspace, path), { method: "PUT", headers: { "if-none-match": "*" }, body: "" });
      }
    });
    if (!ok) return;
    // Show it: every folder above the new entry opens.
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) this.expanded.add(parts.slice(0, i).join("/"));
    this.selected = { path, kind };
    await this.refresh();
    this.render();
    if (kind === "file") this.options.open(path);
  }

  async rename(): Promise<void> {
    const from = this.selected?.path;
    if (!from) return toast("select a file or folder first", "error");
    const to = await prompt(`Rename ${from}`, "New path", from);
    if (!to || to === from) return;
    if (await busy(null, () => json(`${ws(this.options.workspace)}/files/rename`, "POST", { from, to }), `renamed to ${to}`)) {
      this.options.renamed(from, to);
      this.selected = { path: to, kind: this.selected?.kind ?? "file" };
      await this.refresh();
    }
  }

  async remove(): Promise<void> {
    const target = this.selected;
    if (!target) return toast("select a file or folder first", "error");
    const choice = await dialog(`Delete ${target.path}?`, target.kind === "dir" ? "The folder and everything in it are deleted." : "The file is deleted.", [
      { label: "Delete", value: "delete", danger: true },
    ]);
    if (choice !== "delete") return;
    if (await busy(null, () => call(fileUrl(this.options.workspace, target.path), { method: "DELETE" }), `deleted ${target.path}`)) {
      this.options.removed(target.path);
      this.selected = null;
      await this.refresh();
    }
  }

  /** Every file path under the root (bounded), for quick open. */
  async allFiles(limit = 5000): Promise<string[]> {
    const skip = new Set([".git", "node_modules", "target", ".venv", "__pycache__", "dist", "build"]);
    const out: string[] = [];
    const queue = [""];
    while (queue.length && out.length < limit) {
      const folder = queue.shift() ?? "";
      let view: FileView;
      try {
        view = await json<FileView>(fileUrl(this.options.workspace, folder));
      } catch {
        continue;
      }
      for (const entry of view.entries ?? []) {
        const path = join(folder, entry.name);
        if (entry.kind === "dir") {
          if (!skip.has(entry.name)) queue.push(path);
        } else out.push(path);
      }
    }
    return out;
  }
}
