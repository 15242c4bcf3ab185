import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { TerminalAttach } from "../src/ide/terminal-attach.js";

const kinds = (effects: { kind: string }[]): string[] => effects.map((e) => e.kind);

describe("terminal attach", () => {
  it("opens a new session, remembers its id and sends its size", () => {
    const t = new TerminalAttach();
    assert.equal(t.path("/api/v1/workspaces/w"), "/api/v1/workspaces/w/terminal?cols=80&rows=24");
    t.opened();
    const effects = t.text('{"type":"session","id":"s1","read_only":false,"replaced":false}');
    assert.deepEqual(kinds(effects), ["remember", "readOnly", "send"]);
    assert.equal(t.session, "s1");
    assert.deepEqual(JSON.parse((effects[2] as { frame: string }).frame), { type: "resize", cols: 80, rows: 24 });
  });

  it("reattaches after a drop with the session id, resetting the screen before the replay", () => {
    const t = new TerminalAttach();
    t.opened();
    t.text('{"type":"session","id":"s1"}');
    t.binary(new Uint8Array([104, 105]));
    const closed = t.closed();
    assert.equal(t.state, "waiting");
    assert.deepEqual(closed, [{ kind: "reconnect", afterMs: 500 }]);
    assert.deepEqual(kinds(t.closed()), ["reconnect"]);
    t.retry();
    assert.equal(t.state, "connecting");
    assert.match(t.path("/w"), /session=s1/);
    t.opened();
    const hello = t.text('{"type":"session","id":"s1"}');
    assert.equal(hello[0]?.kind, "reset", "the replay redraws a clean screen");
    assert.deepEqual(kinds(t.binary(new Uint8Array([1]))), ["write"]);
  });

  it("after a page reload attaches to the stored session without a reset", () => {
    const t = new TerminalAttach("s9");
    assert.match(t.path("/w"), /session=s9/);
    t.opened();
    assert.notEqual(t.text('{"type":"session","id":"s9"}')[0]?.kind, "reset");
  });

  it("says when the old shell was gone and a new one replaced it", () => {
    const t = new TerminalAttach("old");
    t.opened();
    const effects = t.text('{"type":"session","id":"new","replaced":true}');
    assert.ok(effects.some((e) => e.kind === "notice"));
    assert.equal(t.session, "new");
  });

  it("does not reconnect after the shell exited or the panel closed", () => {
    const t = new TerminalAttach();
    t.opened();
    assert.deepEqual(kinds(t.text('{"type":"exit","code":0}')), ["notice"]);
    assert.deepEqual(t.closed(), []);
    const u = new TerminalAttach();
    u.dispose();
    assert.deepEqual(u.closed(), []);
  });

  it("reconnects after a server shutdown", () => {
    const t = new TerminalAttach();
    t.opened();
    t.text('{"type":"shutdown"}');
    assert.deepEqual(kinds(t.closed()), ["reconnect"]);
  });

  it("viewers send no resize; writers send one per real change", () => {
    const v = new TerminalAttach("s");
    v.opened();
    const hello = v.text('{"type":"session","id":"s","read_only":true}');
    assert.deepEqual(kinds(hello), ["remember", "readOnly"]);
    assert.equal(v.readOnly, true);
    assert.deepEqual(v.resize(100, 30), []);
    const w = new TerminalAttach();
    w.opened();
    w.text('{"type":"session","id":"s"}');
    assert.deepEqual(kinds(w.resize(100, 30)), ["send"]);
    assert.deepEqual(w.resize(100, 30), []);
  });

  it("reports a control message that is not JSON", () => {
    const t = new TerminalAttach();
    assert.deepEqual(kinds(t.text("nope")), ["notice"]);
  });
});
