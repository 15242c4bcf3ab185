//! Text from outside AiCockpit made safe for a terminal: what an AI service
//! writes, what a repository's files hold, what a service says in an error.
//! Any of it may carry control characters, and a terminal obeys escape
//! sequences (ESC, and the C1 controls some terminals take for it): they can
//! move the cursor, rewrite or clear what was printed, retitle the window or
//! hide text. Human-readable output therefore shows every control character
//! except newline and tab as an escape (`\u{1b}`) instead of sending it.
//! `--json` output needs none of this: serde escapes control characters.

use std::borrow::Cow;

/// `text` with every C0 and C1 control character (and DEL) other than `\n`
/// and `\t` written as a visible escape, `\u{1b}` for ESC; borrowed when
/// there is nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_escaped(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters (Unicode's `Cc`: U+0000–U+001F, U+007F–U+009F), but
/// not the newline and tab that text is laid out with.
fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(
            printable("\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mred\u{1b}[0m"),
            "\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{1b}[31mred\\u{1b}[0m"
        );
        // C1 controls (CSI, OSC), carriage return, backspace, DEL and NUL too.
        assert_eq!(
            printable("a\u{9b}31m\u{9d}x\rb\u{8}c\u{7f}\0"),
            "a\\u{9b}31m\\u{9d}x\\u{d}b\\u{8}c\\u{7f}\\u{0}"
        );
    }

    #[test]
    fn text_without_controls_is_left_alone() {
        let text = "fn main() {\n\tprintln!(\"héllo ✓ — \\u{1b}\");\n}\n";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(printable(""), Cow::Borrowed("")));
    }
}
