//! Cleaning a model's completion before it is shown: cut what repeats the
//! text after the cursor, duplicated closing brackets, degenerate
//! repetition, and everything after the end of the block being written;
//! keep only the new part when a chat model echoes the code around the
//! cursor; and drop what cannot be right at the cursor — a suggestion that
//! repeats lines already there, or one that starts a new definition in the
//! middle of an expression.

/// At most this many lines are shown.
const MAX_LINES: usize = 24;

/// Clean `completion`, which goes between `prefix` and `suffix`. `None` when
/// nothing useful is left.
pub fn postprocess(completion: &str, prefix: &str, suffix: &str) -> Option<String> {
    let mut text = strip_code_fence(completion).replace("\r\n", "\n");
    let line_prefix = prefix.rsplit('\n').next().unwrap_or("");
    let line_suffix = suffix.split('\n').next().unwrap_or("");

    // A chat model that rewrites the code around the cursor: keep what it
    // wrote after the cursor's own line prefix.
    if let Some(rest) = after_echo(&text, prefix, line_prefix) {
        text = rest;
    }

    // What cannot be right here: a new definition in the middle of an
    // expression, or a line the file already has around the cursor.
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !line_prefix.trim().is_empty() && !text.starts_with('\n') && starts_definition(first) {
        return None;
    }
    let around = existing_lines(prefix, suffix);
    let repeated = |line: &str| is_substantial(line) && around.contains(line.trim());
    // A repeated single statement (`return None`) can be right; a repeated
    // definition or block opener, or several repeated lines, cannot.
    if repeated(first)
        && (starts_definition(first)
            || first.trim_end().ends_with([':', '{'])
            || text.lines().filter(|l| repeated(l)).count() >= 2)
    {
        return None;
    }
    // Later lines that repeat what is already there end the suggestion.
    {
        let mut kept = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            if index > 0 && repeated(line) {
                break;
            }
            kept.push(line);
        }
        text = kept.join("\n");
    }

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

/// Lines (trimmed) of the text around the cursor: 40 before, 40 after.
fn existing_lines<'a>(prefix: &'a str, suffix: &'a str) -> std::collections::HashSet<&'a str> {
    let before = prefix.lines().rev().skip(1).take(40);
    let after = suffix.lines().skip(1).take(40);
    before
        .chain(after)
        .map(str::trim)
        .filter(|l| is_substantial(l))
        .collect()
}

/// A line long enough that repeating it is no accident.
fn is_substantial(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 6 && line.chars().any(char::is_alphanumeric)
}

/// Whether a line opens a new definition (function, type, import).
fn starts_definition(line: &str) -> bool {
    const OPENERS: &[&str] = &[
        "def ",
        "async def ",
        "class ",
        "fn ",
        "pub fn ",
        "pub(crate) fn ",
        "async fn ",
        "pub async fn ",
        "struct ",
        "pub struct ",
        "enum ",
        "pub enum ",
        "impl ",
        "impl<",
        "trait ",
        "pub trait ",
        "mod ",
        "pub mod ",
        "use ",
        "function ",
        "async function ",
        "export ",
        "func ",
        "package ",
        "import ",
        "from ",
        "#include",
        "public class ",
        "interface ",
        "type ",
    ];
    let line = line.trim_start();
    OPENERS.iter().any(|opener| line.starts_with(opener))
}

