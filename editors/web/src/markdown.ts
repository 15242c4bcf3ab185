// Markdown to sanitised HTML (marked + DOMPurify), for hovers and chat.

import DOMPurify from "dompurify";
import { marked } from "marked";

/** Strip anything active from HTML (scripts, handlers, javascript: links,
 * forms), and anything that loads by itself: hovers and chat answers come
 * from code and AI services, and an image's `src` on this origin would be a
 * request made with the user's cookie (`/login?token=…` signs the browser in
 * as someone else). */
export function sanitize(html: string): string {
  return DOMPurify.sanitize(html, {
    FORBID_TAGS: ["style", "form", "input", "iframe", "img", "picture", "source", "video", "audio", "image", "object", "embed", "link", "meta", "base"],
    FORBID_ATTR: ["style", "srcset", "background", "poster"],
  });
}

export function renderMarkdown(text: string): string {
  return sanitize(marked.parse(text, { async: false, gfm: true }));
}
