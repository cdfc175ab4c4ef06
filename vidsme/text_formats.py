"""Text from submitters, made safe for each format it lands in: a terminal line, markdown, HTML.

Names on a board follow a strict pattern (benchmark/submissions/namespace.py), but boards also print
texts written before that pattern, free text (summaries, reasons) and whatever an older vidsme
recorded. Each writer passes every such text through the function for its format, so that a
newline, a `|`, a carriage return or a `<script>` in it stays text: it can neither add a row, a
heading or a link, nor move the cursor of the terminal that prints it. (CSV needs nothing here: the
csv module quotes, and every column a submitter names begins with its slice, `answer/<name>`, so no
cell a spreadsheet opens starts like a formula.)
"""
from __future__ import annotations

import html
import re

from vidsme.errors import printable

# everything a markdown renderer (or a terminal) may take for the end of a line
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
# markdown's structure and emphasis characters; "_" only where it could open or close emphasis
_MARKDOWN = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def one_line(text: object) -> str:
    """`text` on one line (for a terminal line, or inside another format): every line break becomes a space,
    every other control or format character (ANSI escapes, bidi overrides) '?'."""
    return printable(_LINE_BREAKS.sub(" ", str(text)), keep_newlines=False)


def markdown_text(text: object) -> str:
    """`text` inside a markdown line or table cell: one line, `<` `&` as entities, and markdown's
    structure characters (`|`, brackets, backticks, emphasis) backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line(text), quote=False))


def html_text(text: object) -> str:
    """`text` for HTML element content or a quoted attribute: one line, entities for `<>&"'`."""
    return html.escape(one_line(text), quote=True)


__all__ = ["html_text", "markdown_text", "one_line"]
