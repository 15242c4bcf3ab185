// The search panel (Ctrl+Shift+F) over `aicockpit/search`: hits grouped
// by file, a click opens the file at the hit. And the outline of the
// active file from `textDocument/documentSymbol`.

import { h } from "../dom.js";
import type { Range } from "./lsp.js";

export interface SearchHit {
  uri: string;
  range: Range;
  score: number;
  snippet: string;
  symbol?: { name: string; kindName?: string } | null;
}

/** Group hits by file, keeping the best-first order of files and hits. */
export function groupByFile(hits: SearchHit[]): Map<string, SearchHit[]> {
  const groups = new Map<string, SearchHit[]>();
  for (const hit of hits) {
    const list = groups.get(hit.uri) ?? [];
    list.push(hit);
    groups.set(hit.uri, list);
  }
  return groups;
}

export interface SearchOptions {
  search(query: string): Promise<SearchHit[]>;
  pathOf(uri: string): string;
  open(path: string, at: { line: number; character: number }): void;
}

export class SearchPanel {
  readonly input = h("input.search-input", { type: "search", placeholder: "Search the project (Enter)", "aria-label": "search query" }) as HTMLInputElement;
  readonly results = h("div.search-results", { role: "list" });
  readonly el = h("div.search-panel", {}, this.input, this.results);
  private generation = 0;

  constructor(private options: SearchOptions) {
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void this.run(this.input.value);
    });
  }

  focus(): void {
    this.input.focus();
    this.input.select();
  }

  async run(query: string): Promise<void> {
    if (!query.trim()) return;
    const generation = ++this.generation;
    this.results.replaceChildren(h("div.muted.pad", {}, "Searching…"));
    let hits: SearchHit[];
    try {
      hits = await this.options.search(query);
    } catch (error) {
      if (generation === this.generation) this.results.replaceChildren(h("div.error.pad", {}, `search failed: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    if (generation !== this.generation) return;
    if (!hits.length) {
      this.results.replaceChildren(h("div.muted.pad", {}, `No results for “${query}”.`));
      return;
    }
    const groups = [...groupByFile(hits)].map(([uri, list]) => {
      const path = this.options.pathOf(uri);
      return h(
        "div.search-group",
        { role: "listitem" },
        h("div.search-file", { title: path }, path, h("span.count", {}, String(list.length))),
        list.map((hit) =>
          h(
            "button.search-hit",
            { "data-path": path, "data-line": hit.range.start.line, onclick: () => this.options.open(path, hit.range.start) },
            h("span.line", {}, String(hit.range.start.line + 1)),
            hit.symbol ? h("span.symbol", {}, hit.symbol.name) : null,
            h("code", {}, hit.snippet.split("\n").find((l) => l.trim()) ?? hit.snippet),
          ),
        ),
      );
    });
    this.results.replaceChildren(h("div.muted.pad", {}, `${hits.length} results in ${groups.length} files`), ...groups);
  }
}

export interface DocumentSymbol {
  name: string;
  kind: number;
  detail?: string;
  range: Range;
  selectionRange?: Range;
  location?: { range: Range };
  children?: DocumentSymbol[];
}

export function renderOutline(symbols: DocumentSymbol[], jump: (at: { line: number; character: number }) => void): HTMLElement {
  const walk = (list: DocumentSymbol[], depth: number): HTMLElement[] =>
    list.flatMap((s) => {
      const at = (s.selectionRange ?? s.location?.range ?? s.range).start;
      return [
        h("button.outline-item", { style: `padding-left:${8 + depth * 14}px`, title: s.detail ?? s.name, onclick: () => jump(at) }, h("span.kind", {}, kindName(s.kind)), s.name),
        ...walk(s.children ?? [], depth + 1),
      ];
    });
  return h("div.outline", {}, symbols.length ? walk(symbols, 0) : h("div.muted.pad", {}, "No symbols in this file."));
}

const KINDS: Record<number, string> = { 2: "mod", 5: "class", 6: "method", 8: "field", 10: "enum", 11: "iface", 12: "fn", 13: "var", 14: "const", 22: "member", 23: "struct", 26: "type" };
function kindName(kind: number): string {
  return KINDS[kind] ?? "sym";
}
