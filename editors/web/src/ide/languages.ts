// Highlighting for the languages the server indexes, by file extension,
// and the LSP language id sent with `didOpen`.

import type { LanguageSupport } from "@codemirror/language";
import { rust } from "@codemirror/lang-rust";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { go } from "@codemirror/lang-go";
import { java } from "@codemirror/lang-java";
import { cpp } from "@codemirror/lang-cpp";

interface LanguageRow {
  id: string;
  extensions: string[];
  support: () => LanguageSupport;
}

const LANGUAGES: LanguageRow[] = [
  { id: "rust", extensions: ["rs"], support: rust },
  { id: "python", extensions: ["py", "pyi"], support: python },
  { id: "javascript", extensions: ["js", "mjs", "cjs", "jsx"], support: () => javascript({ jsx: true }) },
  { id: "typescript", extensions: ["ts", "mts", "cts"], support: () => javascript({ typescript: true }) },
  { id: "typescriptreact", extensions: ["tsx"], support: () => javascript({ typescript: true, jsx: true }) },
  { id: "go", extensions: ["go"], support: go },
  { id: "java", extensions: ["java"], support: java },
  { id: "c", extensions: ["c", "h"], support: cpp },
  { id: "cpp", extensions: ["cc", "cpp", "cxx", "hpp", "hh", "hxx"], support: cpp },
];

export function languageOf(path: string): { id: string; support: LanguageSupport | null } {
  const ext = path.includes(".") ? (path.split(".").pop() ?? "").toLowerCase() : "";
  const row = LANGUAGES.find((l) => l.extensions.includes(ext));
  return row ? { id: row.id, support: row.support() } : { id: "plaintext", support: null };
}

/** The language of a Markdown code fence's tag, for highlighting chat code blocks. */
export function languageOfTag(tag: string): LanguageSupport | null {
  const t = tag.toLowerCase();
  const row = LANGUAGES.find((l) => l.id === t || l.extensions.includes(t)) ?? (t === "c++" ? LANGUAGES.find((l) => l.id === "cpp") : undefined);
  return row ? row.support() : null;
}
