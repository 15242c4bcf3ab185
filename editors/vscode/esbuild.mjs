// Bundles the extension (Node, CommonJS, `vscode` external), the chat
// view's script (browser) and, with --tests, the unit tests.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";

const production = process.argv.includes("--production");
const tests = process.argv.includes("--tests");

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
const common = { bundle: true, minify: production, sourcemap: !production, logLevel: "warning", target: "es2022" };
await esbuild.build({
  ...common,
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  platform: "node",
  format: "cjs",
  external: ["vscode"],
});
await esbuild.build({
  ...common,
  entryPoints: ["src/webview/chat.ts"],
  outfile: "dist/webview.js",
  platform: "browser",
  format: "iife",
});
copyFileSync("media/chat.css", "dist/chat.css");
if (tests) {
  rmSync("out", { recursive: true, force: true });
  await esbuild.build({
    ...common,
    sourcemap: true,
    entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
    outdir: "out/test",
    outExtension: { ".js": ".cjs" },
    platform: "node",
    format: "cjs",
  });
}
