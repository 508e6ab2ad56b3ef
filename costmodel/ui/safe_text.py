"""User-derived text on its way out: into Streamlit markdown (``md``) and into CSV cells (``csv_cell``).

Text is data, never markup (docs/scenarios.md, "Safety"). The terminal's counterpart is
``costmodel.cli.output.printable``. No Streamlit import here: the pages call these.

``md(text)``: the text shown literally by a markdown renderer (Streamlit's: CommonMark + GFM + math +
directives), on one line:

- control characters are removed and line breaks become spaces (no headings, lists, quotes or tables);
- every character that starts inline markup is backslash-escaped: ``\\ ` * [ ] ( ) < > ! # | ~ $ &`` and an
  underscore that is not inside a word (``hist_device`` stays as it is: intraword ``_`` never emphasises);
  so links, images, HTML, code, emphasis, math and entities render as the characters typed;
- a leading ``-``, ``+``, ``=`` or ``1.`` is escaped too (list / heading markers at the start of a line);
- GFM turns bare URLs and e-mail addresses into links *after* parsing, escapes or not, so a zero-width space
  (U+200B) is put inside ``://``, after ``www`` before its dot and before ``@``: the text reads the same and
  never becomes a link.

``plotly_text(text)``: a chart label or title shown literally (plotly renders ``<a href>`` and a few other tags).

``csv_cell(value)``: a text cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a line break) gets a leading ``'``, the OWASP "CSV injection" rule, and a carriage return inside
a cell becomes a line feed (which every CSV writer quotes); numbers are unchanged.
"""

from __future__ import annotations

import html
import re

ZWSP = "\u200b"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"[\t\n\r\u2028\u2029]+")
_MARKUP = re.compile(r"([\\`*\[\]()<>!#|~$&])")
_LONE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_LEADING = re.compile(r"^(\s*)([-+=]|\d+[.)])")
_SCHEME = re.compile(r":(?=//)")
_WWW = re.compile(r"(?i)(www)(?=\.)")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def md(text, max_chars: int | None = None) -> str:
    """``text`` (anything; ``str()`` is taken) as markdown that renders exactly those characters, on one line."""
    s = str(text).encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot reach the browser
    s = _CONTROL.sub("", _SPACE.sub(" ", s))
    if max_chars is not None and len(s) > max_chars:
        s = s[:max_chars] + "..."
    s = _SCHEME.sub(":" + ZWSP, s)
    s = _WWW.sub(r"\1" + ZWSP, s)
    s = s.replace("@", ZWSP + "@")
    s = _MARKUP.sub(r"\\\1", s)
    s = _LONE_UNDERSCORE.sub(r"\\_", s)
    return _LEADING.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], s, count=1)


def plotly_text(text) -> str:
    """A label, title or annotation for plotly, shown literally: plotly renders a few tags (``<a href>``, ``<b>``,
    ``<br>``...) inside its text, so ``<``, ``>`` and ``&`` are escaped (plotly shows the entities as the
    characters)."""
    return html.escape(str(text).encode("utf-8", "replace").decode("utf-8"), quote=False)


def csv_cell(value):
    """A CSV cell that no spreadsheet runs: text starting with ``= + - @``, a tab or a line break gets a leading
    ``'``; a carriage return inside becomes a line feed (CSV writers quote a cell with ``\n`` but leave a bare
    ``\r`` unquoted, and a reader would start a new row, and maybe a formula, there)."""
    if isinstance(value, str):
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if value.startswith(FORMULA_START):
            return "'" + value
    return value