/// When `text` repeats the line before the cursor and then the cursor's
/// line up to the cursor, the part after that (the echo is dropped).
fn after_echo(text: &str, prefix: &str, line_prefix: &str) -> Option<String> {
    let wanted = line_prefix.trim();
    if wanted.is_empty() {
        return None;
    }
    let before_cursor_line = prefix.rsplit('\n').nth(1)?.trim();
    if before_cursor_line.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    // The last echo of the line before wins: chat models repeat whole files.
    let position = (0..lines.len().saturating_sub(1)).rev().find(|&i| {
        lines[i].trim() == before_cursor_line && lines[i + 1].trim_start().starts_with(wanted)
    })?;
    let cursor_line = lines[position + 1].trim_start();
    let mut rest = vec![&cursor_line[wanted.len()..]];
    rest.extend(&lines[position + 2..]);
    let rest = rest.join("\n");
    // The cursor's own line prefix may end in a space the echo also had.
    let rest = if line_prefix.ends_with(' ') {
        rest.trim_start_matches(' ').to_string()
    } else {
        rest
    };
    Some(rest)
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
        // The first closing fence ends the code: what follows is prose.
        let body = match body.find("\n```") {
            Some(end) => &body[..end],
            None => body.strip_suffix("```").unwrap_or(body),
        };
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
        (
            "a new definition in the middle of an expression",
            "def f(x):\n    y = ",
            "\n",
            "def g(z):\n    return z",
            None,
        ),
        (
            "a new definition on a fresh line is fine",
            "x = 1\n",
            "\n",
            "def g(z):\n    return z",
            Some("def g(z):\n    return z"),
        ),
        (
            "a repeated single statement can be right",
            "def f(x):\n    if x:\n        return None\n    ",
            "\n",
            "return None",
            Some("return None"),
        ),
        (
            "a repeated block opener cannot",
            "def f(value):\n    if value > 0:\n        return None\n    ",
            "\n",
            "if value > 0:\n        return None",
            None,
        ),
        (
            "later lines that repeat the file end the suggestion",
            "let a = 1;\nlet total = compute(a);\nlet b = ",
            "\n",
            "2;\nlet total = compute(a);",
            Some("2;"),
        ),
        // Recorded from SmolLM2-135M-Instruct (llama.cpp, the chat prompt of
        // inline completion, temperature 0.2, seed 42): chat models rewrite
        // the code around the cursor and explain it.
        (
            "SmolLM2: echoes the file; the new part after `return ` is kept",
            "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return ",
            "\n",
            "```python\ndef add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n```\n\nThe `<CURSOR>` is a special character in Python that represents the end of a line. It is used to define the end of a line in a Python script.",
            Some("a * b"),
        ),
        (
            "SmolLM2: echoes the function it completes",
            "def add(a, b):\n    return ",
            "\n",
            "```python\ndef add(a, b):\n    return a + b\n```\n\nThis is the default function that is defined when the function is called without an argument. It returns the result of the addition of the two arguments.",
            Some("a + b"),
        ),
        (
            "SmolLM2: a new function after `data = `",
            "import os\n\ndef read(path):\n    with open(path) as f:\n        data = ",
            "\n    return data\n",
            "```python\ndef read_file(path):\n    with open(path, \"r\") as f:\n        return f.read()\n```\n\nThis is a simple and efficient way to read a file in Python. The `read_file` function opens the specified file, reads its contents into a string, and returns the contents of the file. The `with` statement ensures that the file is closed automatically when the function is finished with it.",
            None,
        ),
        (
            "SmolLM2: repeats the signature above the cursor",
            "fn total(xs: &[i32]) -> i32 {\n    xs.iter().",
            "\n}\n",
            "```rust\nfn total(xs: &[i32]) -> i32 {\n    let mut total = 0\n    for x in xs {\n        total += x\n    }\n    return total\n}\n```\n\nThis function takes an array of integers `xs` and returns the total sum of all elements. It uses a `for` loop to iterate over each element of `xs` and add it to the `total` variable.",
            None,
        ),
        (
            "SmolLM2: a rewritten function in the middle of a string concatenation",
            "def greet(name):\n    message = \"Hello, \" + ",
            "\n    print(message)\n",
            "```python\ndef greet(name):\n    print(f\"Hello, {name}!\")\n\n# Example usage\ngreet(\"John\")\n```\n\nThis code will output:\n```\nHello, John!\n```",
            None,
        ),
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
