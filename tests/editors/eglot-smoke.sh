#!/usr/bin/env bash
# Drive a real Emacs (eglot) against aicockpit-lsp: connect, wait for the
# index, workspace symbols, imenu outline, definition in another file, hover,
# code actions. Needs emacs and eglot (Debian: emacs-nox elpa-eglot) and the
# server on PATH or in AICOCKPIT_LSP_BIN. Not part of .ci/run: docs/editors.md
# records what it showed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="${AICOCKPIT_LSP_BIN:-$(command -v aicockpit-lsp)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/proj/pkg" "$work/bin"
ln -s "$server" "$work/bin/aicockpit-lsp"
git -C "$work/proj" init -q .
printf 'def greet_everyone(names):\n    """Greets all the names."""\n    return [n for n in names]\n' >"$work/proj/pkg/util.py"
printf 'from pkg.util import greet_everyone\n\n\nclass Greeter:\n    def run(self):\n        return greet_everyone(["a"])\n' >"$work/proj/app.py"
PATH="$work/bin:$PATH" HOME="$work/home" AICOCKPIT_EGLOT_PROJECT="$work/proj" \
    AICOCKPIT_CONFIG="$work/config.toml" AICOCKPIT_CACHE_DIR="$work/cache" AICOCKPIT_DATA_DIR="$work/data" \
    timeout 120 emacs --batch -l "$here/eglot-smoke.el" 2>&1 | grep -E '^(PASS|FAIL)'
exit "${PIPESTATUS[0]}"
