// Quick open (Ctrl+P): file names by fuzzy match, or workspace symbols
// (`workspace/symbol`) when the query starts with `#`.

import { h } from "../dom.js";

/** A fuzzy score of `query` in `candidate` (higher is better), or null when it does not match. */
export function fuzzyScore(query: string, candidate: string): number | null {
  const q = query.toLowerCase();
  const c = candidate.toLowerCase();
  if (!q) return 0;
  let score = 0;
  let at = 0;
  let run = 0;
  for (const ch of q) {
    const found = c.indexOf(ch, at);
    if (found < 0) return null;
    run = found === at ? run + 1 : 0;
    score += 1 + run * 2 + (found === 0 || "/._-".includes(c[found - 1] ?? "") ? 3 : 0);
    at = found + 1;
  }
  const base = c.slice(c.lastIndexOf("/") + 1);
  if (base.includes(q)) score += 10;
  return score - c.length * 0.01;
}

export interface QuickItem {
  label: string;
  detail: string;
  run(): void;
}

export interface QuickOpenSource {
  files(): Promise<string[]>;
  symbols(query: string): Promise<QuickItem[]>;
  open(path: string): void;
}

export function quickOpen(source: QuickOpenSource, initial = ""): void {
  document.querySelector(".quick-open")?.remove();
  const input = h("input", { type: "text", placeholder: "File name, or #symbol", "aria-label": "quick open", value: initial }) as HTMLInputElement;
  const list = h("div.quick-list", { role: "listbox" });
  const box = h("div.quick-open", { role: "dialog" }, input, list);
  let items: QuickItem[] = [];
  let selected = 0;
  let files: string[] | null = null;
  let generation = 0;
  const close = (): void => box.remove();
  const draw = (): void => {
    list.replaceChildren(
      ...items.slice(0, 50).map((item, i) =>
        h(`div.quick-item${i === selected ? ".selected" : ""}`, { role: "option", onclick: () => (close(), item.run()) }, h("span", {}, item.label), h("span.muted", {}, item.detail)),
      ),
    );
  };
  const update = async (): Promise<void> => {
    const query = input.value;
    const mine = ++generation;
    if (query.startsWith("#")) {
      const found = await source.symbols(query.slice(1)).catch(() => []);
      if (mine !== generation) return;
      items = found;
    } else {
      files ??= await source.files();
      if (mine !== generation) return;
      items = files
        .map((path) => ({ path, score: fuzzyScore(query, path) }))
        .filter((x): x is { path: string; score: number } => x.score !== null)
        .sort((a, b) => b.score - a.score)
        .slice(0, 50)
        .map(({ path }) => ({ label: path.split("/").pop() ?? path, detail: path, run: () => source.open(path) }));
    }
    selected = 0;
    draw();
  };
  input.addEventListener("input", () => void update());
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") close();
    else if (e.key === "ArrowDown") selected = Math.min(selected + 1, items.length - 1);
    else if (e.key === "ArrowUp") selected = Math.max(selected - 1, 0);
    else if (e.key === "Enter") {
      const item = items[selected];
      close();
      item?.run();
      return;
    } else return;
    e.preventDefault();
    draw();
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  document.body.append(box);
  input.focus();
  void update();
}
