//! The code tokenizer: identifiers are kept whole and also split at
//! `camelCase`, `snake_case`, `kebab-case` and letter/digit boundaries, all
//! lower-cased, so `parseHttpRequest` is found by `http request` and by its
//! exact name.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under in the tantivy index.
pub const CODE_TOKENIZER: &str = "code";
/// Words longer than this are not indexed whole (their parts still are).
const MAX_TOKEN_BYTES: usize = 64;

/// A tantivy tokenizer for source code. It reuses its token buffer between
/// documents, so indexing allocates no strings per token.
#[derive(Clone, Default)]
pub struct CodeTokenizer {
    tokens: Vec<Token>,
}

/// The tokens of a text, in order (whole identifiers followed by their parts).
pub struct CodeTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        let mut count = 0;
        let tokens = &mut self.tokens;
        for_each_token(text, |from, to, lower_into| {
            if count == tokens.len() {
                tokens.push(Token::default());
            }
            let token = &mut tokens[count];
            token.offset_from = from;
            token.offset_to = to;
            token.position = count;
            token.position_length = 1;
            token.text.clear();
            lower_into(&mut token.text);
            count += 1;
        });
        CodeTokenStream {
            tokens: &mut tokens[..count],
            next: 0,
        }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The distinct tokens of a query, in order of first appearance.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for_each_token(text, |_, _, lower_into| {
        let mut token = String::new();
        lower_into(&mut token);
        if seen.insert(token.clone()) {
            out.push(token);
        }
    });
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Calls `emit(from, to, write_lowercase)` for every token; `write_lowercase`
/// appends the token's lower-cased text to a buffer.
fn for_each_token(text: &str, mut emit: impl FnMut(usize, usize, &dyn Fn(&mut String))) {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut start = None;
    let mut index = 0;
    while index < bytes.len() {
        // ASCII, most of code, is classified by its byte; anything else by
        // its character.
        let byte = bytes[index];
        let (word, width) = if byte.is_ascii() {
            (
                byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$',
                1,
            )
        } else {
            text[index..]
                .chars()
                .next()
                .map_or((false, 1), |c| (is_word_char(c), c.len_utf8()))
        };
        match (start, word) {
            (None, true) => start = Some(index),
            (Some(from), false) => {
                word_tokens(&text[from..index], from, &mut parts, &mut emit);
                start = None;
            }
            _ => {}
        }
        index += width;
    }
    if let Some(from) = start {
        word_tokens(&text[from..], from, &mut parts, &mut emit);
    }
}

fn push_lowercase(piece: &str, out: &mut String) {
    if piece.is_ascii() {
        out.push_str(piece);
        out.make_ascii_lowercase();
    } else {
        out.extend(piece.chars().flat_map(char::to_lowercase));
    }
}

fn word_tokens(
    word: &str,
    offset: usize,
    parts: &mut Vec<(usize, usize)>,
    emit: &mut impl FnMut(usize, usize, &dyn Fn(&mut String)),
) {
    // Most words in code are plain lower-case: one token, nothing to split.
    if word.len() <= MAX_TOKEN_BYTES && word.bytes().all(|b| b.is_ascii_lowercase()) {
        emit(offset, offset + word.len(), &|out| out.push_str(word));
        return;
    }
    split_identifier(word, parts);
    let whole_is_a_part = parts.len() == 1 && parts[0] == (0, word.len());
    if word.len() <= MAX_TOKEN_BYTES && !word.bytes().all(|b| b == b'_' || b == b'$') {
        emit(offset, offset + word.len(), &|out| {
            push_lowercase(word, out)
        });
    }
    if whole_is_a_part {
        return;
    }
    for &(start, end) in parts.iter() {
        if end - start <= MAX_TOKEN_BYTES {
            let piece = &word[start..end];
            emit(offset + start, offset + end, &|out| {
                push_lowercase(piece, out)
            });
        }
    }
}

/// Byte ranges of the parts of an identifier, into `parts` (cleared first).
fn split_identifier(word: &str, parts: &mut Vec<(usize, usize)>) {
    parts.clear();
    if word.is_ascii() {
        split_ascii_identifier(word.as_bytes(), parts);
        return;
    }
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut part_start: Option<usize> = None;
    for (i, &(index, c)) in chars.iter().enumerate() {
        if c == '_' || c == '$' {
            if let Some(start) = part_start.take() {
                parts.push((start, index));
            }
            continue;
        }
        if let Some(start) = part_start {
            let prev = chars[i - 1].1;
            let next = chars.get(i + 1).map(|&(_, c)| c);
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_uppercase()
                    && c.is_uppercase()
                    && next.is_some_and(char::is_lowercase))
                || (prev.is_alphabetic() && c.is_numeric())
                || (prev.is_numeric() && c.is_alphabetic());
            if boundary {
                parts.push((start, index));
                part_start = Some(index);
            }
        } else {
            part_start = Some(index);
        }
    }
    if let Some(start) = part_start {
        parts.push((start, word.len()));
    }
}

