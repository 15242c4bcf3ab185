import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { ghostLines, nextWordLength, place, shiftAnchor } from "../src/ide/ghost-logic.js";
import { lineDiff } from "../src/ide/diff.js";
import { fuzzyScore } from "../src/ide/quickopen.js";
import { groupByFile, type SearchHit } from "../src/ide/search.js";
import { sourceNames, withoutSourcesLine } from "../src/ide/chat.js";

describe("ghost text placement", () => {
  const s = { anchor: 10, text: "foo(bar)" };
  it("shows the whole suggestion at the anchor", () => {
    assert.deepEqual(place(s, 10, ""), { pos: 10, text: "foo(bar)", typed: 0 });
  });
  it("keeps the rest while the user types what it says", () => {
    assert.deepEqual(place(s, 13, "foo"), { pos: 13, text: "(bar)", typed: 3 });
  });
  it("drops it when the typing disagrees, the cursor moved back, or all is typed", () => {
    assert.equal(place(s, 13, "fox"), null);
    assert.equal(place(s, 9, null), null);
    assert.equal(place(s, 18, "foo(bar)"), null);
    assert.equal(place(s, 12, "foo"), null, "typed text must span anchor..cursor");
    assert.equal(place({ anchor: 0, text: "" }, 0, ""), null);
  });
  it("maps the anchor through edits before it", () => {
    assert.equal(shiftAnchor(10, 12, 1, 0), 10);
    assert.equal(shiftAnchor(10, 2, 0, 3), 13);
    assert.equal(shiftAnchor(10, 2, 3, 0), 7);
    assert.equal(shiftAnchor(10, 8, 5, 0), null, "an edit across the anchor drops it");
  });
  it("accepts word by word", () => {
    assert.equal(nextWordLength("foo(bar)"), 3);
    assert.equal(nextWordLength("  bar baz"), 5);
    assert.equal(nextWordLength("(bar)"), 1);
    assert.equal(nextWordLength(""), 0);
  });
  it("splits lines for drawing", () => {
    assert.deepEqual(ghostLines("a\n  b\nc"), { first: "a", rest: ["  b", "c"] });
  });
});

describe("helpers", () => {
  it("diffs lines", () => {
    const d = lineDiff("a\nb\nc\nd", "a\nB\nc\nd\ne");
    assert.deepEqual(
      d.map((l) => `${l.kind}:${l.text}`),
      ["same:a", "del:b", "add:B", "same:c", "same:d", "add:e"],
    );
    assert.deepEqual(lineDiff("x", "x"), [{ kind: "same", text: "x" }]);
  });
  it("ranks file names", () => {
    const files = ["src/main.rs", "src/lib/mainframe.rs", "docs/m.md"];
    const ranked = files.map((f) => [f, fuzzyScore("main", f)] as const).filter(([, s]) => s !== null).sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0));
    assert.equal(ranked[0]?.[0], "src/main.rs");
    assert.equal(fuzzyScore("xyz", "src/main.rs"), null);
  });
  it("groups search hits by file in best-first order", () => {
    const hit = (uri: string, line: number): SearchHit => ({ uri, range: { start: { line, character: 0 }, end: { line, character: 1 } }, score: 1, snippet: "" });
    const groups = groupByFile([hit("b", 1), hit("a", 2), hit("b", 3)]);
    assert.deepEqual([...groups.keys()], ["b", "a"]);
    assert.deepEqual(groups.get("b")?.map((h) => h.range.start.line), [1, 3]);
  });
  it("names chat sources from strings and objects", () => {
    assert.deepEqual(sourceNames(["src/a.rs", { path: "b.py" }, { uri: "file:///c" }, 3, null]), ["src/a.rs", "b.py", "file:///c"]);
    assert.deepEqual(sourceNames(undefined), []);
    assert.equal(withoutSourcesLine("It trims.\nSources: src/lib.rs, src/main.rs\n"), "It trims.\n");
    assert.equal(withoutSourcesLine("No list here."), "No list here.");
  });
});
