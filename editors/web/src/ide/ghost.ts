// AI ghost text in CodeMirror from `textDocument/inlineCompletion`: asked
// for after each edit (the server debounces), drawn as a widget at the
// cursor, kept while the user types what it says. Tab accepts, Esc
// dismisses, Alt+] asks for the next suggestion, Ctrl+→ accepts a word.
// `didShowCompletion`, `didPartiallyAcceptCompletion` and the item's accept
// command are sent back so the server counts them.

import { Prec, StateEffect, StateField, type EditorState, type Extension } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType, keymap, type DecorationSet, type ViewUpdate } from "@codemirror/view";
import { LSPPlugin } from "@codemirror/lsp-client";
import { nextWordLength, place, type Placement } from "./ghost-logic.js";

export interface InlineItem {
  insertText: string | { value: string };
  command?: { command: string; arguments?: unknown[] };
}

export interface GhostHost {
  /** Ask the server; null when not connected. */
  request(uri: string, params: unknown, signal: AbortSignal): Promise<{ items: InlineItem[] } | InlineItem[] | null>;
  notify(method: string, params: unknown): void;
  execute(command: { command: string; arguments?: unknown[] }): void;
  /** Measure: called when a ghost is drawn, with when its request was started. */
  shown?(requestedAt: number): void;
}

interface Ghost {
  anchor: number;
  items: InlineItem[];
  index: number;
  requestedAt: number;
  /** Characters accepted word by word so far. */
  accepted: number;
}

const setGhost = StateEffect.define<Ghost | null>();

const textOf = (item: InlineItem | undefined): string =>
  item === undefined ? "" : typeof item.insertText === "string" ? item.insertText : item.insertText.value;

function placementOf(state: EditorState, ghost: Ghost | null): Placement | null {
  if (!ghost) return null;
  const cursor = state.selection.main;
  if (!cursor.empty) return null;
  const typed = cursor.head >= ghost.anchor ? state.doc.sliceString(ghost.anchor, cursor.head) : null;
  return place({ anchor: ghost.anchor, text: textOf(ghost.items[ghost.index]) }, cursor.head, typed);
}

const ghostField = StateField.define<Ghost | null>({
  create: () => null,
  update(ghost, tr) {
    for (const effect of tr.effects) if (effect.is(setGhost)) return effect.value;
    if (!ghost) return null;
    if (tr.docChanged) {
      ghost = { ...ghost, anchor: tr.changes.mapPos(ghost.anchor, -1) };
    }
    return placementOf(tr.state, ghost) ? ghost : null;
  },
});

class GhostWidget extends WidgetType {
  constructor(readonly text: string) {
    super();
  }
  override eq(other: GhostWidget): boolean {
    return other.text === this.text;
  }
  toDOM(): HTMLElement {
    const span = document.createElement("span");
    span.className = "cm-ghost";
    span.setAttribute("aria-hidden", "true");
    span.textContent = this.text;
    return span;
  }
  override ignoreEvent(): boolean {
    return false;
  }
}

const ghostDecorations = EditorView.decorations.compute([ghostField, "selection", "doc"], (state): DecorationSet => {
  const placement = placementOf(state, state.field(ghostField));
  if (!placement) return Decoration.none;
  return Decoration.set([Decoration.widget({ widget: new GhostWidget(placement.text), side: 1 }).range(placement.pos)]);
});

/** The shown suggestion, for tests and the e2e test's checks. */
export function currentGhost(state: EditorState): string | null {
  return placementOf(state, state.field(ghostField, false) ?? null)?.text ?? null;
}

function accept(view: EditorView, host: GhostHost, wordOnly: boolean): boolean {
  const ghost = view.state.field(ghostField, false);
  const placement = placementOf(view.state, ghost ?? null);
  if (!ghost || !placement) return false;
  const item = ghost.items[ghost.index];
  const length = wordOnly ? nextWordLength(placement.text) : placement.text.length;
  const insert = placement.text.slice(0, length);
  view.dispatch({
    changes: { from: placement.pos, insert },
    selection: { anchor: placement.pos + insert.length },
    userEvent: "input.complete",
    scrollIntoView: true,
  });
  if (!item) return true;
  const total = placement.typed + insert.length;
  if (wordOnly && insert.length < placement.text.length) {
    host.notify("textDocument/didPartiallyAcceptCompletion", { item, acceptedLength: total });
  } else if (item.command) {
    host.execute(item.command);
  }
  return true;
}