/// [`split_identifier`] for an ASCII word, by its bytes (the same rules).
fn split_ascii_identifier(word: &[u8], parts: &mut Vec<(usize, usize)>) {
    let mut part_start: Option<usize> = None;
    for (index, &c) in word.iter().enumerate() {
        if c == b'_' || c == b'$' {
            if let Some(start) = part_start.take() {
                parts.push((start, index));
            }
            continue;
        }
        if let Some(start) = part_start {
            let prev = word[index - 1];
            let next = word.get(index + 1).copied();
            let boundary = (prev.is_ascii_lowercase() && c.is_ascii_uppercase())
                || (prev.is_ascii_uppercase()
                    && c.is_ascii_uppercase()
                    && next.is_some_and(|n| n.is_ascii_lowercase()))
                || (prev.is_ascii_alphabetic() && c.is_ascii_digit())
                || (prev.is_ascii_digit() && c.is_ascii_alphabetic());
            if boundary {
                parts.push((start, index));
                part_start = Some(index);
            }
        } else {
            part_start = Some(index);
        }
    }
    if let Some(start) = part_start {
        parts.push((start, word.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_kept_whole_and_split() {
        assert_eq!(
            tokenize("parseHttpRequest"),
            ["parsehttprequest", "parse", "http", "request"]
        );
        assert_eq!(
            tokenize("HTTPServer2"),
            ["httpserver2", "http", "server", "2"]
        );
        assert_eq!(
            tokenize("max_file_bytes"),
            ["max_file_bytes", "max", "file", "bytes"]
        );
        assert_eq!(tokenize("kebab-case x"), ["kebab", "case", "x"]);
        assert_eq!(tokenize("utf8Decode"), ["utf8decode", "utf", "8", "decode"]);
        assert_eq!(tokenize("__init__ ___"), ["__init__", "init"]);
        assert_eq!(tokenize("Grüße größe"), ["grüße", "größe"]);
        assert!(tokenize("").is_empty());
    }

    /// The ASCII fast path splits as the character path does: the same
    /// words with a non-ASCII digit appended (a part of its own after a
    /// letter, and no letter's neighbour) take the character path.
    #[test]
    fn ascii_and_unicode_words_split_alike() {
        let words = [
            "parseHttpRequest",
            "HTTPServer2",
            "utf8Decode",
            "__init__",
            "$scope_Value9x",
            "ABCdef",
            "a1b2C3",
            "XMLHttpRequestV2Beta",
            "_",
            "SNDRV_PCM_IOCTL_PVERSION",
        ];
        for word in words {
            let mut ascii = Vec::new();
            split_identifier(word, &mut ascii);
            let wide = format!("{word}\u{663}");
            let mut unicode = Vec::new();
            split_identifier(&wide, &mut unicode);
            // The appended digit ends the last part.
            let last_end = unicode.last().map_or(0, |part| part.1);
            assert_eq!(last_end, wide.len(), "{word}");
            let trimmed: Vec<(usize, usize)> = unicode
                .iter()
                .map(|&(start, end)| (start, end.min(word.len())))
                .filter(|(start, end)| start < end)
                .collect();
            assert_eq!(ascii, trimmed, "{word}");
        }
    }

    #[test]
    fn very_long_words_keep_only_their_parts() {
        let long = format!("{}_tail", "a".repeat(100));
        assert_eq!(tokenize(&long), ["tail"]);
    }

    #[test]
    fn the_stream_reports_offsets_of_each_token() {
        let mut tokenizer = CodeTokenizer::default();
        let mut stream = tokenizer.token_stream("a fooBar");
        let mut seen = Vec::new();
        while stream.advance() {
            let token = stream.token();
            seen.push((token.text.clone(), token.offset_from, token.offset_to));
        }
        assert_eq!(
            seen,
            [
                ("a".into(), 0, 1),
                ("foobar".into(), 2, 8),
                ("foo".into(), 2, 5),
                ("bar".into(), 5, 8)
            ]
        );
    }
}
