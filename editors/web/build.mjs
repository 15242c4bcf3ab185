// Builds the web IDE into dist/: index.html, app.js and app.css, minified
// and deterministic (no source maps, no timestamps), so CI can check that
// the committed bundle matches the source. With --tests, also bundles
// test/*.test.ts for node --test into out/test.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist", { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  logLevel: "warning",
  target: "es2022",
  platform: "browser",
  format: "iife",
  charset: "utf8",
});
copyFileSync("src/index.html", "dist/index.html");
if (tests) {
  rmSync("out", { recursive: true, force: true });
  await esbuild.build({
    entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
    outdir: "out/test",
    outExtension: { ".js": ".mjs" },
    bundle: true,
    sourcemap: true,
    logLevel: "warning",
    platform: "node",
    format: "esm",
    packages: "external",
  });
}
