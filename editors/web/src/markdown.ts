// Markdown to sanitised HTML (marked + DOMPurify), for hovers and chat.

import DOMPurify from "dompurify";
import { marked } from "marked";

/** Strip anything active from HTML (scripts, handlers, javascript: links, forms). */
export function sanitize(html: string): string {
  return DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form", "input", "iframe"], FORBID_ATTR: ["style"] });
}

export function renderMarkdown(text: string): string {
  return sanitize(marked.parse(text, { async: false, gfm: true }));
}