function dismiss(view: EditorView): boolean {
  if (!view.state.field(ghostField, false)) return false;
  view.dispatch({ effects: setGhost.of(null) });
  return true;
}

/** The ghost-text extension for one editor. */
export function ghostText(host: GhostHost): Extension {
  const requester = ViewPlugin.fromClass(
    class {
      private timer: ReturnType<typeof setTimeout> | null = null;
      private abort: AbortController | null = null;
      private lastShown: InlineItem | null = null;

      constructor(readonly view: EditorView) {}

      update(update: ViewUpdate): void {
        const ghost = update.state.field(ghostField);
        const typing = update.transactions.some((tr) => tr.isUserEvent("input.type") || tr.isUserEvent("delete") || tr.isUserEvent("input.paste"));
        if (typing && !ghost) this.schedule(false);
        else if (update.selectionSet && !update.docChanged && !ghost) this.cancel();
        const item = ghost?.items[ghost.index] ?? null;
        if (item && item !== this.lastShown) {
          this.lastShown = item;
          host.notify("textDocument/didShowCompletion", { item });
          host.shown?.(ghost?.requestedAt ?? 0);
        }
      }

      busy(): boolean {
        return this.timer !== null || this.abort !== null;
      }

      cancel(): void {
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
        this.abort?.abort();
        this.abort = null;
      }

      schedule(invoked: boolean): void {
        this.cancel();
        const requestedAt = performance.now();
        // Coalesce the transactions of one keystroke; the server debounces the rest.
        this.timer = setTimeout(() => void this.ask(invoked, requestedAt), 0);
      }

      async ask(invoked: boolean, requestedAt: number): Promise<void> {
        this.timer = null;
        const plugin = LSPPlugin.get(this.view);
        const selection = this.view.state.selection.main;
        if (!plugin || !selection.empty || this.view.state.readOnly) return;
        const anchor = selection.head;
        const doc = this.view.state.doc;
        const abort = new AbortController();
        this.abort = abort;
        let answer: Awaited<ReturnType<GhostHost["request"]>>;
        try {
          answer = await host.request(
            plugin.uri,
            { textDocument: { uri: plugin.uri }, position: plugin.toPosition(anchor, doc), context: { triggerKind: invoked ? 1 : 2 } },
            abort.signal,
          );
        } catch {
          return; // Cancelled, timed out or failed: the status bar shows AI failures.
        } finally {
          if (this.abort === abort) this.abort = null;
        }
        // Stale: cancelled (Esc), the text changed, or the cursor moved meanwhile.
        if (abort.signal.aborted || this.view.state.doc !== doc || this.view.state.selection.main.head !== anchor) return;
        const items = (Array.isArray(answer) ? answer : (answer?.items ?? [])).filter((i) => textOf(i).length > 0);
        if (!items.length) return;
        this.view.dispatch({ effects: setGhost.of({ anchor, items, index: 0, requestedAt, accepted: 0 }) });
      }

      next(): boolean {
        const ghost = this.view.state.field(ghostField);
        if (ghost && ghost.items.length > 1) {
          this.view.dispatch({ effects: setGhost.of({ ...ghost, index: (ghost.index + 1) % ghost.items.length }) });
        } else {
          if (ghost) this.view.dispatch({ effects: setGhost.of(null) });
          this.schedule(true);
        }
        return true;
      }

      destroy(): void {
        this.cancel();
      }
    },
  );
  return [
    ghostField,
    ghostDecorations,
    requester,
    Prec.highest(
      keymap.of([
        { key: "Tab", run: (view) => accept(view, host, false) },
        {
          key: "Escape",
          run: (view) => {
            // Also drop a request still in flight, so a late answer does not bring it back.
            const pending = view.plugin(requester);
            const shown = dismiss(view);
            if (pending?.busy()) {
              pending.cancel();
              return true;
            }
            return shown;
          },
        },
        { key: "Ctrl-ArrowRight", run: (view) => accept(view, host, true) },
        { key: "Alt-]", run: (view) => view.plugin(requester)?.next() ?? false },
      ]),
    ),
  ];
}
