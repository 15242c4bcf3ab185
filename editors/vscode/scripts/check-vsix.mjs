// Checks that a .vsix holds exactly what it should: the bundled extension,
// the chat view's files, the manifest, README and LICENSE; no sources, no
// node_modules, no source maps, no tests. Reads the zip's central directory
// itself (no dependency). Usage: node scripts/check-vsix.mjs FILE.vsix
import { readFileSync } from "node:fs";
import { inflateRawSync } from "node:zlib";

const file = process.argv[2];
if (!file) {
  console.error("usage: check-vsix.mjs FILE.vsix");
  process.exit(2);
}
const zip = readFileSync(file);
const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
if (eocd < 0) {
  console.error(`${file}: not a zip file`);
  process.exit(1);
}
const count = zip.readUInt16LE(eocd + 10);
let offset = zip.readUInt32LE(eocd + 16);
const entries = new Map();
for (let i = 0; i < count; i++) {
  if (zip.readUInt32LE(offset) !== 0x02014b50) {
    console.error(`${file}: broken central directory`);
    process.exit(1);
  }
  const method = zip.readUInt16LE(offset + 10);
  const compressed = zip.readUInt32LE(offset + 20);
  const nameLength = zip.readUInt16LE(offset + 28);
  const extraLength = zip.readUInt16LE(offset + 30);
  const commentLength = zip.readUInt16LE(offset + 32);
  const local = zip.readUInt32LE(offset + 42);
  const name = zip.toString("utf8", offset + 46, offset + 46 + nameLength);
  const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
  const raw = zip.subarray(dataStart, dataStart + compressed);
  entries.set(name, () => (method === 8 ? inflateRawSync(raw) : raw));
  offset += 46 + nameLength + extraLength + commentLength;
}

const expected = [
  "extension.vsixmanifest",
  "[Content_Types].xml",
  "extension/package.json",
  "extension/readme.md",
  "extension/LICENSE.txt",
  "extension/dist/extension.js",
  "extension/dist/webview.js",
  "extension/dist/chat.css",
  "extension/media/icon.svg",
];
const problems = [];
const names = [...entries.keys()].sort();
for (const name of names) {
  if (!expected.includes(name)) {
    problems.push(`unexpected file: ${name}`);
  }
}
for (const name of expected) {
  if (!entries.has(name)) {
    problems.push(`missing file: ${name}`);
  }
}
const read = (name) => entries.get(name)?.().toString("utf8") ?? "";
const manifest = JSON.parse(read("extension/package.json") || "{}");
if (manifest.main !== "./dist/extension.js") {
  problems.push(`package.json main is ${manifest.main}, not ./dist/extension.js`);
}
const bundle = read("extension/dist/extension.js");
for (const module of ["vscode-languageclient", "vscode-jsonrpc", "vscode-languageserver-protocol"]) {
  if (new RegExp(`require\\(["']${module}`).test(bundle)) {
    problems.push(`dist/extension.js requires ${module} at run time instead of bundling it`);
  }
}
if (!/require\(["']vscode["']\)/.test(bundle)) {
  problems.push("dist/extension.js does not load the vscode module");
}
if (/sourceMappingURL/.test(bundle)) {
  problems.push("dist/extension.js is a development build (it has a source map)");
}
if (read("extension/readme.md").length < 500) {
  problems.push("readme.md is too short to be the real README");
}
if (!read("extension/LICENSE.txt").includes("Apache License")) {
  problems.push("LICENSE.txt is not the Apache License");
}
if (problems.length > 0) {
  console.error(`${file}:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`${file}: ${names.length} files, as expected`);
