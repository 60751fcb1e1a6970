"""Customer-written text made safe to show: on a terminal, through rich, in HTML, as JSON lines.

A comment can hold terminal control sequences (``ESC ]0;title BEL`` sets the window title,
``ESC [2J`` clears the screen, ``ESC ]8;;url`` makes a hyperlink), C1 controls (``\\x9b`` is a CSI
on its own), bidi overrides that reorder what is read (``\\u202e``), and rich markup
(``[link=http://evil]click[/link]``, ``[/x]`` which makes rich raise). Every output of such text
goes through one of these:

- :func:`terminal_text`: control characters (C0 but newlines when asked, DEL, C1), bidi controls
  and line/paragraph separators written visibly as escapes (``\\x1b``, ``\\u202e``);
- :func:`rich_text`: the same as a rich ``Text``, which rich never parses as markup;
- :func:`html_text`: the same, HTML-escaped;
- :func:`json_line`: a JSON document with those characters as ``\\uXXXX`` escapes (the same JSON
  value: they can only sit inside strings).

>>> terminal_text("ok\\x1b]0;pwned\\x07 [b]x[/b] \\u202eevil")
'ok\\\\x1b]0;pwned\\\\x07 [b]x[/b] \\\\u202eevil'
>>> rich_text("[link=http://evil]click[/link]").plain
'[link=http://evil]click[/link]'
>>> html_text("<script>\\x1b")
'&lt;script&gt;\\\\x1b'
>>> json_line('{"comment":"a\\u202eb\\x9b"}')
'{"comment":"a\\\\u202eb\\\\u009b"}'
"""

from __future__ import annotations

import html
from typing import Any

from rich.text import Text

__all__ = ["UNSAFE_CODEPOINTS", "html_text", "json_line", "rich_text", "terminal_text"]

UNSAFE_CODEPOINTS = frozenset(
    [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),
     0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]
)


def _visible(codepoint: int) -> str:
    return f"\\x{codepoint:02x}" if codepoint < 0x100 else f"\\u{codepoint:04x}"


_ONE_LINE = {c: _visible(c) for c in UNSAFE_CODEPOINTS}
_MULTI_LINE = {c: v for c, v in _ONE_LINE.items() if c != 0x0A}
_JSON = {c: f"\\u{c:04x}" for c in UNSAFE_CODEPOINTS}


def terminal_text(value: Any, newlines: bool = False) -> str:
    """``str(value)`` with every character that a terminal would act on written as an escape;
    ``newlines`` keeps ``\\n`` (table cells), else it is escaped too (one-line outputs)."""
    text = value if type(value) is str else ("" if value is None else str(value))
    return text.translate(_MULTI_LINE if newlines else _ONE_LINE)


def rich_text(value: Any, style: str = "", newlines: bool = False) -> Text:
    """A rich ``Text`` of :func:`terminal_text` (a ``Text`` is never parsed as markup nor emoji codes)."""
    return Text(terminal_text(value, newlines), style=style)


def html_text(value: Any) -> str:
    """:func:`terminal_text`, HTML-escaped (quotes included: safe in attributes too)."""
    return html.escape(terminal_text(value, newlines=True), quote=True)


def json_line(document: str | bytes) -> str:
    """A JSON text with the characters of :data:`UNSAFE_CODEPOINTS` as ``\\uXXXX`` escapes: inside
    strings the document's value is unchanged, and no raw newline is left to break a line."""
    text = document.decode("utf-8", "backslashreplace") if isinstance(document, (bytes, bytearray)) else document
    return text.translate(_JSON)
