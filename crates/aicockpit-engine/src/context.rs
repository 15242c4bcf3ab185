//! Context assembly for AI requests: a token budget filled by a fixed
//! priority — the text around the cursor; definitions and signatures of
//! identifiers near the cursor (from our own index); snippets of recently
//! edited files most similar to the cursor window; search hits (hybrid when
//! the project has vectors) — never repeating what the prompt already holds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use aicockpit_index::SearchQuery;
use aicockpit_syntax::{is_identifier_byte, LanguageId};

use crate::Engine;

/// Roughly four characters a token, as the common code tokenizers average.
pub const CHARS_PER_TOKEN: usize = 4;
/// No prompt context is larger than this, whatever the settings say.
pub const MAX_BUDGET_TOKENS: usize = 1_000_000;
/// Lines of the cursor window used to pick identifiers and compare files.
const WINDOW_LINES: usize = 12;

/// Why a snippet is in the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnippetReason {
    Definition,
    RecentEdit,
    SearchHit,
}

/// A piece of another file (or another part of this one) in the prompt.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Snippet {
    /// Relative to the project root when inside it.
    pub path: String,
    pub text: String,
    pub reason: SnippetReason,
}

/// What a completion prompt is made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompletionContext {
    pub lang: Option<LanguageId>,
    pub path: String,
    pub prefix: String,
    pub suffix: String,
    pub snippets: Vec<Snippet>,
}

impl CompletionContext {
    /// The snippets as comments, for the top of a fill-in-the-middle prompt.
    pub fn commented_snippets(&self) -> String {
        let comment = match self.lang {
            Some(LanguageId::Python) => "#",
            _ => "//",
        };
        let mut out = String::new();
        for snippet in &self.snippets {
            out.push_str(&format!("{comment} {}\n", snippet.path));
            for line in snippet.text.lines() {
                out.push_str(&format!("{comment} {line}\n"));
            }
        }
        out
    }

    /// The files the context drew on, without repeats.
    pub fn sources(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for snippet in &self.snippets {
            if !seen.contains(&snippet.path) {
                seen.push(snippet.path.clone());
            }
        }
        seen
    }
}

impl Engine {
    /// Build the context of a completion at `offset` of `path` within `budget_tokens`.
    pub fn completion_context(
        &self,
        path: &Path,
        text: &str,
        offset: usize,
        budget_tokens: usize,
    ) -> CompletionContext {
        let budget = budget_tokens.min(MAX_BUDGET_TOKENS) * CHARS_PER_TOKEN;
        let offset = floor_boundary(text, offset.min(text.len()));
        // 1. Around the cursor: most of the budget, three quarters before the cursor.
        let around = budget * 6 / 10;
        let prefix_start = floor_boundary(text, offset.saturating_sub(around * 3 / 4));
        let prefix_start = text[prefix_start..offset]
            .find('\n')
            .filter(|_| prefix_start > 0)
            .map_or(prefix_start, |n| prefix_start + n + 1);
        let suffix_end = ceil_boundary(text, (offset + around / 4).min(text.len()));
        let mut context = CompletionContext {
            lang: LanguageId::from_path(path),
            path: self.rel(path).unwrap_or_else(|| path.display().to_string()),
            prefix: text[prefix_start..offset].to_string(),
            suffix: text[offset..suffix_end].to_string(),
            snippets: Vec::new(),
        };
        let mut left = budget.saturating_sub(context.prefix.len() + context.suffix.len());
        let mut in_prompt = context.prefix.clone() + &context.suffix;
        let mut add = |context: &mut CompletionContext, snippet: Snippet| -> bool {
            let cost = snippet.text.len() + snippet.path.len() + 8;
            if cost > left || in_prompt.contains(snippet.text.trim()) {
                return false;
            }
            left -= cost;
            in_prompt.push_str(&snippet.text);
            context.snippets.push(snippet);
            true
        };

        // 2. Definitions of identifiers near the cursor, nearest first.
        let window = cursor_window(text, offset);
        let identifiers = identifiers_by_distance(text, offset, &window);
        if let Some(index) = self.index() {
            for name in identifiers.iter().take(12) {
                for hit in index.definitions(name, 3) {
                    let mut snippet_text = hit.symbol.signature.to_string();
                    if let Some(doc) = &hit.symbol.doc {
                        let first = doc.lines().next().unwrap_or("");
                        snippet_text = format!("{first}\n{snippet_text}");
                    }
                    add(
                        &mut context,
                        Snippet {
                            path: hit.path,
                            text: snippet_text,
                            reason: SnippetReason::Definition,
                        },
                    );
                }
            }
        }

        // 3. The most similar window of each recently edited file.
        let wanted: HashSet<&str> = identifiers.iter().map(String::as_str).collect();
        for (other, other_text) in self.recent_documents(path, 3) {
            if let Some(best) = most_similar_window(&other_text, &wanted) {
                let rel = self
                    .rel(&other)
                    .unwrap_or_else(|| other.display().to_string());
                add(
                    &mut context,
                    Snippet {
                        path: rel,
                        text: best,
                        reason: SnippetReason::RecentEdit,
                    },
                );
            }
        }

        // 4. Search hits for the identifiers near the cursor (hybrid when
        // the project has vectors).
        if self.index().is_some() {
            let query = identifiers
                .iter()
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            if !query.is_empty() {
                let mut search = SearchQuery::new(query);
                search.limit = 5;
                for hit in self.context_hits(search) {
                    if hit.path == context.path {
                        continue;
                    }
                    add(
                        &mut context,
                        Snippet {
                            path: hit.path,
                            text: hit.snippet,
                            reason: SnippetReason::SearchHit,
                        },
                    );
                }
            }
        }
        context
    }

