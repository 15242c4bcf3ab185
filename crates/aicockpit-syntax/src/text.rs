//! Positions in text: lines, UTF-8 byte columns and UTF-16 columns.
//!
//! The core keeps both column kinds so that the protocol edge can answer in
//! whichever encoding the client negotiated without re-reading files.

use std::ops::Range;

/// A position: zero-based line, and the column both in UTF-8 bytes and in
/// UTF-16 code units.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
    pub col_utf16: u32,
}

/// A half-open range of text.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// Whether `other` lies within this span (inclusive on both ends).
    pub fn contains(&self, other: &Span) -> bool {
        (self.start.line, self.start.col) <= (other.start.line, other.start.col)
            && (other.end.line, other.end.col) <= (self.end.line, self.end.col)
    }
}

/// Line starts of a text, for converting between byte offsets and positions.
///
/// Lines end at `\n`, `\r\n` or a lone `\r`, as LSP counts them; the
/// terminator belongs to no line's text.
#[derive(Clone, Debug)]
pub struct LineIndex {
    line_starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (index, &byte) in bytes.iter().enumerate() {
            if byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n')) {
                line_starts.push(index + 1);
            }
        }
        LineIndex {
            line_starts,
            len: text.len(),
        }
    }

    /// The number of lines (a text without a trailing newline still has its last line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The byte range of a line, without its line terminator.
    pub fn line_range(&self, text: &str, line: usize) -> Option<Range<usize>> {
        let start = *self.line_starts.get(line)?;
        let end = match self.line_starts.get(line + 1) {
            Some(&next) => {
                let bytes = text.as_bytes();
                let mut end = next - 1;
                if bytes.get(end) == Some(&b'\n')
                    && end > start
                    && bytes.get(end - 1) == Some(&b'\r')
                {
                    end -= 1;
                }
                end
            }
            None => self.len,
        };
        Some(start..end.max(start))
    }

    /// The position of a byte offset (clamped to the text, and moved back to
    /// a character boundary).
    pub fn pos(&self, text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let prefix = &text[line_start..offset];
        let col_utf16 = if prefix.is_ascii() {
            prefix.len()
        } else {
            prefix.encode_utf16().count()
        };
        Pos {
            line: line as u32,
            col: (offset - line_start) as u32,
            col_utf16: col_utf16 as u32,
        }
    }

    /// The span of a byte range.
    pub fn span(&self, text: &str, range: Range<usize>) -> Span {
        Span {
            start: self.pos(text, range.start),
            end: self.pos(text, range.end),
        }
    }

    /// The byte offset of a line and a UTF-8 byte column. Columns past the
    /// end of the line clamp to it; lines past the end clamp to the text's end.
    pub fn offset_utf8(&self, text: &str, line: u32, col: u32) -> usize {
        let Some(range) = self.line_range(text, line as usize) else {
            return text.len();
        };
        let mut offset = (range.start + col as usize).min(range.end);
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The byte offset of a line and a UTF-16 column, clamped like [`Self::offset_utf8`].
    pub fn offset_utf16(&self, text: &str, line: u32, col_utf16: u32) -> usize {
        let Some(range) = self.line_range(text, line as usize) else {
            return text.len();
        };
        let mut units = 0u32;
        for (index, ch) in text[range.clone()].char_indices() {
            if units >= col_utf16 {
                return range.start + index;
            }
            units += ch.len_utf16() as u32;
        }
        range.end
    }
}

/// Whether a byte can be part of an identifier in the languages we index
/// (ASCII letters, digits, `_`, `$`, and any byte of a non-ASCII character).
pub fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// The identifier under or just before a byte offset, as a byte range.
pub fn word_at(text: &str, offset: usize) -> Option<Range<usize>> {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let mut start = offset;
    while start > 0 && is_identifier_byte(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = offset;
    while end < bytes.len() && is_identifier_byte(bytes[end]) {
        end += 1;
    }
    while start < end && !text.is_char_boundary(start) {
        start += 1;
    }
    while end > start && !text.is_char_boundary(end) {
        end -= 1;
    }
    let word = &bytes[start..end];
    if word.is_empty() || word[0].is_ascii_digit() {
        return None;
    }
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf8_and_utf16_columns() {
        let text = "ab\r\nxé😀z\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_count(), 3);
        let z = text.find('z').unwrap();
        assert_eq!(
            index.pos(text, z),
            Pos {
                line: 1,
                col: 7,
                col_utf16: 4
            }
        );
        assert_eq!(index.offset_utf16(text, 1, 4), z);
        assert_eq!(index.offset_utf8(text, 1, 7), z);
        // Past the end of a line clamps to the line end (before \r\n).
        assert_eq!(index.offset_utf16(text, 0, 99), 2);
        assert_eq!(index.offset_utf8(text, 9, 0), text.len());
        // Inside a multi-byte character moves back to its start.
        assert_eq!(index.offset_utf8(text, 1, 2), text.find('é').unwrap());
    }

    #[test]
    fn lone_carriage_returns_end_lines_too() {
        let text = "a\rbb\r\nc\nd";
        let index = LineIndex::new(text);
        let lines: Vec<&str> = (0..index.line_count())
            .map(|l| &text[index.line_range(text, l).unwrap()])
            .collect();
        assert_eq!(lines, ["a", "bb", "c", "d"]);
        assert_eq!(
            index.pos(text, text.find('c').unwrap()),
            Pos {
                line: 2,
                col: 0,
                col_utf16: 0
            }
        );
        assert_eq!(index.offset_utf16(text, 1, 1), 3);
    }

    #[test]
    fn word_at_finds_identifiers_under_and_before_the_cursor() {
        let text = "let fooBar = baz_1(x);";
        assert_eq!(word_at(text, 5).map(|r| &text[r]), Some("fooBar"));
        assert_eq!(word_at(text, 10).map(|r| &text[r]), Some("fooBar"));
        assert_eq!(word_at(text, 13).map(|r| &text[r]), Some("baz_1"));
        assert_eq!(word_at(text, 11), None);
        assert_eq!(word_at("42", 1), None);
        assert_eq!(word_at("", 0), None);
    }
}
