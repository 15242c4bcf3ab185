import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { OWN_ID_BASE, OwnRequests, ResponseError, parseFrame, reconnectDelay, requestFrame } from "../src/ide/rpc.js";

describe("frames", () => {
  it("tells requests, notifications and responses apart", () => {
    assert.deepEqual(parseFrame('{"jsonrpc":"2.0","id":3,"method":"x","params":[1]}'), { kind: "request", id: 3, method: "x", params: [1] });
    assert.deepEqual(parseFrame('{"jsonrpc":"2.0","method":"$/progress","params":{"token":"t"}}'), { kind: "notification", method: "$/progress", params: { token: "t" } });
    assert.deepEqual(parseFrame('{"jsonrpc":"2.0","id":"a","result":null}'), { kind: "response", id: "a", result: null });
    const error = parseFrame('{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}');
    assert.equal(error instanceof Error, false);
    assert.deepEqual(error, { kind: "response", id: 1, error: { code: -32601, message: "no" } });
  });

  it("refuses what is not one JSON-RPC 2.0 message", () => {
    for (const bad of ["", "{", "[]", "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]", '{"id":1,"method":"x"}', '{"jsonrpc":"2.0","id":1}', "Content-Length: 10\r\n\r\n{}"]) {
      assert.ok(parseFrame(bad) instanceof Error, bad);
    }
  });

  it("round-trips a request frame with no header", () => {
    const frame = requestFrame(7, "aicockpit/search", { query: "a\nb" });
    assert.ok(frame.startsWith("{"));
    assert.deepEqual(parseFrame(frame), { kind: "request", id: 7, method: "aicockpit/search", params: { query: "a\nb" } });
  });
});

describe("own requests", () => {
  it("settles only responses to its own ids", async () => {
    const sent: string[] = [];
    const own = new OwnRequests((f) => sent.push(f));
    const promise = own.request<number>("aicockpit/chat", {}, 10_000);
    const id = (JSON.parse(sent[0] ?? "{}") as { id: number }).id;
    assert.ok(id >= OWN_ID_BASE);
    assert.equal(own.settle({ kind: "response", id: 5, result: 1 }), false, "the LSP client's response is not ours");
    assert.equal(own.settle({ kind: "response", id, result: 42 }), true);
    assert.equal(await promise, 42);
    assert.equal(own.size, 0);
  });

  it("rejects with the server's code", async () => {
    const sent: string[] = [];
    const own = new OwnRequests((f) => sent.push(f));
    const promise = own.request("x", {}, 10_000);
    const id = (JSON.parse(sent[0] ?? "{}") as { id: number }).id;
    own.settle({ kind: "response", id, error: { code: -32000, message: "service down" } });
    await assert.rejects(promise, (e: unknown) => e instanceof ResponseError && e.code === -32000 && e.message === "service down");
  });

  it("cancels at the server on timeout and on abort", async () => {
    const sent: string[] = [];
    const own = new OwnRequests((f) => sent.push(f));
    await assert.rejects(own.request("slow", {}, 5), /timed out/);
    const controller = new AbortController();
    const aborted = own.request("slower", {}, 10_000, controller.signal);
    controller.abort();
    await assert.rejects(aborted, /cancelled/);
    const cancels = sent.map((f) => JSON.parse(f) as { method: string; params?: { id: number } }).filter((m) => m.method === "$/cancelRequest");
    assert.equal(cancels.length, 2);
    assert.equal(own.size, 0);
  });

  it("fails everything pending when the connection drops, and refuses when it cannot send", async () => {
    const own = new OwnRequests(() => undefined);
    const a = own.request("a", {}, 10_000);
    own.failAll("gone");
    await assert.rejects(a, /a: gone/);
    const broken = new OwnRequests(() => {
      throw new Error("not connected");
    });
    await assert.rejects(broken.request("b", {}, 10_000), /not connected/);
    assert.equal(broken.size, 0);
  });

  it("backs off reconnects up to 8 s", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 10].map(reconnectDelay), [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  });
});
