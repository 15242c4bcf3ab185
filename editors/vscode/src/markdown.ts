//! Splitting a chat answer into text and fenced code blocks; no Node or
//! VS Code imports, so the webview script bundles it too.

/** A fenced code block in a Markdown answer. */
export interface CodeBlock {
  language: string;
  code: string;
}

/** A piece of a chat answer: text, or a code block with its index among the blocks. */
export type AnswerPart = { kind: "text"; text: string } | { kind: "code"; language: string; code: string; index: number };

/** Split an answer into text and code blocks, for rendering without HTML. */
export function splitAnswer(markdown: string): AnswerPart[] {
  const parts: AnswerPart[] = [];
  const lines = markdown.split(/\r?\n/);
  let text: string[] = [];
  let open: { fence: string; language: string; lines: string[] } | undefined;
  let index = 0;
  const flushText = (): void => {
    const joined = text.join("\n");
    if (joined.trim() !== "") {
      parts.push({ kind: "text", text: joined });
    }
    text = [];
  };
  for (const line of lines) {
    if (open) {
      if (line.trim().startsWith(open.fence) && line.trim().replace(/`|~/g, "") === "") {
        parts.push({ kind: "code", language: open.language, code: open.lines.join("\n"), index: index++ });
        open = undefined;
      } else {
        open.lines.push(line);
      }
      continue;
    }
    const match = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/.exec(line);
    if (match?.[1]) {
      flushText();
      open = { fence: match[1], language: match[2] ?? "", lines: [] };
    } else {
      text.push(line);
    }
  }
  if (open) {
    parts.push({ kind: "code", language: open.language, code: open.lines.join("\n"), index });
  }
  flushText();
  return parts;
}


/** The fenced code blocks of a Markdown text, in order (an unclosed fence runs to the end). */
export function codeBlocks(markdown: string): CodeBlock[] {
  return splitAnswer(markdown).flatMap((part) => (part.kind === "code" ? [{ language: part.language, code: part.code }] : []));
}

/**
 * The answer without its closing `Sources: …` line, for a view that lists the
 * sources itself as links (the server ends every answer with that line).
 */
export function withoutSourcesLine(markdown: string): string {
  const lines = markdown.replace(/\s+$/, "").split("\n");
  const last = lines[lines.length - 1];
  if (last !== undefined && /^\s*\**Sources:?\**\s*:?/.test(last)) {
    lines.pop();
  }
  return lines.join("\n");
}