    /// Other open documents, most recently edited first.
    fn recent_documents(&self, except: &Path, limit: usize) -> Vec<(PathBuf, String)> {
        let docs = self.documents();
        let mut recent: Vec<(std::time::Instant, PathBuf, String)> = docs
            .iter()
            .filter(|(path, doc)| path.as_path() != except && doc.edited_at.is_some())
            .map(|(path, doc)| {
                (
                    doc.edited_at.unwrap_or_else(std::time::Instant::now),
                    path.clone(),
                    doc.text.clone(),
                )
            })
            .collect();
        recent.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        recent
            .into_iter()
            .take(limit)
            .map(|(_, path, text)| (path, text))
            .collect()
    }
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn ceil_boundary(text: &str, mut offset: usize) -> usize {
    while offset < text.len() && !text.is_char_boundary(offset) {
        offset += 1;
    }
    offset
}

/// The lines around the cursor.
fn cursor_window(text: &str, offset: usize) -> std::ops::Range<usize> {
    let mut start = offset;
    for _ in 0..WINDOW_LINES {
        match text[..start].rfind('\n') {
            Some(newline) => start = newline,
            None => {
                start = 0;
                break;
            }
        }
    }
    let mut end = offset;
    for _ in 0..WINDOW_LINES / 2 {
        match text[end..].find('\n') {
            Some(newline) => end += newline + 1,
            None => {
                end = text.len();
                break;
            }
        }
    }
    start..end
}

fn identifiers(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut position = 0;
    std::iter::from_fn(move || {
        while position < bytes.len() {
            if is_identifier_byte(bytes[position]) && !bytes[position].is_ascii_digit() {
                let start = position;
                while position < bytes.len() && is_identifier_byte(bytes[position]) {
                    position += 1;
                }
                if text.is_char_boundary(start) && text.is_char_boundary(position) {
                    return Some((start, &text[start..position]));
                }
            } else {
                position += 1;
            }
        }
        None
    })
}

/// Identifiers of the cursor window worth looking up (three characters or
/// more, not keywords), nearest to the cursor first.
fn identifiers_by_distance(
    text: &str,
    offset: usize,
    window: &std::ops::Range<usize>,
) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "self",
        "Self",
        "this",
        "return",
        "let",
        "mut",
        "const",
        "static",
        "pub",
        "def",
        "class",
        "function",
        "var",
        "true",
        "false",
        "True",
        "False",
        "None",
        "null",
        "nil",
        "for",
        "while",
        "if",
        "else",
        "elif",
        "match",
        "import",
        "from",
        "use",
        "mod",
        "impl",
        "struct",
        "enum",
        "trait",
        "type",
        "interface",
        "async",
        "await",
        "new",
        "void",
        "int",
        "string",
        "String",
        "func",
        "package",
        "public",
        "private",
        "protected",
        "and",
        "not",
    ];
    let mut found: Vec<(usize, String)> = identifiers(&text[window.clone()])
        .filter(|(_, word)| word.len() >= 3 && !KEYWORDS.contains(word))
        .map(|(start, word)| ((window.start + start).abs_diff(offset), word.to_string()))
        .collect();
    found.sort();
    let mut seen = HashSet::new();
    found
        .into_iter()
        .filter(|(_, word)| seen.insert(word.clone()))
        .map(|(_, word)| word)
        .collect()
}

/// The window of `text` sharing the most identifiers with `wanted` (Jaccard
/// similarity), if any shares at least one in ten.
fn most_similar_window(text: &str, wanted: &HashSet<&str>) -> Option<String> {
    if wanted.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut best: Option<(f64, usize)> = None;
    let step = WINDOW_LINES / 2;
    let mut start = 0;
    while start < lines.len() {
        let end = (start + WINDOW_LINES).min(lines.len());
        let chunk = lines[start..end].join("\n");
        let words: HashSet<&str> = identifiers(&chunk).map(|(_, w)| w).collect();
        let shared = words.iter().filter(|w| wanted.contains(*w)).count();
        let union = words.len() + wanted.len() - shared;
        let score = if union == 0 {
            0.0
        } else {
            shared as f64 / union as f64
        };
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, start));
        }
        start += step;
    }
    let (score, start) = best?;
    (score >= 0.1).then(|| lines[start..(start + WINDOW_LINES).min(lines.len())].join("\n"))
}
