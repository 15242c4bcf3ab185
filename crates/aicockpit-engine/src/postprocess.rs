//! Cleaning a model's completion before it is shown: cut what repeats the
//! text after the cursor, duplicated closing brackets, degenerate
//! repetition, and everything after the end of the block being written.

/// At most this many lines are shown.
const MAX_LINES: usize = 24;

/// Clean `completion`, which goes between `prefix` and `suffix`. `None` when
/// nothing useful is left.
pub fn postprocess(completion: &str, prefix: &str, suffix: &str) -> Option<String> {
    let mut text = strip_code_fence(completion).replace("\r\n", "\n");
    let line_prefix = prefix.rsplit('\n').next().unwrap_or("");
    let line_suffix = suffix.split('\n').next().unwrap_or("");

    // Completing inside a line: only that line.
    if !line_suffix.trim().is_empty() {
        text = text.split('\n').next().unwrap_or("").to_string();
    }

    // Stop where the completion starts repeating the text after the cursor.
    if let Some(first) = suffix.lines().map(str::trim).find(|l| !l.is_empty()) {
        let mut kept = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 && line.trim() == first && first.len() > 1 {
                break;
            }
            kept.push(line);
        }
        text = kept.join("\n");
    }

    // Text that only repeats what already follows the cursor on this line.
    if !text.trim().is_empty() && line_suffix.trim_start().starts_with(text.trim()) {
        return None;
    }

    // Closing characters the suffix already has.
    let suffix_start = line_suffix.trim_start();
    let closers: String = suffix_start
        .chars()
        .take_while(|c| matches!(c, ')' | ']' | '}' | ';' | '"' | '\'' | ','))
        .collect();
    if !closers.is_empty() {
        let trimmed = text.trim_end();
        for take in (1..=closers.len()).rev() {
            if trimmed.ends_with(&closers[..take]) {
                text = trimmed[..trimmed.len() - take].to_string();
                break;
            }
        }
    }

    // A block ends where a line goes back out past where the cursor's line began.
    let base_indent = indent_of(line_prefix);
    let cursor_opens_block = line_prefix.trim_end().ends_with(['{', '(', '[', ':']);
    let mut kept: Vec<&str> = Vec::new();
    let mut repeats = 0;
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 && !line.trim().is_empty() {
            let indent = indent_of(line);
            let closes = line.trim_start().starts_with(['}', ')', ']']);
            if indent < base_indent
                || (indent == base_indent
                    && !cursor_opens_block
                    && !closes
                    && !line_prefix.trim().is_empty())
            {
                break;
            }
            if indent == base_indent && closes && cursor_opens_block {
                kept.push(line);
                break;
            }
        }
        // Degenerate repetition: the same non-empty line three times running.
        if index > 0 && !line.trim().is_empty() && kept.last() == Some(&line) {
            repeats += 1;
            if repeats >= 2 {
                kept.pop();
                break;
            }
        } else {
            repeats = 0;
        }
        kept.push(line);
        if kept.len() >= MAX_LINES {
            break;
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let result = kept.join("\n").trim_end().to_string();
    (!result.trim().is_empty()).then_some(result)
}

fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// Chat models like to wrap code in a fence; keep what is inside.
fn strip_code_fence(text: &str) -> String {
    let trimmed = text.trim_start_matches('\n');
    if let Some(rest) = trimmed.strip_prefix("```") {
        let body = rest.split_once('\n').map_or("", |(_, body)| body);
        let body = body.rsplit_once("```").map_or(body, |(inside, _)| inside);
        return body.trim_end_matches('\n').to_string();
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::postprocess;

    /// (what, prefix, suffix, model output, shown)
    const CASES: &[(&str, &str, &str, &str, Option<&str>)] = &[
        (
            "plain single line",
            "def add(a, b):\n    return ",
            "\n",
            "a + b",
            Some("a + b"),
        ),
        (
            "repeats the suffix",
            "def add(a, b):\n    return ",
            "\n\nprint(add(1, 2))\n",
            "a + b\n\nprint(add(1, 2))\n",
            Some("a + b"),
        ),
        (
            "duplicated closing bracket",
            "print(len(",
            ")\n",
            "items))",
            Some("items)"),
        ),
        (
            "duplicated closers inside a line",
            "foo(bar(",
            "))",
            "x))",
            Some("x"),
        ),
        (
            "inside a line only the line",
            "let x = ",
            ";\nlet y = 2;",
            "compute();\nlet z = 3;",
            Some("compute()"),
        ),
        (
            "stops at the end of the block",
            "fn main() {\n    let v = vec![1];\n    ",
            "\n}\n",
            "println!(\"{v:?}\");\n}\n\nfn other() {}\n",
            Some("println!(\"{v:?}\");"),
        ),
        (
            "keeps the closing line of a block it opened",
            "if ready {",
            "\nrest();",
            "\n    go();\n}\nmore();",
            Some("\n    go();\n}"),
        ),
        (
            "python block ends at dedent",
            "    def f(self):\n        ",
            "\n\n    def g(self):\n        pass\n",
            "return 1\n\n    def g(self):\n        pass",
            Some("return 1"),
        ),
        (
            "degenerate repetition",
            "x = [\n    ",
            "\n]",
            "1,\n    1,\n    1,\n    1,\n    1,",
            Some("1,\n    1,"),
        ),
        (
            "chat fences are removed",
            "let total = ",
            "\n",
            "```rust\nprices.iter().sum();\n```",
            Some("prices.iter().sum();"),
        ),
        ("nothing left", "x = ", "1\n", "1", None),
        ("empty", "x = ", "\n", "   \n  ", None),
    ];

    #[test]
    fn regression_cases() {
        for (what, prefix, suffix, output, shown) in CASES {
            assert_eq!(
                postprocess(output, prefix, suffix).as_deref(),
                *shown,
                "{what}"
            );
        }
    }
}
